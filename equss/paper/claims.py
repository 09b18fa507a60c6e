"""The paper's claims, decided from the training runs with one multiplicity-corrected family.

Design (issue 25)
-----------------
* **Unit of replication: the training run.**  Classes, grid cells and images are measured
  *inside* a run; they are aggregated within the run first (e.g. Fig. 4a's mean entropy over
  classes per run), and the runs (seeds) are the replicates.  Where one seed covers a grid
  (Figs 2 and 6), each grid cell is its own run, and the test says so.
* **Paired or not, read from the records.**  ``equss.pipeline.inputs.BatchSource`` draws the
  batch indices (``torch.randperm``) and the kNN positives (``sample_neighbors``) from one
  ``torch.Generator`` seeded with ``train.seed``; nothing else draws from it.  Two trainings
  with the same seed therefore see the same batches and positives whenever the values in
  :data:`BATCH_KEYS` agree (dataset, split, batch size, backbone/weights and resolution (they
  fix the kNN table), ``knn_k``, ``num_neighbors``, ``five_crop``, ``max_images``); a run with
  fewer steps sees a prefix of the other's stream.  Checked on the committed proxy configs
  (``results/proxy/runs/*/config.yaml``): STEGO and EQUSS of seed s share them, and so do the five
  Table 3 arms; the loss's random sample coordinates, dropout and the initialisation use the
  global torch RNG, which the different head widths consume differently, so only the data order
  is shared.  The raw-backbone baseline ("DINO (raw features)", ``pipeline/baseline.py``) draws
  its k-means sample and linear-probe order from other generators: it shares nothing.
  ``Configs.shares_batches`` repeats this check from the configs for every claim.  Then:

  - two arms that share each seed's batches: **paired t** over seeds (``scipy.stats.ttest_rel``);
  - more than two arms that share them (Table 3): **mixed model**, arm fixed and seed random
    (``statsmodels`` ``MixedLM``, REML); a contrast of arm means is tested with t on the
    between-within degrees of freedom ``N - arms - (seeds - 1)`` ((arms - 1)(seeds - 1) in the
    complete design: the exact df of the randomised-block analysis that the REML fit equals when
    the seed variance is positive; ``MixedLM``'s own z-test would be anti-conservative at 3 seeds);
  - arms that do not share batches: **Welch** t (``scipy.stats.ttest_ind(equal_var=False)``).
* **One family, Holm-Bonferroni.**  Every claim with a p-value is one hypothesis of a single
  family; ``statsmodels.stats.multitest.multipletests(method="holm")`` adjusts them.  ``p`` is the
  raw (two-sided, or TOST) p-value, ``p_holm`` the adjusted one, and the verdict uses ``p_holm``:

  - **holds**: ``p_holm < 0.05`` and the estimate has the claimed sign;
  - **contradicted**: ``p_holm < 0.05`` and the estimate has the opposite sign (for an
    equivalence claim: its Bonferroni-level interval lies wholly beyond the margin on the
    adverse side);
  - **equivalent**: an equivalence claim ("does not fall") whose TOST ``p_holm < 0.05``: the
    effect lies within the stated margin;
  - **inconclusive**: anything else (no evidence either way at these runs, which is *not*
    evidence for "no effect").
  ``low``/``high`` are the unadjusted 95 % interval (90 % for TOST, its natural interval); an
  interval that excludes zero can still be inconclusive after the correction.
* **The paper's metric.**  Table 3's ordering is stated for linear probing: linear mIoU first,
  unsupervised mIoU as a secondary row.  Fig. 4c plots per-class *accuracy*: computed from the
  matched confusion matrix in each run's ``eval.json`` (``cluster.confusion``: rows predicted
  class after Hungarian matching, columns true class; accuracy of class c = diagonal / column
  sum), Spearman's rho across classes with a leave-one-class-out check.  Table 2b (Potsdam-3)
  reports unsupervised accuracy only, so the Dubai stand-in is tested on that alone.
* **One scale.**  Fig. 4a's two entropies have different maxima: STEGO's summed per-dimension
  histogram entropy is at most ``head_dim x log2(bins)`` (70 x 8 = 560 bits) and EQUSS's codeword
  entropy ``M x log2(K)`` (32 x 8 = 256 bits, Eq. 6-7); both are divided by their maximum (read from
  the configs and ``fig4.provenance.json``) and compared as the fraction of capacity used.
* **Equivalence.**  "Does not fall" (Fig. 2, EQUSS) is a TOST on the OLS slope with a stated margin
  (:func:`fig2_margin`: a fall over the paper's four width doublings smaller than Table 1's quoted
  EQUSS - STEGO unsupervised-accuracy gain).
* **Grids and "best".**  Fig. 6 ran one seed: "M > 1 beats M = 1" is blocked by K (per K, the mean
  over M > 1 minus M = 1; one-sample t over the K blocks), with the additive M + K OLS model's F-test
  in the note; "the best region beats the rest" is Welch between the region's and the other cells'
  runs (their spread is configuration plus seed noise).  "Q3 best" is one intersection-union claim
  over Q3 - X for every other arm X (p = the largest pairwise p when all are positive).
* **Power.**  For each claim: the power at the runs it had, the minimum detectable effect at 80 %
  power (``mde``) and the runs (seeds per arm) needed to detect the paper's own effect (quoted values,
  :mod:`equss.paper.quoted`), from ``statsmodels.stats.power`` (one-sample / two-sample t, and
  ``FTestPowerF2`` with one numerator df for a model coefficient; where statsmodels returns NaN, at
  small df with large non-centrality, the same probability by integrating over the variance
  estimate) at the level the verdict needs (``alpha_power``: 0.05 / family size, Holm's first step,
  so a lower bound on the Holm power; ``n_needed_single``: the runs needed at 0.05, a study of that
  claim alone).  For the equivalence claim ``power`` is that of showing the margin when the true
  effect is 0 (TOST, integrated exactly).  A claim for which the paper quotes no effect (Figs 2, 4, 6)
  has an MDE but no power or runs needed.  Spreads are the observed ones, so at 3 seeds these
  figures are themselves rough.

* **Test-set uncertainty (bootstrap).**  The seed intervals above say how the estimate varies with
  training; the test images are one fixed sample, too.  Where the records hold per-image confusion
  counts (``*.per_image.npz`` beside each evaluation, :mod:`equss.eval.per_image`), each claim on a
  test-set metric (Tables 1-3: unsupervised / linear mIoU and Acc) also gets two percentile
  intervals (:func:`bootstrap_interval`): the test images resampled with replacement (``boot_image``),
  and whole sequences resampled (``boot_sequence``: CamVid's 233 test frames are 171 + 62 frames of
  two drives, so the effective sample is nearer 2 than 233; an image of a dataset without sequences is
  its own).  Each resample re-weights every run's per-image counts with the *same* multiplicities
  (all runs saw the same images), sums them, applies that run's split-level Hungarian matching *held
  fixed* (the matching is part of the evaluated model, not re-fitted per resample; ``rematch=True``
  re-fits it) and recomputes the claim's estimate (the contrast of arm means over seeds; for "Q3 best"
  the margin to the closest arm).  These columns (``BOOT_COLUMNS``) appear only when the records hold
  per-image counts; a claim they do not cover says why in ``boot_note``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy import stats

from equss.paper import quoted
from equss.paper.claims_arms import BATCH_KEYS, Configs  # noqa: F401 - BATCH_KEYS: named in the docstring
from equss.paper.claims_bootstrap import (  # noqa: F401 - part of this module's interface
    BOOT_N, BOOT_SEED, METRIC_GROUPS, Bootstrap, PerImageRecords, RunCounts, bootstrap_interval, resample_weights)
from equss.paper.claims_power import (  # noqa: F401 - the designs are part of this module's interface
    N_MAX, POWER, BlockContrast, Coefficient, Correlation, Equivalence, Intersection, OneSample, TwoSample, _Design,
    _t_power_quad)

HOLDS, CONTRADICTED, INCONCLUSIVE, EQUIVALENT = "holds", "contradicted", "inconclusive", "equivalent"
VERDICTS = (HOLDS, EQUIVALENT, CONTRADICTED, INCONCLUSIVE)
ALPHA = 0.05
LEVEL = 0.95
METRIC_LABELS = {"unsup_miou": "unsup. mIoU", "unsup_acc": "unsup. Acc", "linear_miou": "linear mIoU",
                 "linear_acc": "linear Acc"}
QUOTED_INDEX = {"unsup_acc": 0, "unsup_miou": 1, "linear_acc": 2, "linear_miou": 3}


# ---------------------------------------------------------------------------- verdicts
@dataclass
class Verdict:
    claim: str                    # the paper's claim, in words
    source: str                   # where the paper makes it (table / figure)
    metric: str                   # what is compared
    estimate: float               # in the claim's orientation where it is a difference (A - B for A > B)
    low: float                    # unadjusted interval (95 %; 90 % for TOST)
    high: float
    p: float                      # raw p (two-sided; TOST for equivalence claims)
    test: str                     # what was computed, and why that test
    n: float                      # replication units (runs per arm, seeds, blocks, classes)
    unit: str                     # what n counts
    note: str = ""
    recipe: str = ""              # what each arm ran (from the record configs)
    paper_effect: float = math.nan  # the paper's own effect (quoted), in the estimate's units
    p_holm: float = math.nan
    alpha_power: float = math.nan
    power: float = math.nan       # at the paper's effect, the n it ran, alpha_power
    mde: float = math.nan         # minimum detectable |effect| at 80 % power
    n_needed: float = math.nan    # units needed for the paper's effect at 80 % (alpha_power)
    n_needed_single: float = math.nan  # the same at alpha 0.05 (that claim alone)
    verdict: str = INCONCLUSIVE
    kind: str = "directional"     # directional | equivalence
    sign: int = 1                 # the claimed sign of the estimate
    margin: float = math.nan      # equivalence margin
    design: _Design | None = field(default=None, repr=False)
    robust: bool = True           # Fig. 4c: the sign survives leaving out each class
    bonferroni_interval: tuple = field(default=(math.nan, math.nan), repr=False)
    # test-set bootstrap (BOOT_COLUMNS; None: the records hold no per-image counts, columns left out)
    boot: dict | None = field(default=None, repr=False)
    boot_spec: dict | None = field(default=None, repr=False)  # what to resample: arms, contrasts, metric

    COLUMNS = ("claim", "source", "metric", "estimate", "low", "high", "p", "p_holm", "test", "n", "unit", "power",
               "mde", "n_needed", "n_needed_single", "paper_effect", "alpha_power", "verdict", "note", "recipe")

    BOOT_COLUMNS = ("boot_image_low", "boot_image_high", "boot_sequence_low", "boot_sequence_high", "boot_units",
                    "boot_note")

    def row(self, boot: bool = False) -> dict:
        d = asdict(self)
        out = {k: d[k] for k in self.COLUMNS}
        if boot:
            b = self.boot or {}
            out.update({k: b.get(k, math.nan if k.endswith(("low", "high")) else "") for k in self.BOOT_COLUMNS})
        return out


def holm(p: Sequence[float], alpha: float = ALPHA) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (``statsmodels.stats.multitest.multipletests``); NaN stays NaN."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=alpha, method="holm")[1]
    return out


def decide(v: Verdict, alpha: float = ALPHA) -> str:
    """The verdict of one claim from its adjusted p (see the module docstring)."""
    if not math.isfinite(v.p_holm):
        return INCONCLUSIVE
    if v.kind == "equivalence":
        if v.p_holm < alpha:
            return EQUIVALENT
        lo, hi = v.bonferroni_interval
        adverse = hi < -v.margin if v.sign > 0 else lo > v.margin
        return CONTRADICTED if adverse else INCONCLUSIVE
    if v.p_holm >= alpha or not math.isfinite(v.estimate) or v.estimate == 0:
        return INCONCLUSIVE
    if v.sign * v.estimate > 0:
        return HOLDS if v.robust else INCONCLUSIVE
    return CONTRADICTED


def finalize(verdicts: Sequence[Verdict], alpha: float = ALPHA, power: bool = True) -> list[Verdict]:
    """Holm over the whole family, then each verdict; with ``power`` also power, MDE and runs needed
    at ``alpha / m`` (m: claims with a p-value) and the runs needed at ``alpha``."""
    verdicts = list(verdicts)
    adj = holm([v.p for v in verdicts], alpha)
    m = int(np.isfinite([v.p for v in verdicts]).sum())
    a_fam = alpha / max(m, 1)
    for v, ph in zip(verdicts, adj):
        v.p_holm = float(ph)
        if v.kind == "equivalence" and v.design is not None and math.isfinite(v.estimate):
            df = v.design.df(v.design.n)
            half = stats.t.ppf(1 - a_fam, df) * v.design.se if df >= 1 else math.nan
            v.bonferroni_interval = (v.estimate - half, v.estimate + half)
        v.verdict = decide(v, alpha)
        v.alpha_power = a_fam
        if power and v.design is not None:
            effect = v.margin if v.kind == "equivalence" else v.sign * v.paper_effect
            v.power = v.design.power(effect, v.design.n, a_fam) if math.isfinite(effect) and effect > 0 else math.nan
            v.mde = v.design.mde(a_fam)
            v.n_needed = v.design.n_needed(effect, a_fam)
            v.n_needed_single = v.design.n_needed(effect, alpha)
    return verdicts


# ---------------------------------------------------------------------------- the tests
def _ci(t_res, level=LEVEL):
    ci = t_res.confidence_interval(level)
    return float(ci.low), float(ci.high)


def paired(a: Sequence[float], b: Sequence[float], claim: str, source: str, metric: str, sign: int = 1,
           why: str = "", **kw) -> Verdict:
    """Paired t over seeds of ``a - b`` (``scipy.stats.ttest_rel``; ``a[i]``, ``b[i]`` the same seed)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = a - b
    return one_sample(d, claim, source, metric, sign=sign, test="paired t over seeds" + (f" ({why})" if why else ""),
                      unit="seeds (paired)", **kw)


