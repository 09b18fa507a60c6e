"""A reproduction's numbers beside the committed ones.

``against_committed(mine, committed)`` reads every per-seed table CSV of a results folder a user
just made (``results/local/<scale>`` by default) and the same table of the committed folder
(``results/<scale>``), groups the measured rows by configuration (every column but the
measurements, ``seed``, ``run``, ``eval`` and ``source``), and says for each group and
measurement: the user's value (mean over the seeds they ran), the committed mean ± std over its
seeds, the difference, and whether the user's values lie within the committed seeds' range (and
whether they are identical, seed for seed, where the same seeds were run).  Tables the user's
folder does not hold are reported as "not re-run", never compared with themselves.
"""
from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

SKIP = {"claims.csv"}  # verdicts, not measurements
NOT_CONFIG = {"run", "eval", "source", "seed"}
DETAIL_LIMIT = 24  # groups x measurements above which a table is summarised in one line


def _measured_rows(path: Path) -> list[dict]:
    from equss.paper.tables import MEASURED

    with open(path, newline="") as fh:
        return [r for r in csv.DictReader(fh) if r.get("source", MEASURED) == MEASURED]


def _groups(rows: list[dict], measures: list[str]) -> dict[tuple, dict[str, dict[str, float]]]:
    """config key -> measurement -> {seed: value}"""
    out: dict[tuple, dict[str, dict[str, float]]] = {}
    for r in rows:
        key = tuple((k, v) for k, v in r.items() if k not in NOT_CONFIG and k not in measures)
        for m in measures:
            try:
                value = float(r[m])
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                out.setdefault(key, {}).setdefault(m, {})[r.get("seed", "")] = value
    return out


def _label(key: tuple) -> str:
    return " ".join(f"{k}={v}" if k not in ("method",) else v for k, v in key if v not in ("", None))


def compare_table(mine: Path, committed: Path) -> list[str]:
    """Lines comparing one table CSV with its committed version."""
    from equss.paper.trace import COLUMNS

    a, b = _measured_rows(mine), _measured_rows(committed)
    measures = [c for c in (a[0].keys() if a else []) if c in COLUMNS]
    ga, gb = _groups(a, measures), _groups(b, measures)
    cells = []
    for key, per_measure in ga.items():
        for m, seeds in per_measure.items():
            ref = gb.get(key, {}).get(m)
            if not ref:
                continue
            vals, refs = list(seeds.values()), list(ref.values())
            mean, rmean = statistics.fmean(vals), statistics.fmean(refs)
            sd = statistics.stdev(refs) if len(refs) > 1 else 0.0
            within = min(refs) - 1e-9 <= min(vals) and max(vals) <= max(refs) + 1e-9
            same = all(s in ref and abs(ref[s] - v) <= 1e-9 for s, v in seeds.items())
            cells.append((key, m, mean, len(vals), rmean, sd, len(refs), mean - rmean, within, same))
    name = mine.stem
    if not cells:
        return [f"{name}: no configuration in common with the committed table"]
    n_same = sum(c[-1] for c in cells)
    n_within = sum(c[-2] for c in cells)
    worst = max(cells, key=lambda c: abs(c[7]))
    head = (f"{name}: {len(cells)} numbers compared with the committed ones: {n_same} identical seed for seed, "
            f"{n_within} within the committed seeds' range; largest difference {worst[7]:+.2f} "
            f"({_label(worst[0])} {worst[1]})")
    if len(cells) > DETAIL_LIMIT:
        return [head]
    lines = [head]
    for key, m, mean, n, rmean, sd, rn, diff, within, same in cells:
        verdict = "identical" if same else ("within the committed range" if within else "OUTSIDE the committed range")
        lines.append(f"  {_label(key)} {m}: {mean:.2f} (n={n}) vs committed {rmean:.2f} ± {sd:.2f} (n={rn}): "
                     f"{diff:+.2f}, {verdict}")
    return lines


def against_committed(mine: str | Path, committed: str | Path, tables: list[str] | None = None) -> list[str]:
    """Comparison lines for ``tables`` (CSV names; default: every table of the committed folder);
    a table the user's folder lacks is "not re-run"."""
    mine, committed = Path(mine), Path(committed)
    if mine.resolve() == committed.resolve():
        return [f"{mine} is the committed folder itself: nothing to compare with"]
    names = tables if tables is not None else sorted(p.name for p in committed.glob("*.csv") if p.name not in SKIP)
    lines, not_run = [], []
    for name in names:
        if name in SKIP or not (committed / name).is_file():
            continue
        if not (mine / name).is_file():
            not_run.append(Path(name).stem)
            continue
        lines.extend(compare_table(mine / name, committed / name))
    if not_run:
        lines.append("not re-run: " + ", ".join(not_run))
    return lines
