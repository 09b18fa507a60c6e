"""Tables of results: one row per run and seed (unsupervised and linear Acc / mIoU, the run
record it comes from), CSV + Markdown files, the provenance beside them, and a DataFrame for
notebook display.

The CSV keeps every seed's row with full-precision numbers and the ``run`` (the record
folder under ``runs/``) and ``eval`` (the file in it) they were read from, so every number
traces to one record (:mod:`equss.paper.trace` checks it).  The Markdown shows the mean ±
standard deviation over seeds of each measured configuration, with the seed count, and the
paper's quoted rows marked quoted.
"""
from __future__ import annotations

import math
from pathlib import Path

from equss.io import write_json
from equss.provenance import provenance

MEASURED = "measured"
METRICS = ("unsup_acc", "unsup_miou", "linear_acc", "linear_miou")
# CSV column -> (group in the evaluation JSON, key); with crf the group gets "_crf"
METRIC_KEYS = {"unsup_acc": ("cluster", "Accuracy"), "unsup_miou": ("cluster", "mIoU"),
               "linear_acc": ("linear", "Accuracy"), "linear_miou": ("linear", "mIoU")}


def eval_file(result: dict) -> str:
    """The record file that holds ``result`` (``eval.json``, ``eval_crf.json``, ``baseline.json``...)."""
    return result.get("eval_file") or ("baseline.json" if result.get("run", "").startswith("baseline-") else "eval.json")


def row(method: str, result: dict, dataset: str = "", seed: int | None = None, crf: bool = False,
        source: str = MEASURED, **extra) -> dict:
    """One table row: ``method, dataset, seed, crf, run, eval, unsup_acc, unsup_miou, linear_acc,
    linear_miou, source`` (+ ``extra`` columns).  ``crf``: the CRF-refined numbers of a
    ``run(cfg, crf=True)`` result.  Numbers are kept at full precision (the Markdown rounds)."""
    seed = seed if seed is not None else result.get("provenance", {}).get("seed")
    out = {"method": method, "dataset": dataset, "seed": seed, "crf": bool(crf), "run": result.get("run", ""),
           "eval": eval_file(result)}
    for col, (group, key) in METRIC_KEYS.items():
        out[col] = float(result[group + ("_crf" if crf else "")][key])
    out["source"] = source
    out.update(extra)
    return out


def summary(rows: list[dict], metrics=METRICS, by: tuple | None = None) -> list[dict]:
    """Mean ± sample standard deviation (ddof 1) over seeds of the measured rows, one row per
    configuration (the columns other than seed, run, eval, source and ``metrics``, in first-seen
    order), with ``n`` seeds; ``mean`` and ``std`` are per metric: ``{metric: (mean, std)}``."""
    import numpy as np

    rows = [r for r in rows if r.get("source", MEASURED) == MEASURED]
    if not rows:
        return []
    skip = {"seed", "run", "eval", "source", *metrics}
    by = by or tuple(c for c in rows[0] if c not in skip)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(c) for c in by), []).append(r)
    out = []
    for key, members in groups.items():
        s = dict(zip(by, key))
        s["n"] = len(members)
        for m in metrics:
            vals = np.asarray([float(r[m]) for r in members if r.get(m) is not None and r.get(m) != ""], dtype=float)
            mean = float(vals.mean()) if len(vals) else math.nan
            std = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
            s[m] = (mean, std)
        out.append(s)
    return out


def fmt_mean_std(value, digits: int = 1) -> str:
    """``22.3 ± 0.4`` (the std left out when there is one seed); plain numbers as ``22.3``."""
    if value is None or value == "":
        return ""
    if isinstance(value, tuple):
        mean, std = value
        if not math.isfinite(mean):
            return ""
        return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(rows: list[dict], metrics=METRICS, by: tuple | None = None, caption: str = "") -> str:
    """Measured configurations as mean ± std over seeds (n shown), then the quoted rows."""
    summ = summary(rows, metrics, by)
    quoted = [r for r in rows if r.get("source", MEASURED) != MEASURED]
    cols = [c for c in (summ[0] if summ else {}) if c not in metrics and c != "n"]
    cols = cols + ["n"] + list(metrics) + ["source"]
    lines = ([caption, ""] if caption else []) + ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for s in summ:
        s = {**s, "source": "measured" + (f" (mean ± std, {s['n']} seeds)" if s["n"] > 1 else " (1 seed)")}
        lines.append("| " + " | ".join(fmt_mean_std(s.get(c)) for c in cols) + " |")
    for q in quoted:
        lines.append("| " + " | ".join("" if c == "n" else fmt_mean_std(q.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def save_table(rows: list[dict], out_dir: Path, name: str, caption: str = "", metrics=METRICS,
               by: tuple | None = None) -> Path:
    """Write ``name.csv`` (every seed's row, full precision, quoted rows too) and ``name.md``
    (mean ± std over seeds per configuration, quoted rows marked)."""
    import csv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    with open(out_dir / f"{name}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    (out_dir / f"{name}.md").write_text(markdown(rows, metrics, by, caption))
    return out_dir / f"{name}.csv"


def save_provenance(out_dir: Path, name: str, scale: str, runs: dict, **extra) -> Path:
    """``name.provenance.json``: the environment plus each run's own provenance."""
    runs_prov = {k: (v.get("provenance") if isinstance(v, dict) else v) for k, v in runs.items()}
    return write_json(Path(out_dir) / f"{name}.provenance.json",
                      provenance(scale=scale, artefact=name, runs=runs_prov, **extra))


def show(rows: list[dict], metrics=METRICS, by: tuple | None = None):
    """A pandas DataFrame of the summary (mean ± std over seeds) and quoted rows, for display."""
    import pandas as pd

    summ = summary(rows, metrics, by)
    table = [{k: (fmt_mean_std(v) if isinstance(v, tuple) else v) for k, v in s.items()} for s in summ]
    table += [{k: v for k, v in r.items() if k not in ("run", "eval", "seed")}
              for r in rows if r.get("source", MEASURED) != MEASURED]
    return pd.DataFrame(table)
