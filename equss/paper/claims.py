"""The paper's claims as comparisons between result cells, decided from the seeds.

A *cell* is one measured quantity of one configuration (e.g. Table 1's EQUSS unsupervised
mIoU on CamVid) with one value per seed.  A claim is a linear contrast of cell means that
the paper says is positive, ``sum_i w_i * mean_i > 0``:

* ``A > B``                        weights ``{A: 1, B: -1}``;
* "the PQ gain is larger at 1024"  ``(Q3 - M3) - (Q2 - M2)``: ``{Q3: 1, M3: -1, Q2: -1, M2: 1}``.

The test is Welch's: the contrast's standard error is ``sqrt(sum w_i^2 s_i^2 / n_i)`` and its
degrees of freedom the Welch-Satterthwaite value, so cells may have different seed counts
and variances (the seeds of two methods are independent runs, not paired measurements).
With two cells this is exactly ``scipy.stats.ttest_ind(equal_var=False)`` and its
confidence interval.  Verdict at level 95 %:

* **holds**:         the interval lies above zero;
* **contradicted**:  the interval lies below zero;
* **inconclusive**:  the interval contains zero, or no cell has two seeds (no variance to
  judge by; the estimate is still reported).

Why this test: three seeds per cell give little power, and a claim should only be called
settled when seed noise cannot explain it; Welch's interval is the standard small-sample
choice that does not assume equal variances, and it is what a reader can recompute from the
per-seed CSVs.  Correlation claims (Fig. 4c) use Pearson's r with the Fisher-z interval
(:func:`correlation`); trend claims (Fig. 2) the least-squares slope over log2(width) with
its t interval (:func:`slope`).  The same three verdicts apply.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
LEVEL = 0.95


@dataclass
class Verdict:
    claim: str                    # the paper's claim, in words
    source: str                   # where the paper makes it (table / figure)
    test: str                     # what was computed
    estimate: float               # the contrast / r / slope
    low: float                    # 95 % interval
    high: float
    verdict: str                  # holds / contradicted / inconclusive
    n: dict = field(default_factory=dict)  # seeds per cell
    note: str = ""

    def row(self) -> dict:
        d = asdict(self)
        d["n"] = ", ".join(f"{k}: {v}" for k, v in self.n.items())
        return d


def _decide(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    if low > 0:
        return HOLDS
    if high < 0:
        return CONTRADICTED
    return INCONCLUSIVE


def contrast(cells: Mapping[str, Sequence[float]], weights: Mapping[str, float], claim: str, source: str,
             test: str | None = None, level: float = LEVEL, note: str = "") -> Verdict:
    """Welch interval of ``sum_i w_i mean(cells[i])``; see the module docstring."""
    missing = [k for k in weights if not len(cells.get(k, ()))]
    if missing:
        return Verdict(claim, source, test or _describe(weights), float("nan"), float("nan"), float("nan"),
                       INCONCLUSIVE, {k: len(cells.get(k, ())) for k in weights}, f"no values for {', '.join(missing)}")
    est, var_terms, dfs = 0.0, [], []
    n = {}
    for k, w in weights.items():
        x = np.asarray(cells[k], dtype=float)
        n[k] = len(x)
        est += w * x.mean()
        if len(x) >= 2:
            v = w * w * x.var(ddof=1) / len(x)
            var_terms.append(v)
            dfs.append((v, len(x) - 1))
    if len(var_terms) < len(weights) or not var_terms:
        # a cell with one seed has no variance estimate: no interval
        return Verdict(claim, source, test or _describe(weights), float(est), float("nan"), float("nan"),
                       INCONCLUSIVE, n, note or "fewer than 2 seeds in a cell: no interval")
    se2 = sum(var_terms)
    if se2 == 0:
        low = high = est
    else:
        df = se2 ** 2 / sum(v * v / d for v, d in dfs)
        half = stats.t.ppf(0.5 + level / 2, df) * math.sqrt(se2)
        low, high = est - half, est + half
    return Verdict(claim, source, test or _describe(weights), float(est), float(low), float(high),
                   _decide(low, high), n, note)


def greater(cells: Mapping[str, Sequence[float]], a: str, b: str, claim: str, source: str, **kw) -> Verdict:
    """``mean(a) > mean(b)``."""
    return contrast(cells, {a: 1.0, b: -1.0}, claim, source, **kw)


def correlation(x: Sequence[float], y: Sequence[float], claim: str, source: str, sign: int = -1,
                level: float = LEVEL, note: str = "") -> Verdict:
    """Pearson r of (x, y) with the Fisher-z interval; the claim is ``sign * r > 0``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 4:
        return Verdict(claim, source, "Pearson r, Fisher z", float("nan"), float("nan"), float("nan"),
                       INCONCLUSIVE, {"points": len(x)}, "fewer than 4 points")
    r = float(np.corrcoef(x, y)[0, 1])
    z, se = np.arctanh(np.clip(r, -0.999999, 0.999999)), 1 / math.sqrt(len(x) - 3)
    q = stats.norm.ppf(0.5 + level / 2)
    low, high = float(np.tanh(z - q * se)), float(np.tanh(z + q * se))
    lo_s, hi_s = (low, high) if sign > 0 else (-high, -low)
    return Verdict(claim, source, "Pearson r, Fisher z" + (" (claim: r < 0)" if sign < 0 else ""), r, low, high,
                   _decide(lo_s, hi_s), {"points": len(x)}, note)


