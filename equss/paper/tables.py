"""Tables of results: one row per run and seed (unsupervised and linear Acc / mIoU, the run
record it comes from), CSV + Markdown files, the provenance beside them, and a DataFrame for
notebook display.

The CSV keeps every seed's row with full-precision numbers and the ``run`` (the record
folder under ``runs/``) and ``eval`` (the file in it) they were read from, so every number
traces to one record (:mod:`equss.paper.trace` checks it).  The Markdown shows the mean ±
standard deviation over seeds of each measured configuration, with the seed count, and the
paper's quoted rows marked quoted.

Every row says how it was measured (issue 26), each column derived from the record it cites:
``probe`` (:data:`PROBES`: ``online``, the official protocol's probes trained with the head, and the
raw-feature row as the paper reports it beside them; ``post-hoc``, probes fitted to convergence on the
frozen head output by the raw-feature row's rule; ``post-hoc quantised``, the same on EQUSS's
product-quantised vectors: :mod:`equss.pipeline.posthoc`), ``resolution`` (the evaluation crop size)
and ``recipe`` (:func:`recipe_of`: which training recipe the run's config is; "—" for the raw features,
whose k-means and linear probe already follow the converged rule).
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


PROBES = ("online", "post-hoc", "post-hoc quantised")
# probe -> the part of a post-hoc result (posthoc.json) that holds its numbers
PROBE_PARTS = {"post-hoc": "head", "post-hoc quantised": "quantised"}
NO_RECIPE = "\u2014"  # the raw features: no training
# the two training recipes (presets/paper.yaml, presets/proxy.yaml): lr, probe lr, gradient clipping, dropout masks
RECIPES = {"STEGO": (5e-4, 5e-3, 0.0, True),   # STEGO src/train_segmentation.py @eb4d6b5: Adam 5e-4 / 5e-3, no clip
           "EQUSS": (3e-4, 3e-3, 10.0, False)}  # EQUSS train.py @da82dea: 3e-4 / 3e-3, clip 10, one shared mask


def recipe_of(cfg: dict | None) -> str:
    """Which training recipe a run's config (a dict: ``config.yaml`` / an evaluation's provenance
    ``config``) is: ``STEGO`` (lr 5e-4, probe lr 5e-3, no gradient clipping, ``dropout_per_branch``),
    ``EQUSS`` (3e-4, 3e-3, clip 10, one shared dropout mask), ``other`` for any other mix; "—" without a
    training config (the raw-feature baseline)."""
    if not isinstance(cfg, dict) or not isinstance(cfg.get("train"), dict) or not isinstance(cfg.get("model"), dict):
        return NO_RECIPE
    t, m = cfg["train"], cfg["model"]
    try:
        have = (float(t["lr"]), float(t["probe_lr"]), float(t["clip_grad"]), bool(m.get("dropout_per_branch", False)))
    except (KeyError, TypeError, ValueError):
        return NO_RECIPE
    for name, (lr, probe_lr, clip, per_branch) in RECIPES.items():
        if (math.isclose(have[0], lr, rel_tol=1e-9) and math.isclose(have[1], probe_lr, rel_tol=1e-9)
                and math.isclose(have[2], clip, abs_tol=1e-12) and have[3] == per_branch):
            return name
    return "other"


def resolution_of(result: dict) -> int | None:
    """The evaluation resolution (crop size) of an evaluation: a baseline's ``eval_resolution`` (its
    ``resolution`` is the training split's), else its provenance's ``resolution`` (an evaluation, the
    post-hoc probes), else its config's ``data.eval_resolution``; None if it names none."""
    prov = result.get("provenance") or {}
    for value in (prov.get("eval_resolution"), prov.get("resolution"),
                  ((prov.get("config") or {}).get("data") or {}).get("eval_resolution")):
        if value is not None:
            return int(value)
    return None


def is_baseline(result: dict) -> bool:
    return eval_file(result) == "baseline.json"


