"""Do my numbers match the committed ones?  ``python tools/compare_results.py MINE [THEIRS]``.

Compares two results folders (``THEIRS`` defaults to the committed ``results/proxy``) table by
table: in every table CSV present in both (``claims.csv`` excepted, it is computed from the
tables), each measured row of ``MINE`` is matched to the row of ``THEIRS`` with the same
configuration (every column but the measurements, ``run``, ``eval`` and ``source``: method,
dataset, seed, crf, step, dim, M, K, class, ...) and every measurement is compared exactly.
A run reproduced at the same code has the same run name (config hash + code fingerprint); a
differing name is reported (the code or the resolved config differ) but is not a failure.

Prints one line per table (rows matched, identical, differing) and the differing cells;
exit 0 when every matched cell is identical, 1 when some differ, 2 when nothing could be
compared (no common table or no common row).  Typical use: a fresh clone's
``make reproduce-table1 SCALE=proxy SEEDS=0`` from an empty cache, then
``python tools/compare_results.py results/proxy /path/to/main/results/proxy``.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOT_CONFIG = {"run", "eval", "source"}


def _rows(path: Path) -> list[dict]:
    from equss.paper.tables import MEASURED

    with open(path, newline="") as fh:
        return [r for r in csv.DictReader(fh) if r.get("source", MEASURED) == MEASURED]


def _measurements(columns) -> list[str]:
    from equss.paper.trace import COLUMNS

    return [c for c in columns if c in COLUMNS]


def _key(row: dict, measured: list[str]) -> tuple:
    return tuple(sorted((k, v) for k, v in row.items() if k not in NOT_CONFIG and k not in measured))


def compare_table(mine: Path, theirs: Path) -> tuple[int, int, list[str], list[str]]:
    """(rows matched, cells identical, lines naming differing cells, lines naming differing run names)
    for one CSV."""
    a, b = _rows(mine), _rows(theirs)
    measured = _measurements(a[0].keys() if a else [])
    index = {_key(r, measured): r for r in b}
    matched, same, diffs, renamed = 0, 0, [], []
    for r in a:
        key = _key(r, measured)
        other = index.get(key)
        if other is None:
            continue
        matched += 1
        where = ", ".join(f"{k}={v}" for k, v in key if v != "")
        if r.get("run") != other.get("run"):
            renamed.append(f"  {where}: run {r.get('run')} vs {other.get('run')} (different config or code)")
        for col in measured:
            if col not in other:
                continue
            x, y = r[col], other[col]
            try:
                equal = float(x) == float(y) or (x == y)
            except ValueError:
                equal = x == y
            if equal:
                same += 1
            else:
                try:
                    delta = f" (diff {float(x) - float(y):+.6g})"
                except ValueError:
                    delta = ""
                diffs.append(f"  {where}: {col} {x} vs {y}{delta}")
    return matched, same, diffs, renamed


def compare(mine, theirs) -> tuple[int, list[str]]:
    """(exit status, report lines) for two results folders."""
    from equss.paper.trace import tables

    mine, theirs = Path(mine), Path(theirs)
    for d in (mine, theirs):
        if not d.is_dir():
            return 2, [f"compare_results: {d} is not a folder"]
    lines, any_matched, any_diff = [], False, False
    common = [p for p in tables(mine) if (theirs / p.name).is_file()]
    for p in common:
        matched, same, diffs, renamed = compare_table(p, theirs / p.name)
        lines.append(f"{p.stem}: {matched} rows matched, {same} cells identical, {len(diffs)} differ")
        lines += renamed + diffs
        any_matched |= matched > 0
        any_diff |= bool(diffs)
    if not any_matched:
        names = ", ".join(p.name for p in tables(mine)) or "none"
        lines.append(f"compare_results: no row of {mine} has a counterpart in {theirs} (tables in {mine}: {names})")
        return 2, lines
    return (1 if any_diff else 0), lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mine", help="your results folder (e.g. results/proxy of your clone)")
    ap.add_argument("theirs", nargs="?", default=str(ROOT / "results" / "proxy"),
                    help="the folder to compare against (default: this checkout's committed results/proxy)")
    args = ap.parse_args(argv)
    status, lines = compare(args.mine, args.theirs)
    print("\n".join(lines))
    if status == 0:
        print("identical: every matched cell has the same value")
    return status


if __name__ == "__main__":
    sys.exit(main())
