"""Run a command and record its wall time and peak memory: ``python tools/measure.py OUT.json -- CMD ...``.

``make reproduce`` wraps the whole reproduction in it, so ``results/<scale>/reproduce.json``
says how long the run took and how much memory it needed.

A reproduction can outlive a session (or be stopped and resumed: the run cache keeps every
finished training), so the record is kept as *segments*, one per invocation: each is written
at start, rewritten every 30 s while the command runs (so a segment killed with its machine
still counts up to its last heartbeat) and at the end with the exit status.  A new invocation
continues the record when the earlier segments ran the same code (commit and code
fingerprint) and the last one did not finish successfully; otherwise it starts a new one.
``wall_s`` is the sum of the segments; ``peak_rss_mib`` the largest peak RSS (``VmHWM``) of
any single process of the tree seen by the heartbeats (the notebook kernels), not the sum of
concurrent ones (and, at the end, the command's ``ru_maxrss`` from ``wait4``).  The exit status is the command's.

Predicted beside actual: each notebook's ``ex.run_all`` writes ``plans/<notebook>.json`` beside
``OUT.json`` (:mod:`equss.paper.fanout`: the wall time of its runs predicted before they started,
and measured); ``prediction`` in the record sums those written since the record's first segment
began: per notebook the prediction for the executor that ran (serial, or the pool's layout) and
the measured wall time of its runs, and their totals.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HEARTBEAT_S = float(os.environ.get("EQUSS_MEASURE_HEARTBEAT_S", "30"))  # tests use less


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree_peak_rss_kib(root: int) -> int:
    """The largest ``VmHWM`` (peak resident set) of ``root`` and its descendants, in KiB."""
    kids, todo, peak = _children(), [root], 0
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
                        break
        except OSError:
            continue
    return peak


def code_identity() -> tuple[str, str]:
    """(git commit, code fingerprint), computed in a child process: equss.provenance imports torch,
    and a child forked from a 500 MiB process would report that as its own peak RSS."""
    code = ("import json; from equss.provenance import code_fingerprint, git_commit; "
            "print(json.dumps([git_commit(), code_fingerprint()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout
    commit, fingerprint = json.loads(out.strip().splitlines()[-1])
    return commit, fingerprint


def earlier_segments(out: Path, commit: str, fingerprint: str) -> list[dict]:
    """Segments of an unfinished record of the same code, to continue; else none."""
    try:
        doc = json.loads(out.read_text())
    except (OSError, ValueError):
        return []
    segs = doc.get("segments") or []
    if (doc.get("git_commit") == commit and doc.get("code_fingerprint") == fingerprint and segs
            and segs[-1].get("exit_status") != 0):
        return segs
    return []


def predictions(plans: Path, since: str | None) -> dict | None:
    """Per notebook, the predicted and the measured wall time of its runs (``plans/*.json`` finished
    at or after ``since``, an ISO time), and their sums; None when there is none."""
    start = dt.datetime.fromisoformat(since) if since else None
    rows = []
    for f in sorted(plans.glob("*.json")):
        try:
            p = json.loads(f.read_text())
            actual = p["actual"]
            finished = dt.datetime.fromisoformat(actual["finished_utc"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if start and finished < start:
            continue
        pred, lay = p.get("prediction") or {}, p.get("layout") or {}
        serial, parallel = (pred.get(k, {}).get("wall_s") for k in ("serial", "parallel"))
        to_do = p.get("counts", {}).get("new", 0) + p.get("counts", {}).get("evaluate", 0)
        rows.append({"notebook": p.get("notebook", f.stem), "executor": p.get("executor"),
                     "layout": f"{lay.get('workers')} x {lay.get('threads')} threads", "runs_to_do": to_do,
                     "predicted_s": (serial if p.get("executor") == "serial" else parallel) if pred else
                     (0.0 if not to_do else None),
                     "predicted_serial_s": serial, "predicted_parallel_s": parallel, "actual_s": actual.get("wall_s"),
                     "failed": actual.get("failed") or []})
    if not rows:
        return None
    known = [r for r in rows if r["predicted_s"] is not None and r["actual_s"] is not None]
    return {"what": "per notebook: the wall time of its runs predicted before they started (for the executor that "
                    "ran them) and measured (plans/<notebook>.json)",
            "notebooks": rows, "predicted_s": round(sum(r["predicted_s"] for r in known), 1),
            "actual_s": round(sum(r["actual_s"] for r in known), 1),
            "unpredicted": [r["notebook"] for r in rows if r not in known]}


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    out, cmd = Path(argv[0]), argv[2:]
    flags = os.environ.get("MAKEFLAGS", "").split(" ")[0]
    if "n" in flags and not flags.startswith("-"):  # `make -n reproduce`: nothing runs, nothing to record
        return subprocess.call(cmd)
    from equss.io import write_json

    commit, fingerprint = code_identity()
    segments = earlier_segments(out, commit, fingerprint)
    seg = {"started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "wall_s": 0.0,
           "peak_rss_mib": 0.0, "exit_status": None, "host": platform.platform(), "cpus": os.cpu_count()}
    segments.append(seg)
    lock = threading.Lock()

    def save():
        with lock:
            wall = sum(s["wall_s"] for s in segments)
            pred = predictions(out.parent / "plans", segments[0]["started_utc"])
            write_json(out, {"command": " ".join(cmd), "git_commit": commit, "code_fingerprint": fingerprint,
                             "finished": seg["exit_status"] == 0, "wall_s": round(wall, 1),
                             "wall_h": round(wall / 3600, 3),
                             "peak_rss_mib": max(s["peak_rss_mib"] for s in segments),
                             "peak_rss_what": "largest VmHWM of a single process of the tree (heartbeats every 30 s)",
                             **({"prediction": pred} if pred else {}),
                             "segments": segments})

    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(cmd)
    except OSError as e:  # a command that cannot start: one line, exit 127 as a shell would
        print(f"measure: cannot run {cmd[0]!r}: {e.strerror}", file=sys.stderr)
        return 127
    done = threading.Event()

    def beat():
        while not done.wait(HEARTBEAT_S):
            seg["wall_s"] = round(time.monotonic() - t0, 1)
            seg["peak_rss_mib"] = max(seg["peak_rss_mib"], round(tree_peak_rss_kib(proc.pid) / 1024, 1))
            save()

    out.parent.mkdir(parents=True, exist_ok=True)
    save()
    threading.Thread(target=beat, daemon=True).start()
    while True:  # wait4: the resource usage of this command's tree only (not of code_identity's child)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            break
        except KeyboardInterrupt:  # Ctrl-C reaches the command too; record how it ended
            continue
    rc = proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    seg["wall_s"] = round(time.monotonic() - t0, 1)
    seg["exit_status"] = rc
    # processes that ended between heartbeats: ru_maxrss of the command and every descendant it waited for
    seg["peak_rss_mib"] = max(seg["peak_rss_mib"], round(usage.ru_maxrss / 1024, 1))
    save()
    doc = json.loads(out.read_text())
    print(f"measure: {seg['wall_s'] / 60:.1f} min this time ({doc['wall_s'] / 60:.1f} min in {len(segments)} "
          f"segment(s)), peak RSS {doc['peak_rss_mib']:.0f} MiB -> {out}")
    if doc.get("prediction"):
        pred = doc["prediction"]
        print(f"measure: the runs of {len(pred['notebooks'])} notebook(s): predicted {pred['predicted_s'] / 60:.1f} min, "
              f"measured {pred['actual_s'] / 60:.1f} min")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
