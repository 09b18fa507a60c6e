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