def slope(x: Sequence[float], y: Sequence[float], claim: str, source: str, sign: int = 1,
          level: float = LEVEL, note: str = "") -> Verdict:
    """Least-squares slope of y on x with its t interval (n - 2 d.o.f.); claim ``sign * slope > 0``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or len(set(x.tolist())) < 2:
        return Verdict(claim, source, "OLS slope", float("nan"), float("nan"), float("nan"), INCONCLUSIVE,
                       {"points": len(x)}, "fewer than 3 points")
    res = stats.linregress(x, y)
    half = stats.t.ppf(0.5 + level / 2, len(x) - 2) * res.stderr
    low, high = res.slope - half, res.slope + half
    lo_s, hi_s = (low, high) if sign > 0 else (-high, -low)
    return Verdict(claim, source, "OLS slope" + (" (claim: slope < 0)" if sign < 0 else ""), float(res.slope),
                   float(low), float(high), _decide(lo_s, hi_s), {"points": len(x)}, note)


def _describe(weights: Mapping[str, float]) -> str:
    parts = []
    for k, w in weights.items():
        sign = "-" if w < 0 else "+"
        mag = "" if abs(w) == 1 else f"{abs(w):g}*"
        parts.append(f"{sign} {mag}{k}")
    text = " ".join(parts).lstrip("+ ")
    return f"Welch {int(LEVEL * 100)}% interval of {text}"


def write(verdicts: Sequence[Verdict], out_dir, name: str = "claims") -> None:
    """``name.csv`` (every field) and ``name.md`` (the table the README copies)."""
    import csv
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [v.row() for v in verdicts]
    with open(out / f"{name}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    fmt = lambda v: "—" if not math.isfinite(v) else f"{v:+.2f}"  # noqa: E731
    lines = ["| claim (paper) | where | verdict | estimate [95% interval] | seeds | test |", "|---|---|---|---|---|---|"]
    for v in verdicts:
        interval = f"{fmt(v.estimate)} [{fmt(v.low)}, {fmt(v.high)}]"
        note = f" ({v.note})" if v.note else ""
        lines.append(f"| {v.claim} | {v.source} | **{v.verdict}** | {interval} | {v.row()['n']} | {v.test}{note} |")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------- the paper's claims
TABLES = ("table1", "table2", "table3", "fig2", "fig4", "fig4_distance", "fig6")
METRIC_LABELS = {"unsup_miou": "unsup. mIoU", "unsup_acc": "unsup. Acc", "linear_miou": "linear mIoU",
                 "linear_acc": "linear Acc"}


def load_tables(results_dir) -> dict:
    """The per-seed CSVs of a results folder that the claims read (missing ones left out)."""
    from pathlib import Path

    import pandas as pd

    out = {}
    for name in TABLES:
        path = Path(results_dir) / f"{name}.csv"
        if path.is_file():
            out[name] = pd.read_csv(path)
    return out


def _measured(df, crf: bool = False):
    if df is None:
        return None
    d = df[df["source"] == "measured"] if "source" in df else df
    if "crf" in d:
        d = d[d["crf"].astype(str).str.lower().isin(["true"] if crf else ["false"])]
    return d


def _values(df, column: str, **where) -> list[float]:
    if df is None or column not in df:
        return []
    d = df
    for k, v in where.items():
        d = d[d[k] == v]
    return [float(x) for x in d[column] if x == x]  # drop NaN


def _variant(df):
    """Table 3's row label (M1, M2, M3, Q2, Q3) from the method column."""
    return df.assign(variant=df["method"].astype(str).str.split().str[0])