def one_sample(d: Sequence[float], claim: str, source: str, metric: str, sign: int = 1, test: str = "one-sample t",
               unit: str = "seeds", **kw) -> Verdict:
    """t-test of mean(d) = 0 with its 95 % interval (``scipy.stats.ttest_1samp``)."""
    d = np.asarray(d, float)
    d = d[np.isfinite(d)]
    est = float(d.mean()) if len(d) else math.nan
    if len(d) < 2:
        return Verdict(claim, source, metric, est, math.nan, math.nan, math.nan, test, len(d), unit,
                       note=_join(kw.pop("note", ""), "fewer than 2 units: no test"), **kw)
    res = stats.ttest_1samp(d, 0.0)
    sd = float(d.std(ddof=1))
    low, high = _ci(res) if sd > 0 else (est, est)
    p = float(res.pvalue) if sd > 0 else (0.0 if est != 0 else 1.0)
    return Verdict(claim, source, metric, est, low, high, p, test, len(d), unit, design=OneSample(sd, len(d)),
                   sign=sign, **kw)


def welch(a: Sequence[float], b: Sequence[float], claim: str, source: str, metric: str, sign: int = 1, why: str = "",
          **kw) -> Verdict:
    """Welch's t of ``mean(a) - mean(b)`` (``scipy.stats.ttest_ind(equal_var=False)``) and its interval."""
    a, b = (np.asarray(x, float) for x in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    test = "Welch t" + (f" ({why})" if why else "")
    unit = "runs per arm" if len(a) == len(b) else f"runs ({len(a)} vs {len(b)})"
    est = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return Verdict(claim, source, metric, est, math.nan, math.nan, math.nan, test, min(len(a), len(b)), unit,
                       note=_join(kw.pop("note", ""), "fewer than 2 runs in an arm: no test"), sign=sign, **kw)
    res = stats.ttest_ind(a, b, equal_var=False)
    sd = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    low, high = _ci(res)
    return Verdict(claim, source, metric, est, low, high, float(res.pvalue), test, len(a), unit,
                   design=TwoSample(sd, len(a), len(b) / len(a)), sign=sign, **kw)


@dataclass
class MixedFit:
    """A fitted ``value ~ 0 + C(arm)`` with a random intercept per seed; contrasts of arm means."""
    means: dict
    cov: np.ndarray
    arms: list
    df: float
    seeds: int
    seed_var: float
    resid_var: float
    converged: bool

    def contrast(self, weights: Mapping[str, float]) -> tuple[float, float]:
        w = np.array([weights.get(a, 0.0) for a in self.arms])
        est = float(w @ np.array([self.means[a] for a in self.arms]))
        return est, float(math.sqrt(w @ self.cov @ w))


def mixed_fit(df, value: str, arm: str = "arm", seed: str = "seed") -> MixedFit:
    """statsmodels ``MixedLM`` (REML) of ``value`` on arm (fixed, cell means) with seed random."""
    import pandas as pd
    import statsmodels.formula.api as smf

    d = df[[arm, seed, value]].dropna()
    arms = list(dict.fromkeys(d[arm]))
    code = {a: f"a{i}" for i, a in enumerate(arms)}
    data = pd.DataFrame({"y": d[value].astype(float).to_numpy(), "arm": d[arm].map(code).to_numpy(),
                         "g": d[seed].to_numpy()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = smf.mixedlm("y ~ 0 + C(arm)", data, groups=data["g"]).fit(reml=True)
    names = [f"C(arm)[{code[a]}]" for a in arms]
    cov = np.asarray(res.cov_params().loc[names, names], dtype=float)
    seeds = data["g"].nunique()
    return MixedFit({a: float(res.fe_params[n]) for a, n in zip(arms, names)}, cov, arms,
                    float(len(data) - len(arms) - (seeds - 1)), seeds, float(np.asarray(res.cov_re)[0, 0]),
                    float(res.scale), bool(res.converged))


def mixed_contrast(fit: MixedFit, weights: Mapping[str, float], claim: str, source: str, metric: str,
                   sign: int = 1, why: str = "", **kw) -> Verdict:
    """A contrast of the mixed model's arm means, t on the between-within df (module docstring)."""
    est, se = fit.contrast(weights)
    tq = stats.t.ppf(0.5 + LEVEL / 2, fit.df)
    p = float(2 * stats.t.sf(abs(est) / se, fit.df)) if se > 0 else math.nan
    test = (f"mixed model (arm fixed, seed random; MixedLM REML), t on {fit.df:g} df: {_describe(weights)}"
            + (f" ({why})" if why else ""))
    note = kw.pop("note", "")
    if not fit.converged:
        note = _join(note, "MixedLM did not report convergence")
    return Verdict(claim, source, metric, est, est - tq * se, est + tq * se, p, test, fit.seeds, "seeds per arm",
                   design=Coefficient(se, fit.seeds, _block_df(len(fit.arms))), sign=sign, note=note, **kw)


def _block_df(arms: int) -> Callable[[int], float]:
    return lambda n: (arms - 1) * (n - 1)


def ols_slope(x: Sequence[float], y: Sequence[float], claim: str, source: str, metric: str, sign: int = 1,
              test: str = "OLS slope", **kw) -> Verdict:
    """Least-squares slope of y on x (statsmodels OLS) with its t test and 95 % interval."""
    import statsmodels.api as sm

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or len(set(x.tolist())) < 2:
        return Verdict(claim, source, metric, math.nan, math.nan, math.nan, math.nan, test, len(x), "runs",
                       note=_join(kw.pop("note", ""), "fewer than 3 runs: no slope"), sign=sign, **kw)
    res = sm.OLS(y, sm.add_constant(x)).fit()
    low, high = res.conf_int(1 - LEVEL)[1]
    n = len(x)
    return Verdict(claim, source, metric, float(res.params[1]), float(low), float(high), float(res.pvalues[1]), test,
                   n, "runs", design=Coefficient(float(res.bse[1]), n, lambda k: k - 2, n_min=3), sign=sign, **kw)


def tost(estimate: float, se: float, df: float, margin: float) -> tuple[float, float, float]:
    """Two one-sided t tests of |effect| < margin: (p, low, high), p the larger one-sided p and
    (low, high) the 90 % interval (TOST at 5 % is equivalent to that interval inside the margin)."""
    p_lower = stats.t.sf((estimate + margin) / se, df)   # H0: effect <= -margin
    p_upper = stats.t.cdf((estimate - margin) / se, df)  # H0: effect >= +margin
    half = stats.t.ppf(1 - ALPHA, df) * se
    return float(max(p_lower, p_upper)), estimate - half, estimate + half


def tost_slope(x, y, margin: float, claim: str, source: str, metric: str, **kw) -> Verdict:
    """Equivalence of the OLS slope to zero within +-margin (TOST); the claim "does not fall"."""
    v = ols_slope(x, y, claim, source, metric, test=f"TOST on the OLS slope, margin +-{margin:.3g} per doubling", **kw)
    if not isinstance(v.design, Coefficient):
        v.kind, v.margin = "equivalence", margin
        return v
    se, n = v.design.se, v.design.n
    p, low, high = tost(v.estimate, se, n - 2, margin)
    v.p, v.low, v.high, v.kind, v.margin = p, low, high, "equivalence", margin
    v.design = Equivalence(se, n, lambda k: k - 2)
    return v


def spearman(x: Sequence[float], y: Sequence[float], claim: str, source: str, metric: str, sign: int = -1,
             labels: Sequence[str] | None = None, **kw) -> Verdict:
    """Spearman's rho (``scipy.stats.spearmanr``), its Fisher-z interval (variance 1.06 / (n - 3)) and a
    leave-one-out check: the claim holds only if rho keeps the claimed sign without each point."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    labels = [str(name) for name, k in zip(labels if labels is not None else range(len(x)), ok) if k]
    x, y = x[ok], y[ok]
    n = len(x)
    test = "Spearman rho across classes, Fisher-z interval, leave-one-class-out"
    if n < 4:
        return Verdict(claim, source, metric, math.nan, math.nan, math.nan, math.nan, test, n, "classes",
                       note=_join(kw.pop("note", ""), "fewer than 4 classes"), sign=sign, **kw)
    res = stats.spearmanr(x, y)
    rho = float(res.statistic)
    z, se = math.atanh(max(-0.999999, min(0.999999, rho))), math.sqrt(1.06 / (n - 3))
    q = stats.norm.ppf(0.5 + LEVEL / 2)
    loo = {labels[i]: float(stats.spearmanr(np.delete(x, i), np.delete(y, i)).statistic) for i in range(n)}
    robust = all(sign * r > 0 for r in loo.values())
    worst = min(loo, key=lambda k: sign * loo[k])
    note = _join(kw.pop("note", ""), f"leave-one-class-out rho {min(loo.values()):+.2f} to {max(loo.values()):+.2f} "
                 f"(least favourable without {worst}: {loo[worst]:+.2f})")
    if not robust:
        note = _join(note, "the claimed sign does not survive leaving out every class: not 'holds'")
    return Verdict(claim, source, metric, rho, math.tanh(z - q * se), math.tanh(z + q * se), float(res.pvalue), test,
                   n, "classes", design=Correlation(n), sign=sign, robust=robust, note=note, **kw)


def iut(parts: Sequence[Verdict], claim: str, **kw) -> Verdict:
    """"A is best": intersection-union of the pairwise claims A > X.  All estimates positive: p = the
    largest pairwise p (valid at level alpha with no further correction); otherwise evidence against:
    Bonferroni over the pairs of the smallest p among the negative ones.  The estimate, interval and
    power are those of the closest competitor."""
    closest = min(parts, key=lambda v: v.estimate)
    if all(v.estimate > 0 for v in parts):
        p = max(v.p for v in parts)
    else:
        p = min(1.0, len(parts) * min(v.p for v in parts if v.estimate <= 0))
    others = ", ".join(f"{v.claim.split('> ')[-1].split(' ')[0]} {v.estimate:+.2f}" for v in parts)
    return Verdict(claim, closest.source, closest.metric, closest.estimate, closest.low, closest.high, p,
                   "intersection-union of " + closest.test, closest.n, closest.unit,
                   note=_join(kw.pop("note", ""), f"margins to each other arm: {others}"), sign=1,
                   design=closest.design, paper_effect=kw.pop("paper_effect", math.nan), **kw)


def _describe(weights: Mapping[str, float]) -> str:
    parts = []
    for k, w in weights.items():
        sign = "-" if w < 0 else "+"
        mag = "" if abs(w) == 1 else f"{abs(w):g}*"
        parts.append(f"{sign} {mag}{k}")
    return " ".join(parts).lstrip("+ ")


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


# ---------------------------------------------------------------------------- test-set bootstrap
def _boot_spec(df, metric: str, arm_col: str, contrasts: Sequence[Mapping[str, float]], **where) -> dict:
    """What :func:`add_bootstrap` resamples for a claim: each arm's (run, eval file, group) per seed."""
    arms = {}
    for arm in dict.fromkeys(a for c in contrasts for a in c):
        d = df[df[arm_col] == arm]
        for k, v in where.items():
            d = d[d[k] == v]
        d = d.dropna(subset=["run"]) if "run" in d else d.iloc[0:0]
        rows = []
        for r in d.to_dict("records"):
            crf = str(r.get("crf", False)).lower() == "true"
            default = "baseline.json" if str(r["run"]).startswith("baseline-") else "eval.json"
            ev = r.get("eval") if isinstance(r.get("eval"), str) and r.get("eval") else default
            group, _ = METRIC_GROUPS[metric]
            rows.append((str(r["run"]), ev, group + ("_crf" if crf else "")))
        arms[arm] = rows
    return {"arms": arms, "contrasts": [dict(c) for c in contrasts], "metric": metric}


def add_bootstrap(verdicts: Sequence[Verdict], records: PerImageRecords, n_boot: int = BOOT_N,
                  seed: int = BOOT_SEED) -> list[Verdict]:
    """Fill every verdict's ``boot`` (the BOOT_COLUMNS): image- and sequence-level intervals where its
    spec and the records' per-image counts allow, else a note why not."""
    for v in verdicts:
        spec = v.boot_spec
        if spec is None:
            v.boot = {"boot_note": "not a test-set metric of an evaluation (no per-image counts apply)"}
            continue
        missing = [f"{run}/{ev}" for rows in spec["arms"].values() for run, ev, _ in rows
                   if records.get(run, ev) is None]
        empty = [a for a, rows in spec["arms"].items() if not rows]
        if empty or missing:
            v.boot = {"boot_note": ("no runs for " + ", ".join(empty)) if empty else
                      "no per-image counts in the records for " + ", ".join(missing)}
            continue
        group_metric = METRIC_GROUPS[spec["metric"]][1]
        try:
            arms = {a: [RunCounts.of(records.get(run, ev), g) for run, ev, g in rows]
                    for a, rows in spec["arms"].items()}
            res = {u: bootstrap_interval(arms, spec["contrasts"], group_metric, unit=u, n_boot=n_boot, seed=seed)
                   for u in ("image", "sequence")}
        except (ValueError, KeyError) as exc:
            v.boot = {"boot_note": f"no bootstrap: {exc}"}
            continue
        im, sq = res["image"], res["sequence"]
        runs = sum(len(r) for r in arms.values())
        note = (f"percentile, {n_boot} resamples, split-level matching held fixed, the same draws for the "
                f"{runs} runs; estimate from the per-image counts {im.estimate:+.4g}")
        seq_low, seq_high = sq.low, sq.high
        if sq.n_units < 2:  # resampling one unit gives the estimate back: no interval, not certainty
            seq_low = seq_high = math.nan
            note += "; the test images come from one sequence: no sequence-level interval"
        elif sq.n_units < 5:
            note += f"; only {sq.n_units} sequences: the sequence interval is crude"
        v.boot = {"boot_image_low": im.low, "boot_image_high": im.high, "boot_sequence_low": seq_low,
                  "boot_sequence_high": seq_high,
                  "boot_units": f"{im.n_units} images / {sq.n_units} sequence{'s' if sq.n_units != 1 else ''}",
                  "boot_note": note, "estimate": im.estimate}
    return list(verdicts)


# ---------------------------------------------------------------------------- output
def _fmt(v: float, digits: int = 2, sign: bool = True) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def _fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _fmt_n(n: float) -> str:
    return "—" if n is None or not math.isfinite(n) else f"{n:.0f}"


def has_bootstrap(verdicts: Sequence[Verdict]) -> bool:
    """Whether the test-set bootstrap columns are written (the records held per-image counts)."""
    return any(v.boot is not None for v in verdicts)


def _boot_text(v: Verdict) -> str:
    b = v.boot or {}
    if not math.isfinite(b.get("boot_image_low", math.nan)):
        return "—"
    seq = (f"[{_fmt(b['boot_sequence_low'])}, {_fmt(b['boot_sequence_high'])}]"
           if math.isfinite(b["boot_sequence_low"]) else "—")
    return f"[{_fmt(b['boot_image_low'])}, {_fmt(b['boot_image_high'])}] · {seq} ({b['boot_units']})"


def markdown(verdicts: Sequence[Verdict]) -> str:
    """The reviewer's table: claim, where, metric, verdict, estimate [interval], p raw -> Holm, n,
    power / MDE / runs needed, test (and, when the records hold per-image counts, the test-set
    bootstrap intervals over images and over sequences)."""
    boot = has_bootstrap(verdicts)
    extra = " test-set bootstrap: images · sequences |" if boot else ""
    lines = ["| claim (paper) | where | metric | verdict | estimate [interval] | p → Holm | n "
             "| power · MDE · n needed |" + extra + " test |", "|---|---|---|---|---|---|---|---|---|"
             + ("---|" if boot else "")]
    for v in verdicts:
        interval = f"{_fmt(v.estimate)} [{_fmt(v.low)}, {_fmt(v.high)}]"
        pw = f"{_fmt(v.power, 2, False)} · {_fmt(v.mde, 2, False)} · {_fmt_n(v.n_needed)}"
        note = f" ({v.note})" if v.note else ""
        bt = f" {_boot_text(v)} |" if boot else ""
        lines.append(f"| {v.claim} | {v.source} | {v.metric} | **{v.verdict}** | {interval} | "
                     f"{_fmt_p(v.p)} → {_fmt_p(v.p_holm)} | {_fmt_n(v.n)} {v.unit} | {pw} |{bt} {v.test}{note} |")
    return "\n".join(lines) + "\n"


def columns(verdicts: Sequence[Verdict]) -> list[str]:
    """The CSV's columns: :attr:`Verdict.COLUMNS`, plus the bootstrap's when the records held per-image counts."""
    return list(Verdict.COLUMNS) + (list(Verdict.BOOT_COLUMNS) if has_bootstrap(verdicts) else [])


def write(verdicts: Sequence[Verdict], out_dir, name: str = "claims") -> None:
    """``name.csv`` (every column, full precision) and ``name.md`` (the table the README copies)."""
    import csv
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    boot = has_bootstrap(verdicts)
    with open(out / f"{name}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns(verdicts))
        w.writeheader()
        w.writerows(v.row(boot) for v in verdicts)
    (out / f"{name}.md").write_text(markdown(verdicts))


def frame(verdicts: Sequence[Verdict]):
    """The verdicts as a DataFrame (the CSV's columns)."""
    import pandas as pd

    boot = has_bootstrap(verdicts)
    return pd.DataFrame([v.row(boot) for v in verdicts], columns=columns(verdicts))


VERDICT_COLOURS = {HOLDS: "#c6efce", EQUIVALENT: "#ddebf7", CONTRADICTED: "#ffc7ce", INCONCLUSIVE: "#f2f2f2"}


def styled(verdicts: Sequence[Verdict]):
    """The reviewer's table as a pandas Styler, the verdict cell coloured."""
    import pandas as pd

    rows = [{"claim": v.claim, "where": v.source, "metric": v.metric, "verdict": v.verdict,
             "estimate [95% interval]": f"{_fmt(v.estimate)} [{_fmt(v.low)}, {_fmt(v.high)}]",
             "p (Holm)": _fmt_p(v.p_holm), "p (raw)": _fmt_p(v.p), "n": f"{_fmt_n(v.n)} {v.unit}",
             "power / MDE": f"{_fmt(v.power, 2, False)} / {_fmt(v.mde, 2, False)}",
             "n for paper's effect": _fmt_n(v.n_needed), "test": v.test, "recipe per arm": v.recipe, "note": v.note,
             **({"test-set bootstrap: images · sequences": _boot_text(v)} if has_bootstrap(verdicts) else {})}
            for v in verdicts]
    df = pd.DataFrame(rows)
    return (df.style.map(lambda s: f"background-color: {VERDICT_COLOURS.get(s, '')}; font-weight: bold",
                         subset=["verdict"])
            .set_properties(**{"text-align": "left"}).hide(axis="index"))


# ---------------------------------------------------------------------------- reading a results folder
TABLES = ("table1", "table2", "table3", "fig2", "fig4", "fig4_distance", "fig6")


def _flatten(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def load_tables(results_dir) -> dict:
    """What the claims read from a results folder: the per-seed CSVs (missing ones left out), plus

    * ``configs``: one row per run record (``run`` + the flattened ``config.yaml``; a raw-backbone
      baseline record, which has none, gives its ``baseline.json`` provenance as ``baseline.*``);
    * ``class_accuracy``: per-class accuracy (%) of every run named in ``fig4.csv``, from the matched
      confusion matrix of its ``eval.json`` (see the module docstring);
    * ``fig4_meta``: ``histogram_bins`` of Fig. 4a's STEGO entropy (``fig4.provenance.json``);
    * ``per_image``: the records' per-image counts (:class:`PerImageRecords`), only when some record
      holds them (then :func:`paper_claims` adds the test-set bootstrap columns)."""
    import json
    from pathlib import Path

    import pandas as pd
    import yaml

    root = Path(results_dir)
    out = {}
    for name in TABLES:
        path = root / f"{name}.csv"
        if path.is_file():
            out[name] = pd.read_csv(path)
    runs = sorted(p for p in (root / "runs").glob("*/") if p.is_dir()) if (root / "runs").is_dir() else []
    rows = []
    for r in runs:
        if (r / "config.yaml").is_file():
            rows.append({"run": r.name, **_flatten(yaml.safe_load((r / "config.yaml").read_text()) or {})})
        elif (r / "baseline.json").is_file():
            prov = json.loads((r / "baseline.json").read_text()).get("provenance", {})
            rows.append({"run": r.name, **{f"baseline.{k}": v for k, v in prov.items() if not isinstance(v, dict)}})
    if rows:
        out["configs"] = pd.DataFrame(rows)
    if "fig4" in out:
        acc = []
        for run in dict.fromkeys(out["fig4"].get("run", pd.Series(dtype=str)).dropna()):
            path = root / "runs" / str(run) / "eval.json"
            if not path.is_file():
                continue
            conf = np.asarray(json.loads(path.read_text())["cluster"]["confusion"], dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                per_class = 100.0 * np.diag(conf) / conf.sum(0)
            acc += [{"run": run, "class_index": c, "accuracy": float(a)} for c, a in enumerate(per_class)]
        if acc:
            out["class_accuracy"] = pd.DataFrame(acc)
    per_image = PerImageRecords(root / "runs")
    if per_image.files():  # only then: a folder without them gives the claims of before (no bootstrap columns)
        out["per_image"] = per_image
    prov = root / "fig4.provenance.json"
    if prov.is_file():
        bins = json.loads(prov.read_text()).get("histogram_bins")
        if bins:
            out["fig4_meta"] = pd.DataFrame([{"histogram_bins": int(bins)}])
    return out


def _measured(df, crf: bool = False):
    if df is None:
        return None
    d = df[df["source"] == "measured"] if "source" in df else df
    if "crf" in d:
        d = d[d["crf"].astype(str).str.lower().isin(["true"] if crf else ["false"])]
    return d


def _by_seed(df, metric: str, **where) -> dict:
    d = df
    for k, v in where.items():
        d = d[d[k] == v]
    d = d[np.isfinite(d[metric].astype(float))]
    return {int(s): float(x) for s, x in zip(d["seed"], d[metric])}


def _runs_by_seed(df, **where) -> dict:
    d = df
    for k, v in where.items():
        d = d[d[k] == v]
    if "run" not in d:
        return {}
    d = d.dropna(subset=["seed", "run"])
    return {int(s): r for s, r in zip(d["seed"], d["run"])}


def _missing(claim: str, source: str, table: str) -> Verdict:
    return Verdict(claim, source, "—", math.nan, math.nan, math.nan, math.nan, "—", 0, "",
                   note=f"{table}.csv not produced")


def _two_arms(df, metric, a, b, claim, source, cfg: Configs, paper_effect=math.nan, note="", where=None,
              sign: int = 1) -> Verdict:
    """A > B on ``metric``: paired by seed when the two arms share batches, Welch otherwise."""
    where = where or {}
    ya, yb = _by_seed(df, metric, method=a, **where), _by_seed(df, metric, method=b, **where)
    ra, rb = _runs_by_seed(df, method=a, **where), _runs_by_seed(df, method=b, **where)
    share, why = cfg.shares_batches({a: ra, b: rb})
    kw = dict(paper_effect=paper_effect, note=note, recipe=cfg.recipe({a: list(ra.values()), b: list(rb.values())}))
    label = METRIC_LABELS.get(metric, metric)
    if metric in METRIC_GROUPS:  # a test-set metric: the bootstrap resamples the same rows' evaluations
        kw["boot_spec"] = _boot_spec(df, metric, "method", [{a: 1, b: -1}], **where)
    if share and set(ya) == set(yb):
        seeds = sorted(ya)
        return paired([ya[s] for s in seeds], [yb[s] for s in seeds], claim, source, label, sign=sign, why=why, **kw)
    return welch(list(ya.values()), list(yb.values()), claim, source, label, sign=sign, why=why, **kw)


def _quoted_diff(table: Mapping, a: str, b: str, metric: str) -> float:
    i = QUOTED_INDEX[metric]
    va, vb = table.get(a, (None,) * 4)[i], table.get(b, (None,) * 4)[i]
    return math.nan if va is None or vb is None else float(va - vb)


def fig2_margin() -> float:
    """Equivalence margin of Fig. 2's "does not fall" (unsup. Acc points per doubling of the width): a
    fall over the paper's four doublings (64 -> 1024) smaller than Table 1's quoted EQUSS - STEGO
    unsupervised-accuracy gain."""
    return _quoted_diff(quoted.TABLE1, "EQUSS", "STEGO", "unsup_acc") / 4


# ---------------------------------------------------------------------------- the paper's claims
def paper_claims(tables: dict, power: bool = True) -> list[Verdict]:
    """Every claim of the paper that the reproduction tests, decided from the tables of
    :func:`load_tables` (numbers without the CRF, the official protocol) and finalised as one
    Holm family (:func:`finalize`).  A claim whose table is missing is inconclusive with a note."""
    import pandas as pd

    V: list[Verdict] = []
    cfg = Configs(tables.get("configs"))
    t1, t2, t3 = (_measured(tables.get(k)) for k in ("table1", "table2", "table3"))

    # Tables 1 and 2: EQUSS > STEGO (Table 2a's proxy runs are Table 1's: counted once)
    both = [d.assign(where=w) for d, w in ((t1, "Table 1"), (t2, "Table 2")) if d is not None]
    if both:
        every = pd.concat(both)
        rows = every.drop_duplicates(subset=["method", "dataset", "seed"])
        for ds in dict.fromkeys(rows["dataset"]):
            d = rows[rows["dataset"] == ds]
            src = " / ".join(dict.fromkeys(every[every["dataset"] == ds]["where"]))
            in_t1 = "Table 1" in src
            # Table 1 (CocoStuff) states all four numbers; Table 2b (Potsdam-3) unsupervised Acc only
            metrics = list(METRIC_LABELS) if in_t1 else ["unsup_acc"]
            table = quoted.TABLE1 if in_t1 else quoted.TABLE2B
            for m in metrics:
                eff = _quoted_diff(table, "EQUSS", "STEGO", m)
                note = f"paper's effect: {'Table 1' if in_t1 else 'Table 2b'} quoted"
                t2a = _quoted_diff(quoted.TABLE2A, "EQUSS", "STEGO", m)
                if in_t1 and "Table 2" in src and math.isfinite(t2a):
                    note += f"; Table 2a quotes {t2a:+.1f}"
                V.append(_two_arms(d, m, "EQUSS", "STEGO", f"EQUSS > STEGO ({ds})", src, cfg, eff, note,
                                   where={"dataset": ds}))
    else:
        V.append(_missing("EQUSS > STEGO", "Tables 1, 2", "table1"))

    # Table 1: both beat the raw backbone
    raw = "DINO (raw features)"
    if t1 is not None:
        for method in ("EQUSS", "STEGO"):
            for m in METRIC_LABELS:
                V.append(_two_arms(t1, m, method, raw, f"{method} > raw backbone", "Table 1", cfg,
                                   _quoted_diff(quoted.TABLE1, method, raw, m)))
    else:
        V.append(_missing("EQUSS and STEGO > raw backbone", "Table 1", "table1"))

    # Table 3: dimension without PQ hurts; PQ helps, more at 1024; Q3 best.  Linear probing first.
    V += _table3_claims(t3, cfg) if t3 is not None else [_missing("Table 3 ablation", "Table 3", "table3")]

    V += _fig4_claims(tables, cfg)
    V += _fig2_claims(tables, cfg)
    V += _fig6_claims(tables, cfg)
    V = finalize(V, power=power)
    if tables.get("per_image") is not None:  # the records hold per-image counts: test-set intervals
        add_bootstrap(V, tables["per_image"])
    return V


TABLE3_ARMS = ("M1", "M2", "M3", "Q2", "Q3")
TABLE3_CLAIMS = (({"M1": 1, "M2": -1}, "dimension without PQ hurts: M1 > M2"),
                 ({"M2": 1, "M3": -1}, "dimension without PQ hurts: M2 > M3"),
                 ({"Q2": 1, "M2": -1}, "PQ helps at 384: Q2 > M2"),
                 ({"Q3": 1, "M3": -1}, "PQ helps at 1024: Q3 > M3"),
                 ({"Q3": 1, "M3": -1, "Q2": -1, "M2": 1}, "PQ gain larger at 1024: (Q3 - M3) > (Q2 - M2)"))


def _table3_claims(t3, cfg: Configs) -> list[Verdict]:
    """Table 3's ordering on linear mIoU (the paper states it for linear probing), then on unsupervised
    mIoU as secondary rows: a mixed model when the five arms share each seed's batches."""
    t3 = t3.assign(variant=t3["method"].astype(str).str.split().str[0])
    full = {str(m).split()[0]: str(m) for m in t3["method"]}
    arms = {v: _runs_by_seed(t3, variant=v) for v in TABLE3_ARMS}
    share, why = cfg.shares_batches(arms)
    recipe = cfg.recipe({full.get(v, v): list(r.values()) for v, r in arms.items()})
    V = []
    for m, rank in (("linear_miou", "primary: the paper states Table 3's ordering for linear probing"),
                    ("unsup_miou", "secondary row")):
        fit = mixed_fit(t3.assign(arm=t3["variant"]), m, arm="arm", seed="seed") if share else None
        test = dict(t3=t3, metric=m, fit=fit, why=why, recipe=recipe)
        V += [_table3_test(w, claim, note=rank, **test) for w, claim in TABLE3_CLAIMS]
        others = [o for o in TABLE3_ARMS if o != "Q3"]
        parts = [_table3_test({"Q3": 1, o: -1}, f"Q3 > {o}", **test) for o in others]
        best = iut(parts, "Q3 best: Q3 > each other arm", note=rank, recipe=recipe,
                   paper_effect=min(_quoted_contrast({"Q3": 1, o: -1}, m) for o in others))
        best.boot_spec = _boot_spec(t3, m, "variant", [{"Q3": 1, o: -1} for o in others])
        V.append(best)
    return V


def _quoted_contrast(weights: Mapping[str, float], metric: str) -> float:
    """The paper's value of a Table 3 contrast (quoted.TABLE3)."""
    q = {k.split()[0]: v for k, v in quoted.TABLE3.items()}
    return float(sum(c * q[k][QUOTED_INDEX[metric]] for k, c in weights.items()))


def _table3_test(w, claim, t3, metric, fit, why, recipe, **kw) -> Verdict:
    label = METRIC_LABELS[metric]
    effect = _quoted_contrast(w, metric)
    v = _table3_verdict(w, claim, t3, metric, fit, why, recipe, label, effect, **kw)
    v.boot_spec = _boot_spec(t3, metric, "variant", [w])
    return v


def _table3_verdict(w, claim, t3, metric, fit, why, recipe, label, effect, **kw) -> Verdict:
    if fit is not None:
        return mixed_contrast(fit, w, claim, "Table 3", label, why=why, recipe=recipe, paper_effect=effect, **kw)
    if len(w) == 2:  # arms without a shared batch stream: Welch
        (a, _), (b, _) = w.items()
        return welch(list(_by_seed(t3, metric, variant=a).values()), list(_by_seed(t3, metric, variant=b).values()),
                     claim, "Table 3", label, why=why, recipe=recipe, paper_effect=effect, **kw)
    return Verdict(claim, "Table 3", label, math.nan, math.nan, math.nan, math.nan, "—", 0, "",
                   note=_join(kw.get("note", ""), f"no shared seeds ({why}): no contrast test"), recipe=recipe)


def _fig4_claims(tables: dict, cfg: Configs) -> list[Verdict]:
    import inspect

    import pandas as pd

    from equss.eval import analysis

    V = []
    f4 = _measured(tables.get("fig4"))
    if f4 is None:
        return [_missing("entropy claims", "Fig. 4a, c", "fig4"),
                _missing("codeword distance", "Fig. 4d", "fig4_distance")]
    # 4a: mean class entropy per run, each divided by its maximum
    meta = tables.get("fig4_meta")
    bins = (int(meta["histogram_bins"].iloc[0]) if meta is not None
            else inspect.signature(analysis.histogram_entropy).parameters["bins"].default)
    runs = {m: _runs_by_seed(f4.drop_duplicates(["method", "seed"]), method=m) for m in ("STEGO", "EQUSS")}
    per_run = f4.groupby(["method", "seed"])["entropy_bits"].mean()
    caps, missing = {}, []
    for m, rs in runs.items():
        for s, r in rs.items():
            c = cfg.get(r)
            if c is None:
                missing.append(r)
                continue
            caps[m, s] = (c["model.num_codebooks"] * math.log2(c["model.codebook_size"]) if m == "EQUSS"
                          else c["model.head_dim"] * math.log2(bins))
    claim, src = "EQUSS needs fewer bits per class than STEGO (each as a fraction of its maximum)", "Fig. 4a"
    metric = "class-mean entropy / its maximum"
    if missing:
        V.append(Verdict(claim, src, metric, math.nan, math.nan, math.nan, math.nan, "—", 0, "",
                         note="not comparable: the entropies' maxima need the run configs (missing: "
                              + ", ".join(missing) + ")"))
    else:
        norm = pd.DataFrame([{"method": m, "seed": s, "run": runs[m][s], "value": per_run[m, s] / caps[m, s]}
                         for (m, s) in caps])
        cap_txt = ", ".join(f"{m} {sorted({round(caps[k], 1) for k in caps if k[0] == m})[0]:g} bits" for m in runs)
        raw = {m: per_run[m].mean() for m in runs}
        q_eff = (quoted.ENTROPY_BITS["STEGO"] / caps[next(k for k in caps if k[0] == "STEGO")]
                 - quoted.ENTROPY_BITS["EQUSS"] / caps[next(k for k in caps if k[0] == "EQUSS")])
        note = (f"each entropy divided by its maximum ({cap_txt}: STEGO head_dim x log2({bins} bins), "
                "EQUSS M x log2 K); "
                f"raw means STEGO {raw['STEGO']:.1f}, EQUSS {raw['EQUSS']:.1f} bits; still two measures (binned "
                f"continuous dims vs code indices); the paper's own numbers on this scale give {q_eff:+.3f} "
                f"(STEGO {quoted.ENTROPY_BITS['STEGO']} of 560, EQUSS {quoted.ENTROPY_BITS['EQUSS']} of 256 bits): "
                "no effect in the claimed direction to power for")
        v = _two_arms(norm, "value", "STEGO", "EQUSS", claim, src, cfg, math.nan, note)
        v.metric = metric
        V.append(v)

    # 4c: entropy vs per-class accuracy across classes (EQUSS), classes averaged over the runs
    eq = f4[f4["method"] == "EQUSS"]
    acc = tables.get("class_accuracy")
    if acc is not None:
        eq = eq.merge(acc, on=["run", "class_index"], how="left")
        ycol, metric, extra = "accuracy", "per-class accuracy", ""
    else:
        ycol, metric = "iou", "per-class IoU"
        extra = "per-class accuracy not in the records: IoU used"
    per_class = eq.groupby("class_index").agg(entropy=("entropy_bits", "mean"), y=(ycol, "mean"),
                                             name=("class", "first"), seeds=("seed", "nunique"))
    by_run = [float(stats.spearmanr(g["entropy_bits"], g[ycol]).statistic) for _, g in eq.groupby("seed")
              if len(g) >= 4]
    k = int(per_class["seeds"].max()) if len(per_class) else 0
    note = _join(extra, f"class means over {k} seed{'s' if k != 1 else ''}",
                 ("per-run rho " + ", ".join(f"{r:+.2f}" for r in by_run)) if by_run else "")
    V.append(spearman(per_class["entropy"], per_class["y"], "lower-entropy classes have higher accuracy (rho < 0)",
                      "Fig. 4c", metric, sign=-1, labels=per_class["name"].tolist(), note=note,
                      recipe=cfg.recipe({"EQUSS": list(runs["EQUSS"].values())})))

    # 4d: within-class vs across-class codeword distance, per run
    fd = _measured(tables.get("fig4_distance"))
    if fd is None:
        V.append(_missing("within-class < across-class distance", "Fig. 4d", "fig4_distance"))
    else:
        same = fd["class_a_index"] == fd["class_b_index"]
        within = fd[same].groupby("seed")["distance"].mean()
        across = fd[~same].groupby("seed")["distance"].mean()
        seeds = sorted(set(within.index) & set(across.index))
        V.append(paired([across[s] for s in seeds], [within[s] for s in seeds],
                        "codeword distance within a class < across classes (Eq. 9)", "Fig. 4d",
                        "mean Hamming distance (codebooks)", why="within and across measured in the same run",
                        note="per run: mean over class pairs (across) and over classes (within)",
                        recipe=cfg.recipe({"EQUSS": list(dict.fromkeys(fd["run"]))})))
    return V


def _fig2_claims(tables: dict, cfg: Configs) -> list[Verdict]:
    f2 = _measured(tables.get("fig2"))
    if f2 is None:
        return [_missing("Fig. 2 trends", "Fig. 2", "fig2")]
    V = []
    metric = "unsup_acc"
    label = METRIC_LABELS[metric] + " vs log2(width)"
    for method, sign, claim in (("supervised head", 1, "supervised head: accuracy rises with width"),
                                ("STEGO head", -1, "STEGO head: accuracy falls with width"),
                                ("EQUSS (PQ)", 0, "EQUSS: accuracy does not fall with width")):
        d = f2[f2["method"] == method]
        x, y = np.log2(d["dim"].astype(float)), d[metric].astype(float)
        seeds = sorted(d["seed"].unique().tolist())
        common = dict(recipe=cfg.recipe({method: d["run"].tolist()}),
                      note=f"each width one run (seed{'s' if len(seeds) > 1 else ''} "
                           f"{', '.join(str(int(s)) for s in seeds)}): the runs are the replicates")
        if sign:
            V.append(ols_slope(x, y, claim, "Fig. 2", label, sign=sign,
                               test="OLS slope" + (" (claim: slope < 0)" if sign < 0 else " (claim: slope > 0)"),
                               **common))
        else:
            margin = fig2_margin()
            common["note"] = _join(common["note"], f"margin {margin:.3g} points per doubling: a fall over the four "
                                   "doublings smaller than Table 1's quoted EQUSS - STEGO unsup. Acc gain")
            V.append(tost_slope(x, y, margin, claim, "Fig. 2", label, **common))
    return V


def _fig6_claims(tables: dict, cfg: Configs) -> list[Verdict]:
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    f6 = _measured(tables.get("fig6"))
    if f6 is None:
        return [_missing("Fig. 6 grid claims", "Fig. 6", "fig6")]
    V = []
    metric = "unsup_miou"
    label = METRIC_LABELS[metric]
    seeds = sorted(f6["seed"].unique().tolist())
    recipe = cfg.recipe({"EQUSS": f6["run"].tolist()})
    # M > 1 vs M = 1, blocked by K (each cell one run): per K, mean over M > 1 minus M = 1
    cell = f6.groupby(["K", "M"])[metric].mean().unstack("M")
    diffs = (cell.loc[:, cell.columns > 1].mean(axis=1) - cell[1]).dropna() if 1 in cell.columns else []
    additive = ""
    if len(f6) > f6["M"].nunique() + f6["K"].nunique():
        fit = smf.ols(f"{metric} ~ C(M) + C(K)", f6).fit()
        p_m = sm.stats.anova_lm(fit, typ=2).loc["C(M)", "PR(>F)"]
        additive = f"additive M + K model (OLS): F-test of M p = {p_m:.2g}"
    V.append(one_sample(np.asarray(diffs, float), "more codebooks help: M > 1 beats M = 1", "Fig. 6", label,
                        test="one-sample t over K of (mean over M > 1) - (M = 1), each cell one run",
                        unit="K blocks", recipe=recipe,
                        note=_join(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(str(int(s)) for s in seeds)}; "
                                   "blocked by K: the K effect cancels", additive)))
    region = f6["M"].between(8, 32) & f6["K"].between(32, 64)
    V.append(welch(f6[region][metric].tolist(), f6[~region][metric].tolist(),
                   "best region M 8-32, K 32-64 beats the rest", "Fig. 6", label,
                   why="each cell one run; region and rest are different configurations",
                   recipe=recipe, note="the spread is between configurations plus seed noise (one seed per cell)"))
    return V
