"""Commit a long reproduction's results as they finish: ``python tools/commit_results.py REPRO_CHECKOUT``.

A proxy reproduction on a small CPU takes longer than one working session, so it runs in a
second checkout pinned at one commit (``git worktree add --detach ../repro <commit>``; its
run records then all name that commit, whatever is committed here meanwhile), and this tool
copies ``results/<scale>/`` from that checkout into this one and commits it, every
``--every`` seconds (``--once``: one round).  A round commits only a consistent set: the copy
must pass the traceability check (``equss.paper.trace``; a table whose records are still
being written waits for the next round).  The README's results section is refreshed with it
(``tools/update_readme.py``).  Only ``results/<scale>/`` and ``README.md`` are staged.

``--dest results/proxy-next``: copy into that folder instead (a study that runs over several sessions
while the committed ``results/proxy`` stays whole and checked; the README is then left alone, and the
folder replaces ``results/proxy`` when the study is complete: DEVELOPING.md, "A study over several
sessions").
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURE_FILE = "reproduce.json"  # tools/measure.py's record of `make reproduce`
sys.path.insert(0, str(ROOT))


def notebook_state(data: bytes) -> str:
    """:func:`equss.paper.notebooks.run_state` of an executed notebook's bytes (``finished``,
    ``failed``, ``interrupted``, ``executing``, ``unstamped``); unreadable bytes are one being written."""
    import json

    from equss.paper.notebooks import run_state

    try:
        return run_state(json.loads(data))
    except ValueError:
        return "executing"


COPYING = ".copying"  # copy_tree's temporary name before the rename; left behind only by a crash


def copy_tree(src: Path, dst: Path) -> list[str]:
    """Copy new or changed files (no checkpoints, locks, ``.tmp`` files of an atomic write, and of
    the executed notebooks only those the runner stamped finished: never one still executing, failed
    or interrupted); returns their paths relative to ``src``.  Each file is read once
    and those bytes are what is checked and written (the writer may replace it meanwhile); a file
    that vanishes before it is read is left for the next round."""
    copied = []
    for f in sorted(src.rglob("*")):
        if not f.is_file() or f.suffix in (".pt", ".tmp") or f.name == ".lock":
            continue
        try:
            data = f.read_bytes()
        except FileNotFoundError:
            continue
        if f.suffix == ".ipynb" and notebook_state(data) != "finished":
            continue
        d = dst / f.relative_to(src)
        if d.is_file() and d.read_bytes() == data:
            continue
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = d.with_name(d.name + COPYING)
        tmp.write_bytes(data)
        tmp.replace(d)
        copied.append(f.relative_to(src).as_posix())
    return copied


def unfinished(src: Path) -> list[str]:
    """The executed notebooks in ``src`` that failed or were interrupted, as ``path (state)``."""
    out = []
    for f in sorted(src.rglob("*.ipynb")):
        try:
            state = notebook_state(f.read_bytes())
        except OSError:
            continue
        if state in ("failed", "interrupted"):
            out.append(f"{f.relative_to(src).as_posix()} ({state})")
    return out


def heartbeat_only(copied: list[str], dst: Path) -> bool:
    """Only ``reproduce.json``'s running wall time changed (``tools/measure.py`` rewrites it every 30 s):
    not worth a commit of its own; it goes with the next results, or when the reproduction has finished."""
    import json

    if copied != [MEASURE_FILE]:
        return False
    try:
        return not json.loads((dst / MEASURE_FILE).read_text()).get("finished")
    except (OSError, ValueError):
        return False


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=check)


def uncommitted(folder: str) -> list[str]:
    """Files under ``folder`` (``results/<scale>``) that differ from the last commit (new ones included),
    relative to that folder (``git status -z``: paths as they are, no quoting); a ``.copying``
    file that a crashed round left between write and rename is never among them."""
    out = git("status", "--porcelain", "-z", "--untracked-files=all", "--", folder).stdout
    prefix, paths = f"{folder}/", []
    entries = iter(out.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        if entry[0] in "RC":  # a rename or copy: its source path follows as the next entry
            next(entries, None)
        if entry[3:].startswith(prefix) and not entry.endswith(COPYING):
            paths.append(entry[3:][len(prefix):])
    return sorted(paths)


def one_round(repro: Path, scale: str, dest: str | None = None) -> str:
    from equss.paper import trace

    dest = dest or f"results/{scale}"
    src, dst = repro / "results" / scale, ROOT / dest
    if not src.is_dir():
        return f"nothing yet in {src}"
    problems = trace.check_numbers(src)
    if problems:
        return f"waiting: {len(problems)} traceability problem(s) in the reproduction's folder, e.g. {problems[0]}"
    copy_tree(src, dst)
    if (src / "runs").is_dir():  # copy_tree copies files: a study whose first phase (tuning) has no run record yet
        (dst / "runs").mkdir(parents=True, exist_ok=True)  # still has an empty runs/ folder, and its tune.json count
    copied = uncommitted(dest)  # this round's copies and any an earlier round could not commit
    if not copied:
        return "no new results"
    if heartbeat_only(copied, dst):
        return f"no new results (only {MEASURE_FILE}'s running wall time; committed with the next results)"
    problems = trace.check_numbers(dst)
    if problems:
        return f"not committed: {problems[0]}"
    readme = subprocess.run([sys.executable, str(ROOT / "tools" / "update_readme.py")], cwd=ROOT,
                            capture_output=True, text=True) if dest == f"results/{scale}" else None
    if readme is not None and readme.returncode:
        return ("not committed: tools/update_readme.py failed: "
                + (readme.stderr.strip().splitlines() or ["?"])[-1])
    records = len([p for p in (dst / "runs").iterdir() if p.is_dir()]) if (dst / "runs").is_dir() else 0
    msg = f"{scale} reproduction{'' if dest == f'results/{scale}' else ' (into ' + dest + ')'}: {records} run records ({len(copied)} files new or changed)"
    failed = unfinished(src)
    if failed:
        msg += "; NOT COMMITTED: " + ", ".join(failed)
    for attempt in range(5):  # another git command may hold the index lock for a moment
        paths = [dest] + (["README.md"] if readme is not None else [])
        done = git("add", "--", *paths, check=False)
        if done.returncode == 0:
            done = git("commit", "-q", "-m", msg, "--", *paths, check=False)
        if done.returncode == 0 or "nothing to commit" in done.stdout + done.stderr:
            return msg
        time.sleep(5)
    return f"commit failed: {done.stderr.strip()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("repro", type=Path, help="the checkout where `make reproduce` runs")
    ap.add_argument("--scale", default="proxy")
    ap.add_argument("--dest", help="folder of this checkout to copy into (default: results/<scale>)")
    ap.add_argument("--every", type=float, default=600.0, help="seconds between rounds (default 600)")
    ap.add_argument("--once", action="store_true", help="one round, then exit")
    a = ap.parse_args()
    while True:
        try:
            said = one_round(a.repro.resolve(), a.scale, a.dest)
        except Exception as exc:  # a round that fails (a file moved under it, git busy) is retried next time
            said = f"round failed, retrying in {a.every:.0f} s: {type(exc).__name__}: {exc}"
        print(time.strftime("%H:%M:%S"), said, flush=True)
        if a.once:
            return 0
        time.sleep(a.every)


if __name__ == "__main__":
    sys.exit(main())