def row(method: str, result: dict, dataset: str = "", seed: int | None = None, crf: bool = False,
        source: str = MEASURED, probe: str | None = None, **extra) -> dict:
    """One table row: ``method, dataset, seed, crf, run, eval, probe, resolution, recipe, unsup_acc,
    unsup_miou, linear_acc, linear_miou, source`` (+ ``extra`` columns).  ``crf``: the CRF-refined
    numbers of a ``run(cfg, crf=True)`` result.  ``probe`` (:data:`PROBES`): ``online`` for a run's
    evaluation and for a raw-feature baseline (the default; the baseline's recipe "—" marks it),
    ``post-hoc`` / ``post-hoc quantised`` for the head / quantised part of a
    :func:`equss.paper.runs.posthoc` result.  ``resolution`` and ``recipe`` come from the result's
    provenance (:func:`resolution_of`, :func:`recipe_of`).  Numbers are kept at full precision (the
    Markdown rounds)."""
    baseline = is_baseline(result)
    probe = probe or "online"
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {', '.join(PROBES)}, got {probe!r}")
    if baseline and probe != "online":
        raise ValueError(f"a raw-feature baseline's row is one row (probe 'online', recipe '{NO_RECIPE}'), "
                         f"not {probe!r}")
    part = PROBE_PARTS.get(probe)
    numbers = result.get(part) if part else result
    if not isinstance(numbers, dict) or "cluster" not in numbers:
        what = f"no {part!r} part" if part else "no online probes (a post-hoc result needs probe='post-hoc')"
        raise ValueError(f"{eval_file(result)} of {result.get('run', 'this result')} has {what} for probe {probe!r}")
    if crf and part:
        raise ValueError("post-hoc probes are evaluated without the CRF")
    seed = seed if seed is not None else result.get("provenance", {}).get("seed")
    config = (result.get("provenance") or {}).get("config")
    out = {"method": method, "dataset": dataset, "seed": seed, "crf": bool(crf), "run": result.get("run", ""),
           "eval": eval_file(result), "probe": probe, "resolution": resolution_of(result),
           "recipe": NO_RECIPE if baseline else recipe_of(config)}
    for col, (group, key) in METRIC_KEYS.items():
        out[col] = float(numbers[group + ("_crf" if crf else "")][key])
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
    """A pandas DataFrame of the summary (mean ± std over seeds, one decimal) and the quoted rows, for
    display: text cells, "" where a row has no value (never NaN or None), ``n`` an integer."""
    import pandas as pd

    summ = summary(rows, metrics, by)
    table = [{**{k: (fmt_mean_std(v) if isinstance(v, tuple) else v) for k, v in s.items()},
              "source": MEASURED + (f" (mean ± std, {s['n']} seeds)" if s["n"] > 1 else " (1 seed)")} for s in summ]
    table += [{k: fmt_mean_std(v) if k in metrics else v for k, v in r.items() if k not in ("run", "eval", "seed")}
              for r in rows if r.get("source", MEASURED) != MEASURED]
    present = lambda v: v is not None and not (isinstance(v, float) and math.isnan(v))  # noqa: E731
    cols = list(dict.fromkeys(k for r in table for k in r))
    text = lambda k, v: (int(v) if k == "n" else fmt_mean_std(v) if isinstance(v, (bool, float)) else v)  # noqa: E731
    return pd.DataFrame([[text(k, r[k]) if present(r.get(k)) else "" for k in cols] for r in table], columns=cols,
                        dtype=object)


# ---------------------------------------------------------------------------- measured beside the paper
EQUSS, STEGO, RAW = "EQUSS", "STEGO", "DINO (raw features)"
_T3 = {"M1": "M1 (70, no PQ)", "M2": "M2 (384, no PQ)", "M3": "M3 (1024, no PQ)", "Q2": "Q2 (384, PQ)",
       "Q3": "Q3 (1024, PQ)"}
# the contrasts each table states (A - B for the paper's "A > B"; equss.paper.claims tests the same pairs)
CONTRASTS = {"table1": ((EQUSS, STEGO), (EQUSS, RAW), (STEGO, RAW)),
             "table2": ((EQUSS, STEGO),),
             "table3": ((_T3["M1"], _T3["M2"]), (_T3["M2"], _T3["M3"]), (_T3["Q2"], _T3["M2"]),
                        (_T3["Q3"], _T3["M3"]))}
METRIC_NAMES = {"unsup_acc": "unsup. Acc", "unsup_miou": "unsup. mIoU", "linear_acc": "linear Acc",
                "linear_miou": "linear mIoU"}
MINUS = "\u2212"


def _number(v) -> float:
    """A float, NaN for a missing value (None, "", NaN, a non-number)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x


def _base(method: str) -> str:
    """A quoted row's method without its bracketed paper setting: ``"STEGO [CocoStuff-27]"`` -> ``"STEGO"``."""
    return str(method).split(" [", 1)[0]