def _missing(claim: str, source: str, table: str) -> Verdict:
    return Verdict(claim, source, "—", math.nan, math.nan, math.nan, INCONCLUSIVE, {}, f"{table}.csv not produced")


def paper_claims(tables: dict) -> list[Verdict]:
    """Every claim of the paper that the reproduction tests, decided from the per-seed tables
    (``tables``: name -> DataFrame as :func:`load_tables` gives).  Numbers without the CRF
    (the official protocol); a claim whose table is missing is inconclusive with a note."""
    V: list[Verdict] = []
    t1, t2, t3 = (_measured(tables.get(k)) for k in ("table1", "table2", "table3"))

    # Tables 1 and 2: EQUSS > STEGO per dataset (Table 2a's proxy runs are Table 1's: counted once)
    import pandas as pd

    both = [d.assign(where=w) for d, w in ((t1, "Table 1"), (t2, "Table 2")) if d is not None]
    if both:
        every = pd.concat(both)
        rows = every.drop_duplicates(subset=["method", "dataset", "seed"])
        for ds in dict.fromkeys(rows["dataset"]):
            d = rows[rows["dataset"] == ds]
            src = " / ".join(dict.fromkeys(every[every["dataset"] == ds]["where"]))
            for m, label in METRIC_LABELS.items():
                cells = {k: _values(d, m, method=k) for k in ("EQUSS", "STEGO")}
                V.append(greater(cells, "EQUSS", "STEGO", f"EQUSS > STEGO, {label} ({ds})", src))
    else:
        V.append(_missing("EQUSS > STEGO", "Tables 1, 2", "table1"))

    # Table 1: both beat the raw backbone
    if t1 is not None:
        raw = "DINO (raw features)"
        for method in ("EQUSS", "STEGO"):
            for m, label in METRIC_LABELS.items():
                cells = {k: _values(t1, m, method=k) for k in (method, raw)}
                V.append(greater(cells, method, raw, f"{method} > raw backbone, {label}", "Table 1"))
    else:
        V.append(_missing("EQUSS and STEGO > raw backbone", "Table 1", "table1"))

    # Table 3: dimension without PQ hurts; PQ helps, more at 1024; Q3 best
    if t3 is not None:
        t3 = _variant(t3)
        cells = {v: _values(t3, "unsup_miou", variant=v) for v in ("M1", "M2", "M3", "Q2", "Q3")}
        V.append(greater(cells, "M1", "M2", "M1 > M2 without PQ (unsup. mIoU)", "Table 3"))
        V.append(greater(cells, "M2", "M3", "M2 > M3 without PQ (unsup. mIoU)", "Table 3"))
        V.append(greater(cells, "Q2", "M2", "PQ helps at 384: Q2 > M2 (unsup. mIoU)", "Table 3"))
        V.append(greater(cells, "Q3", "M3", "PQ helps at 1024: Q3 > M3 (unsup. mIoU)", "Table 3"))
        V.append(contrast(cells, {"Q3": 1, "M3": -1, "Q2": -1, "M2": 1},
                          "PQ gain larger at 1024: (Q3 - M3) > (Q2 - M2) (unsup. mIoU)", "Table 3"))
        for other in ("M1", "M2", "M3", "Q2"):
            V.append(greater(cells, "Q3", other, f"Q3 best: Q3 > {other} (unsup. mIoU)", "Table 3"))
    else:
        V.append(_missing("Table 3 ablation", "Table 3", "table3"))

    # Fig. 4: bits per class, entropy vs IoU, codeword distances
    f4 = _measured(tables.get("fig4"))
    if f4 is not None:
        cells = {k: _values(f4, "entropy_bits", method=k) for k in ("STEGO", "EQUSS")}
        V.append(greater(cells, "STEGO", "EQUSS", "EQUSS needs fewer bits per class than STEGO", "Fig. 4a",
                         note="classes x seeds as replicates; the two entropies are not on one scale "
                              "(STEGO: 256-bin histograms of 70 continuous dims; EQUSS: codes of M codebooks)"))
        eq = f4[f4["method"] == "EQUSS"].groupby("class_index")[["entropy_bits", "iou"]].mean()
        V.append(correlation(eq["entropy_bits"], eq["iou"], "lower-entropy classes have higher IoU (r < 0)",
                             "Fig. 4c", sign=-1, note="per-class means over seeds"))
    else:
        V.append(_missing("entropy claims", "Fig. 4a, c", "fig4"))
    fd = tables.get("fig4_distance")
    if fd is not None:
        same = fd["class_a_index"] == fd["class_b_index"]
        within = fd[same]["distance"].tolist()
        across = fd[~same].groupby(["seed", "class_a_index"])["distance"].mean().tolist()
        V.append(greater({"across": across, "within": within}, "across", "within",
                         "codeword distance within a class < across classes (Eq. 9)", "Fig. 4d",
                         note="per-class values (classes x seeds) as replicates"))
    else:
        V.append(_missing("within-class < across-class distance", "Fig. 4d", "fig4_distance"))

    # Fig. 2: trends over log2(width), unsupervised Acc
    f2 = _measured(tables.get("fig2"))
    if f2 is not None:
        for method, sign, claim, note in (
                ("supervised head", 1, "supervised head: unsup. Acc rises with width", ""),
                ("STEGO head", -1, "STEGO head: unsup. Acc falls with width", ""),
                ("EQUSS (PQ)", 1, "EQUSS: unsup. Acc does not fall with width", "holds = rises; inconclusive = "
                 "flat within noise (consistent with 'does not fall'); contradicted = falls")):
            d = f2[f2["method"] == method]
            metric = "unsup_acc"
            V.append(slope(np.log2(d["dim"].astype(float)), d[metric].astype(float), claim + f" ({metric})",
                           "Fig. 2", sign=sign, note=note))
    else:
        V.append(_missing("Fig. 2 trends", "Fig. 2", "fig2"))

    # Fig. 6: M > 1 beats M = 1; best region M 8-32, K 32-64
    f6 = _measured(tables.get("fig6"))
    if f6 is not None:
        grid_note = "grid cells (K x seeds) as replicates"
        cells = {"M > 1": f6[f6["M"] > 1]["unsup_miou"].tolist(), "M = 1": f6[f6["M"] == 1]["unsup_miou"].tolist()}
        V.append(greater(cells, "M > 1", "M = 1", "more codebooks help: M > 1 beats M = 1 (unsup. mIoU)", "Fig. 6",
                         note=grid_note))
        region = f6["M"].between(8, 32) & f6["K"].between(32, 64)
        cells = {"region": f6[region]["unsup_miou"].tolist(), "rest": f6[~region]["unsup_miou"].tolist()}
        V.append(greater(cells, "region", "rest", "best region M 8-32, K 32-64 beats the rest (unsup. mIoU)",
                         "Fig. 6", note="grid cells x seeds as replicates"))
    else:
        V.append(_missing("Fig. 6 grid claims", "Fig. 6", "fig6"))
    return V
