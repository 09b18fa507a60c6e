"""Where the reproduction's time goes: ``python tools/budget.py [results/proxy]``.

Reads the run records that the tables and figures name (``runs/<run>/provenance.json``: the
training's wall time; the ``eval`` file of each row, e.g. ``eval.json`` / ``eval_crf.json`` /
``baseline.json``: that evaluation's wall time) and attributes each training and each
evaluation to the first artefact, in ``make reproduce``'s order, whose CSV names it (Fig. 4
reuses Table 1's trainings, so it is charged only for its own analyses; a cached run filed under
two record names, as Table 3's Q3 is Table 1's EQUSS, is one run: records are told apart by the
bytes of their provenance / evaluation files).  Prints a Markdown
table (artefact, trainings, training hours, evaluations, evaluation hours) and sets it beside
``reproduce.json``'s measured wall time: the rest is feature extraction (cached, not in any
record), notebook overhead, and any time the machine spent on other work meanwhile.  Pauses
written in ``reproduce_pauses.log`` beside it (lines ``<UTC time>Z SIGSTOP ...`` and
``<UTC time>Z SIGCONT ...``: the reproduction's kernel stopped so that a check could run alone)
are reported and subtracted once: from a record's wall time where the pause fell inside it (the
record ran from its provenance's ``time_utc`` less ``wall_s`` to ``time_utc``), and from the wall
time of ``make reproduce``.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["learning_curves", "table1", "table2", "table3", "fig4", "fig4_distance", "fig5", "fig2", "fig6"]  # make reproduce


def _utc(text: str):
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def pauses(results: Path) -> list[tuple]:
    """(stop, continue) UTC times from ``reproduce_pauses.log``: each ``SIGSTOP`` line to the
    ``SIGCONT`` line after it (other lines and unreadable times ignored; a stop without its
    continue counts nothing)."""
    log = Path(results) / "reproduce_pauses.log"
    if not log.is_file():
        return []
    out, stopped = [], None
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[1] not in ("SIGSTOP", "SIGCONT") or _utc(parts[0]) is None:
            continue
        when = _utc(parts[0])
        if parts[1] == "SIGSTOP":
            stopped = stopped or when
        elif stopped is not None:
            out.append((stopped, when))
            stopped = None
    return out


def paused_s(results: Path) -> float:
    """Total seconds the reproduction was paused (:func:`pauses`)."""
    return sum((b - a).total_seconds() for a, b in pauses(results))


def _running_s(path: Path, paused: list[tuple]) -> float:
    """A record's wall time (``wall_s`` of its provenance) less the pauses inside it: the record
    ran from ``time_utc - wall_s`` to ``time_utc`` (its provenance is stamped at the end)."""
    import datetime as dt

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0.0
    prov = doc.get("provenance", doc) or {}
    wall = float(prov.get("wall_s", 0.0) or 0.0)
    end = _utc(prov.get("time_utc", ""))
    if end is None or not paused:
        return wall
    start = end - dt.timedelta(seconds=wall)
    inside = sum(max(0.0, (min(b, end) - max(a, start)).total_seconds()) for a, b in paused)
    return max(0.0, wall - inside)


def _identity(path: Path) -> str:
    """What makes two records one run: the bytes of the file (a cached run filed under two names,
    e.g. Table 3's Q3 = Table 1's EQUSS, has identical provenance and evaluation files)."""
    import hashlib

    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError:
        return f"missing:{path}"


def attribute(results: Path) -> list[dict]:
    """One dict per artefact with a CSV: name, trainings, train_s, evals, eval_s (running time: pauses
    inside a record are not charged to it)."""
    results = Path(results)
    names = [n for n in ORDER if (results / f"{n}.csv").is_file()]
    names += sorted(p.stem for p in results.glob("*.csv") if p.stem not in ORDER and p.stem != "claims")
    seen_runs, seen_evals, out = set(), set(), []
    paused = pauses(results)
    for name in names:
        with open(results / f"{name}.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("run")]
        item = {"name": name, "trainings": 0, "train_s": 0.0, "evals": 0, "eval_s": 0.0}
        for r in rows:
            record = results / "runs" / r["run"]
            prov = record / "provenance.json"
            if prov.is_file():  # a training (a baseline has only its evaluation)
                key = _identity(prov)
                if key not in seen_runs:
                    seen_runs.add(key)
                    item["trainings"] += 1
                    item["train_s"] += _running_s(prov, paused)
            ev = record / (r.get("eval") or "eval.json")
            key = _identity(ev)
            if key not in seen_evals:
                seen_evals.add(key)
                item["evals"] += 1
                item["eval_s"] += _running_s(ev, paused)
        out.append(item)
    return out


def wall_s(doc: dict) -> float:
    """``reproduce.json``'s wall time in seconds (``wall_h`` where ``wall_s`` is absent)."""
    return float(doc.get("wall_s") or 3600 * float(doc.get("wall_h") or 0.0))


def report(results) -> str:
    results = Path(results)
    items = attribute(results)
    lines = ["| artefact | trainings | training (h) | evaluations | evaluation (h) | total (h) |",
             "|---|---|---|---|---|---|"]
    for i in items:
        lines.append(f"| {i['name']} | {i['trainings']} | {i['train_s'] / 3600:.2f} | {i['evals']} | "
                     f"{i['eval_s'] / 3600:.2f} | {(i['train_s'] + i['eval_s']) / 3600:.2f} |")
    recorded = sum(i["train_s"] + i["eval_s"] for i in items)
    lines.append(f"| **all** | {sum(i['trainings'] for i in items)} | {sum(i['train_s'] for i in items) / 3600:.2f} | "
                 f"{sum(i['evals'] for i in items)} | {sum(i['eval_s'] for i in items) / 3600:.2f} | "
                 f"{recorded / 3600:.2f} |")
    rep = results / "reproduce.json"
    if rep.is_file():
        doc = json.loads(rep.read_text())
        doc["wall_s"] = wall_s(doc)
        state = "finished" if doc.get("finished") else "not finished"
        lines.append("")
        paused = paused_s(results)
        text = (f"`make reproduce` wall time ({state}, {len(doc.get('segments', []))} segment(s)): "
                f"{doc['wall_s'] / 3600:.2f} h")
        if paused:
            text += (f", of which {paused / 3600:.2f} h paused (`reproduce_pauses.log`), "
                     f"{(doc['wall_s'] - paused) / 3600:.2f} h running")
        text += (f"; the records account for {recorded / 3600:.2f} h, the rest "
                 f"({(doc['wall_s'] - paused - recorded) / 3600:.2f} h) is feature extraction, notebook "
                 "overhead and time the machine spent on other work.")
        lines.append(text)
    return "\n".join(lines)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    results = Path(args[0]) if args else ROOT / "results" / "proxy"
    if not results.is_dir():
        print(f"budget: {results} is not a folder")
        return 2
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