def _short(method: str) -> str:
    """``"Q3 (1024, PQ)"`` -> ``"Q3"``, ``"DINO (raw features)"`` -> ``"DINO"`` (labels of contrasts)."""
    return str(method).split(" (", 1)[0]


def _is_crf(v) -> bool:
    return v is True or str(v).strip().lower() in ("true", "yes", "1")


def _stats(values: list[float]) -> tuple[float, float]:
    import numpy as np

    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    mean = float(v.mean()) if len(v) else math.nan
    return mean, (float(v.std(ddof=1)) if len(v) > 1 else math.nan)


def versus_paper_rows(rows: list[dict], contrasts=(), metrics=METRICS, group: str | None = None) -> list[dict]:
    """The measured configurations beside the paper's quoted numbers, then the contrasts.

    ``rows``: a table's rows as its notebook builds them (measured rows per seed plus the quoted rows of
    :func:`equss.paper.quoted.quoted_rows`, whose method is the measured one plus a bracketed setting);
    ``contrasts``: ``(A, B)`` method pairs (:data:`CONTRASTS`); ``group``: a column that splits the table
    (Table 2's ``table``: 2a / 2b), quoted rows matched within it.

    One dict per measured configuration (``kind`` "arm": method, dataset, crf) and per contrast present
    (``kind`` "contrast": A - B within the same group, dataset and crf, seed by seed over the seeds both
    ran), each with ``label``, ``group``, ``dataset``, ``crf``, ``n`` (int: seeds) and per metric
    ``values`` (per seed), ``mean``, ``std`` (ddof 1, NaN with one seed), ``paper`` (the quoted value, or
    the quoted A - B; NaN where the paper quotes none) and ``diff`` (mean - paper)."""
    measured = [r for r in rows if r.get("source", MEASURED) == MEASURED]
    quoted = {}
    for r in rows:
        if r.get("source", MEASURED) != MEASURED:
            quoted[(r.get(group) if group else None, _base(r["method"]))] = {m: _number(r.get(m)) for m in metrics}
    arms: dict[tuple, dict] = {}
    for r in measured:
        key = (r.get(group) if group else None, r["method"], r.get("dataset", ""), _is_crf(r.get("crf", False)))
        arms.setdefault(key, {})[int(r["seed"])] = {m: _number(r.get(m)) for m in metrics}

    def entry(kind, label, key, by_seed, paper):
        g, _, dataset, crf = key
        seeds = sorted(by_seed)
        out = {"kind": kind, "label": label, "group": g or "", "dataset": dataset, "crf": crf, "n": len(seeds),
               "seeds": seeds, "values": {}, "mean": {}, "std": {}, "paper": {}, "diff": {}}
        for m in metrics:
            vals = [by_seed[s][m] for s in seeds]
            out["values"][m] = vals
            out["mean"][m], out["std"][m] = _stats(vals)
            out["paper"][m] = paper.get(m, math.nan)
            out["diff"][m] = out["mean"][m] - out["paper"][m]
        return out

    out = []
    for key, by_seed in arms.items():
        g, method, _, crf = key
        out.append(entry("arm", method + (" + CRF" if crf else ""), key, by_seed, quoted.get((g, method), {})))
    for a, b in contrasts:
        for key, by_seed in arms.items():
            g, method, dataset, crf = key
            other = arms.get((g, b, dataset, crf))
            if method != a or other is None:
                continue
            seeds = sorted(set(by_seed) & set(other))
            if not seeds:
                continue
            diffs = {s: {m: by_seed[s][m] - other[s][m] for m in metrics} for s in seeds}
            qa, qb = quoted.get((g, a), {}), quoted.get((g, b), {})
            paper = {m: qa.get(m, math.nan) - qb.get(m, math.nan) for m in metrics}
            label = f"{_short(a)} {MINUS} {_short(b)}" + (" (+ CRF)" if crf else "")
            out.append(entry("contrast", label, key, diffs, paper))
    return out


def _cell(v: float, signed: bool = False, digits: int = 1) -> str:
    if not math.isfinite(v):
        return "—"
    if round(v, digits) == 0:  # no "-0.0"
        v = 0.0
    text = f"{v:+.{digits}f}" if signed and v else f"{v:.{digits}f}"
    return text.replace("-", MINUS)


def versus_paper_frame(rows: list[dict], contrasts=(), metrics=METRICS, group: str | None = None):
    """:func:`versus_paper_rows` as a DataFrame of text: per metric the measured mean ± std over seeds, the
    paper's value and measured - paper, one decimal, "—" where there is nothing (never NaN or None);
    ``n`` an integer; contrasts signed.  Columns are two-level: ``("", "method")``, ... and
    ``(metric name, "measured" | "paper" | "measured − paper")``."""
    import pandas as pd

    head = [("", "table")] if group else []
    head += [("", "method"), ("", "dataset"), ("", "CRF"), ("", "n")]
    sub = ("measured", "paper", f"measured {MINUS} paper")
    cols = head + [(METRIC_NAMES.get(m, m), s) for m in metrics for s in sub]
    table = []
    for e in versus_paper_rows(rows, contrasts, metrics, group):
        signed = e["kind"] == "contrast"
        cells = ([e["group"]] if group else []) + [e["label"], e["dataset"], "yes" if e["crf"] else "no", int(e["n"])]
        for m in metrics:
            mean, std = e["mean"][m], e["std"][m]
            meas = _cell(mean, signed) + (f" ± {_cell(std)}" if math.isfinite(mean) and math.isfinite(std) else "")
            cells += [meas, _cell(e["paper"][m], signed), _cell(e["diff"][m], True)]
        table.append(cells)
    frame = pd.DataFrame(table, columns=pd.MultiIndex.from_tuples(cols))
    frame[("", "n")] = frame[("", "n")].astype(int)
    return frame


def _paper_settings(rows: list[dict]) -> str:
    """The bracketed settings of the quoted rows (``CocoStuff-27, ViT-S/8``), in first-seen order."""
    seen = dict.fromkeys(str(r["method"]).split(" [", 1)[1].rstrip("]") for r in rows
                         if r.get("source", MEASURED) != MEASURED and " [" in str(r.get("method", "")))
    return "; ".join(seen)


def versus_paper(rows: list[dict], contrasts=(), metrics=METRICS, group: str | None = None):
    """:func:`versus_paper_frame` for display (a pandas Styler with a caption saying what each column is)."""
    frame = versus_paper_frame(rows, contrasts, metrics, group)
    settings = _paper_settings(rows)
    caption = ("measured: mean ± std over the n seeds (a contrast A − B: per seed, then mean ± std); "
               f"paper: quoted from Kim et al. (AAAI 2024){f' [{settings}]' if settings else ''}, a contrast "
               "as the difference of its quoted rows; measured − paper: the mean minus the paper's value "
               "(for a contrast: how much larger the measured gain is). Percent; — where the paper quotes none.")
    return (frame.style.set_caption(caption).hide(axis="index")
            .set_table_styles([{"selector": "caption", "props": "caption-side: top; text-align: left;"}]))


def t_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` t-interval of the mean of ``values`` (NaN bounds with fewer than two finite values)."""
    import numpy as np
    from scipy import stats

    v = np.asarray([x for x in map(_number, values) if math.isfinite(x)], dtype=float)
    if len(v) < 2:
        return (math.nan, math.nan)
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return float(v.mean()) - half, float(v.mean()) + half


def dots(rows: list[dict], contrasts=(), metrics=METRICS, group: str | None = None, level: float = 0.95):
    """Long-form frames behind a table's dot chart (:func:`equss.paper.plots.table_dots`):
    ``points`` (one row per seed: panel "configurations" / "contrasts", label, metric, seed, value) and
    ``summary`` (per label and metric: n, mean, low / high of the ``level`` t-interval, paper)."""
    import pandas as pd

    points, summary = [], []
    for e in versus_paper_rows(rows, contrasts, metrics, group):
        panel = "contrasts" if e["kind"] == "contrast" else "configurations"
        label = " ".join(x for x in (e["group"], e["label"]) if x)
        if group and e["dataset"]:
            label += f" ({e['dataset']})"
        for m in metrics:
            for s, v in zip(e["seeds"], e["values"][m]):
                if math.isfinite(v):
                    points.append({"panel": panel, "label": label, "metric": METRIC_NAMES.get(m, m), "seed": s,
                                   "value": v})
            low, high = t_interval(e["values"][m], level)
            summary.append({"panel": panel, "label": label, "metric": METRIC_NAMES.get(m, m), "n": int(e["n"]),
                            "mean": e["mean"][m], "low": low, "high": high, "paper": e["paper"][m]})
    return pd.DataFrame(points, columns=["panel", "label", "metric", "seed", "value"]), pd.DataFrame(summary)
