"""The paper's claims, decided from the training runs, each family corrected for multiplicity.

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
  family (the primary one; the study's secondary families, below, are corrected each on its own);
  ``statsmodels.stats.multitest.multipletests(method="holm")`` adjusts them.  ``p`` is the
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

The study (issue 26)
--------------------
The study's tables carry three more columns (``equss.paper.tables``): ``probe`` ("online": the official
protocol's online probes; "post-hoc": a linear probe and k-means fit to convergence on the frozen head
output, the raw-feature row's rule; "post-hoc quantised": the same on EQUSS's product-quantised output),
``resolution`` (the evaluation resolution) and ``recipe`` ("STEGO" / "EQUSS" / "—"); the results folder
holds ``tuning.json`` (the loss shifts tuned on validation per preset, :mod:`equss.paper.tuning`).  Rows
written before these columns existed read as online probes at their run's own ``data.eval_resolution``
with an unknown recipe, and such tables give exactly the claims and the claims.csv layout of before
(:func:`is_study`; the study's columns :attr:`Verdict.STUDY_COLUMNS` are written only for the study's
tables).

* **EQUSS > STEGO against two arms.**  STEGO on its official recipe differs from EQUSS in the head *and*
  the recipe (optimiser, clipping, dropout, probe input); M1, STEGO's 70-d head trained on EQUSS's recipe
  (``camvid-M1`` / ``dubai-M1``, also Table 3's M1 row), differs only in the expansion and the PQ.  Where a
  dataset's rows have M1, each comparison is its own row (``... : vs STEGO, its own recipe`` and ``... :
  vs M1, STEGO's head on EQUSS's recipe``; paired t when ``Configs.shares_batches``, Welch otherwise), both
  hypotheses of the primary family, and the claim's row ``EQUSS > STEGO (<dataset>)`` is decided from them
  by intersection-union (:func:`intersection`, :func:`_decide_intersection`): the claim is the conjunction
  "EQUSS beats STEGO and beats M1", so it **holds** only where both comparisons hold (its adjusted p is the
  larger of theirs: the IUT needs no further correction), and it is **contradicted** where either comparison
  is contradicted (one false conjunct falsifies the conjunction; its adjusted p is the smaller of the
  contradicted ones'); otherwise inconclusive.  The row adds no hypothesis to Holm's family (its decision is
  a function of the parts' adjusted decisions, so the family-wise error stays at alpha).  Its estimate is
  the margin to the closer arm; its power the product of the parts' (a lower bound: the parts share the
  EQUSS runs; :class:`~equss.paper.claims_power.Intersection`).  Without M1 (tables before the study) the
  claim is the one comparison with STEGO, as before.  The paper's effect for the M1 comparison is its
  EQUSS - STEGO effect (the paper's Table 3 M1 row repeats its Table 1 STEGO row).
* **Arms** (column ``arms``, :meth:`~equss.paper.claims_arms.Configs.matched`): whether a claim's arms are
  recipe- and tuning-matched (recipe keys, steps, checkpoint policy, each arm's shifts equal to the ones
  tuned for its preset by the one rule of ``tuning.json``), or the mismatch named ("recipes differ: EQUSS:
  EQUSS's recipe, STEGO: STEGO's recipe (lr ...)", "Fig. 6 cells: the runs take camvid-equss's tuned shifts
  (tuned at num_codebooks 32; these runs: ...)"), read from the run configs and ``tuning.json``, never typed.
* **Families** (column ``family``).  The verdicts above are the **primary** family: online probes, each
  table's own resolution.  Two secondary families, each with its own Holm correction so that adding them
  does not dilute the primary one: **post-hoc probes**, every linear-probe claim (Tables 1 and 3) re-estimated
  on the converged post-hoc probes of the representation each arm's online probe reads (the quantised
  output for PQ arms, the head output otherwise; the raw-backbone row is the same in both families, its
  probes being that rule already; column ``probe``); and **resolution check**, Table 1's EQUSS vs STEGO and
  vs M1 (and the claim decided from them) at every other evaluation resolution (224 beside the proxy's 448;
  column ``resolution``).  Each secondary row's note gives its primary row's estimate and verdict, and for
  the resolution check the change of the estimate between the two resolutions paired over seeds: whether a
  linear verdict contradicted with the online probes survives converged probes, and whether the ranking
  depends on the evaluation resolution.
* **Unbalanced seeds.**  Table 3's M1 and Q3 are Table 1's runs (10 seeds), the other arms 6: the mixed model
  takes the unbalanced design (every seed run by two or more arms must share batches), the contrast is
  tested on the between-within df ``N - arms - (seeds - 1)`` (the residual df of the additive arm + seed
  model), ``n`` is the fewest seeds among the contrast's arms, and the power as it ran uses the fitted
  standard error while the runs needed are those of a balanced design
  (:class:`~equss.paper.claims_power.BlockContrast`).  tests/test_claims_study.py checks the type I error and
  the power against simulated unbalanced studies.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
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
PRIMARY, POSTHOC_FAMILY, RESOLUTION_FAMILY = "primary", "post-hoc probes", "resolution check"
FAMILIES = (PRIMARY, POSTHOC_FAMILY, RESOLUTION_FAMILY)
ONLINE, POSTHOC, POSTHOC_QUANTISED = "online", "post-hoc", "post-hoc quantised"  # the tables' probe column
# the per-image groups of posthoc.json's probes are "<part>_<cluster|linear>" (equss.pipeline.posthoc.group)
POSTHOC_PARTS = {POSTHOC: "head", POSTHOC_QUANTISED: "quantised"}
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
    # the study's columns (STUDY_COLUMNS; written when the tables are the study's, see has_study)
    family: str = PRIMARY         # the Holm family: primary | post-hoc probes | resolution check
    probe: str = ONLINE           # online | post-hoc (converged probes; "post-hoc quantised" on PQ arms)
    resolution: object = ""       # the evaluation resolution of the compared rows ("" where not a table's)
    arms: str = ""                # recipe- and tuning-matched, or the mismatch named (claims_arms)
    study: bool = field(default=False, repr=False)
    parts: list = field(default_factory=list, repr=False)    # an intersection-union row: its comparisons
    part_of: str = field(default="", repr=False)             # a comparison: the claim it decides with others
    counterpart: "Verdict | None" = field(default=None, repr=False)  # a secondary row: its primary row
    per_seed: dict = field(default_factory=dict, repr=False)  # a paired comparison: seed -> A - B

    COLUMNS = ("claim", "source", "metric", "estimate", "low", "high", "p", "p_holm", "test", "n", "unit", "power",
               "mde", "n_needed", "n_needed_single", "paper_effect", "alpha_power", "verdict", "note", "recipe")

    STUDY_COLUMNS = ("family", "probe", "resolution", "arms")

    BOOT_COLUMNS = ("boot_image_low", "boot_image_high", "boot_sequence_low", "boot_sequence_high", "boot_units",
                    "boot_note")

    def row(self, boot: bool = False, study: bool = False) -> dict:
        out = {k: getattr(self, k) for k in self.COLUMNS + (self.STUDY_COLUMNS if study else ())}
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
    """Holm within each family (``family``: the primary one, and each secondary one on its own), then each
    verdict; with ``power`` also power, MDE and runs needed at ``alpha / m`` (m: claims of its family with a
    p-value) and the runs needed at ``alpha``.  An intersection-union row (``parts``) is no hypothesis of
    its own: it is decided from its parts' adjusted p-values afterwards (:func:`_decide_intersection`)."""
    verdicts = list(verdicts)
    for fam in dict.fromkeys(v.family for v in verdicts):
        members = [v for v in verdicts if v.family == fam and not v.parts]
        adj = holm([v.p for v in members], alpha)
        m = int(np.isfinite([v.p for v in members]).sum())
        a_fam = alpha / max(m, 1)
        for v, ph in zip(members, adj):
            v.p_holm = float(ph)
            if v.kind == "equivalence" and v.design is not None and math.isfinite(v.estimate):
                df = v.design.df(v.design.n)
                half = stats.t.ppf(1 - a_fam, df) * v.design.se if df >= 1 else math.nan
                v.bonferroni_interval = (v.estimate - half, v.estimate + half)
            v.verdict = decide(v, alpha)
            v.alpha_power = a_fam
            if power:
                _power(v, alpha)
    for v in verdicts:
        if v.parts:
            _decide_intersection(v, alpha, power)
    return verdicts


def _power(v: Verdict, alpha: float) -> None:
    if v.design is None:
        return
    a_fam = v.alpha_power
    effect = v.margin if v.kind == "equivalence" else v.sign * v.paper_effect
    v.power = v.design.power_now(effect, a_fam) if math.isfinite(effect) and effect > 0 else math.nan
    v.mde = v.design.mde(a_fam)
    v.n_needed = v.design.n_needed(effect, a_fam)
    v.n_needed_single = v.design.n_needed(effect, alpha)


def _decide_intersection(v: Verdict, alpha: float, power: bool) -> None:
    """"A beats B on its own recipe and on A's": holds only where every part holds (an intersection-union
    test: the claim is the conjunction, so it needs every part; its adjusted p is the largest of the
    parts'); contradicted where any part is contradicted (one false conjunct falsifies the conjunction;
    its adjusted p is the smallest of the contradicted parts'); inconclusive otherwise (adjusted p: the
    largest of the parts' when every estimate has the claimed sign, else the smallest of those against
    it).  The parts' adjusted p-values already carry their family's Holm correction, so this row adds
    no hypothesis and no further correction (the family-wise error stays at alpha).  Raw ``p`` by the
    same rule on the raw p-values."""
    parts = v.parts
    verdicts = [x.verdict for x in parts]
    against = [x for x in parts if math.isfinite(x.estimate) and x.sign * x.estimate <= 0]
    if all(k == HOLDS for k in verdicts):
        v.verdict = HOLDS
    elif CONTRADICTED in verdicts:
        v.verdict = CONTRADICTED
        against = [x for x in parts if x.verdict == CONTRADICTED]
    else:
        v.verdict = INCONCLUSIVE
    pick, deciding = (min, against) if against else (max, parts)
    if all(math.isfinite(x.p) for x in parts):
        v.p, v.p_holm = pick(x.p for x in deciding), pick(x.p_holm for x in deciding)
    else:  # a comparison without a test (one seed): the claim has none either
        v.p = v.p_holm = math.nan
    v.alpha_power = max(x.alpha_power for x in parts)
    if power:
        _power(v, alpha)


def intersection(parts: Sequence[Verdict], claim: str, **kw) -> Verdict:
    """The row of an intersection-union claim over ``parts`` (each its own comparison row of the same
    family, decided by :func:`finalize`): the estimate, interval and units are those of the closest
    comparison (smallest estimate in the claimed direction); power the product of the parts' (a lower
    bound: :class:`~equss.paper.claims_power.Intersection`)."""
    ok = [x for x in parts if math.isfinite(x.estimate)]
    closest = min(ok, key=lambda x: x.sign * x.estimate) if ok else parts[0]
    designs = [x.design for x in parts]
    design = Intersection(designs, min(d.n for d in designs)) if all(d is not None for d in designs) else None
    margins = ", ".join(f"{x.part_of or x.claim} {x.estimate:+.2f}" for x in parts)
    v = Verdict(claim, closest.source, closest.metric, closest.estimate, closest.low, closest.high, math.nan,
                "intersection-union of the comparisons below (each decided in its family; this row adds no test)",
                closest.n, closest.unit, sign=closest.sign, design=design,
                note=_join(kw.pop("note", ""), f"estimate of the closest; against each: {margins}"),
                paper_effect=kw.pop("paper_effect", min((x.paper_effect for x in parts), default=math.nan)),
                family=closest.family, probe=closest.probe, resolution=closest.resolution, parts=list(parts), **kw)
    return v


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
    counts: dict = field(default_factory=dict)  # arm -> seeds (observations) it has

    @property
    def balanced(self) -> bool:
        return len(set(self.counts.values())) <= 1

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
                    float(res.scale), bool(res.converged), {a: int((d[arm] == a).sum()) for a in arms})


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
    if fit.balanced:
        n, unit, design = fit.seeds, "seeds per arm", Coefficient(se, fit.seeds, _block_df(len(fit.arms)))
    else:  # unbalanced seeds: power as it ran, runs needed for a balanced design (claims_power.BlockContrast)
        mine = {a: fit.counts.get(a, 0) for a in weights if weights[a]}
        n = min(mine.values())
        by = {}
        for a, k in mine.items():
            by.setdefault(k, []).append(a)
        unit = "seeds per arm (" + "; ".join(f"{', '.join(a)}: {k}" for k, a in sorted(by.items(), reverse=True)) + ")"
        design = BlockContrast(se, n, fit.df, fit.resid_var, float(sum(w * w for w in weights.values())),
                               len(fit.arms))
    return Verdict(claim, source, metric, est, est - tq * se, est + tq * se, p, test, n, unit, design=design,
                   sign=sign, note=note, **kw)


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
            part = POSTHOC_PARTS.get(r.get("probe"))
            rows.append((str(r["run"]), ev, f"{part}_{group}" if part else group + ("_crf" if crf else "")))
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


def has_study(verdicts: Sequence[Verdict]) -> bool:
    """Whether the study's columns are written (:func:`is_study`: the tables carry its columns)."""
    return any(v.study for v in verdicts)


def _family_text(v: Verdict) -> str:
    """``primary`` / ``post-hoc probes · post-hoc (Q3: post-hoc quantised)`` / ``resolution check · 224``."""
    if v.family == POSTHOC_FAMILY:
        return f"{v.family} · {v.probe}"
    if v.family == RESOLUTION_FAMILY:
        return f"{v.family} · {v.resolution}"
    return v.family


def markdown(verdicts: Sequence[Verdict]) -> str:
    """The reviewer's table: claim, where, metric, verdict, estimate [interval], p raw -> Holm, n,
    power / MDE / runs needed, test (and, when the records hold per-image counts, the test-set
    bootstrap intervals over images and over sequences; for the study's tables the Holm family with the
    probe or resolution it reads, and whether the arms are recipe- and tuning-matched)."""
    boot, study = has_bootstrap(verdicts), has_study(verdicts)
    extra = " test-set bootstrap: images · sequences |" if boot else ""
    fam = " family |" if study else ""
    lines = ["| claim (paper) | where | metric |" + fam + " verdict | estimate [interval] | p → Holm | n "
             "| power · MDE · n needed |" + extra + " test |" + (" arms |" if study else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if boot else "") + ("---|---|" if study else "")]
    for v in verdicts:
        interval = f"{_fmt(v.estimate)} [{_fmt(v.low)}, {_fmt(v.high)}]"
        pw = f"{_fmt(v.power, 2, False)} · {_fmt(v.mde, 2, False)} · {_fmt_n(v.n_needed)}"
        note = f" ({v.note})" if v.note else ""
        bt = f" {_boot_text(v)} |" if boot else ""
        fm = f" {_family_text(v)} |" if study else ""
        arms = f" {v.arms} |" if study else ""
        lines.append(f"| {v.claim} | {v.source} | {v.metric} |{fm} **{v.verdict}** | {interval} | "
                     f"{_fmt_p(v.p)} → {_fmt_p(v.p_holm)} | {_fmt_n(v.n)} {v.unit} | {pw} |{bt} {v.test}{note} |"
                     + arms)
    return "\n".join(lines) + "\n"


def columns(verdicts: Sequence[Verdict]) -> list[str]:
    """The CSV's columns: :attr:`Verdict.COLUMNS`, plus the study's (:attr:`Verdict.STUDY_COLUMNS`) for the
    study's tables and the bootstrap's when the records held per-image counts."""
    return (list(Verdict.COLUMNS) + (list(Verdict.STUDY_COLUMNS) if has_study(verdicts) else [])
            + (list(Verdict.BOOT_COLUMNS) if has_bootstrap(verdicts) else []))


def write(verdicts: Sequence[Verdict], out_dir, name: str = "claims") -> None:
    """``name.csv`` (every column, full precision) and ``name.md`` (the table the README copies)."""
    import csv
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    boot, study = has_bootstrap(verdicts), has_study(verdicts)
    with open(out / f"{name}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns(verdicts))
        w.writeheader()
        w.writerows(v.row(boot, study) for v in verdicts)
    (out / f"{name}.md").write_text(markdown(verdicts))


def frame(verdicts: Sequence[Verdict]):
    """The verdicts as a DataFrame (the CSV's columns)."""
    import pandas as pd

    boot, study = has_bootstrap(verdicts), has_study(verdicts)
    return pd.DataFrame([v.row(boot, study) for v in verdicts], columns=columns(verdicts))


VERDICT_COLOURS = {HOLDS: "#c6efce", EQUIVALENT: "#ddebf7", CONTRADICTED: "#ffc7ce", INCONCLUSIVE: "#f2f2f2"}


def styled(verdicts: Sequence[Verdict]):
    """The reviewer's table as a pandas Styler, the verdict cell coloured."""
    import pandas as pd

    study = has_study(verdicts)
    rows = [{"claim": v.claim, "where": v.source, "metric": v.metric,
             **({"family": _family_text(v)} if study else {}), "verdict": v.verdict,
             "estimate [95% interval]": f"{_fmt(v.estimate)} [{_fmt(v.low)}, {_fmt(v.high)}]",
             "p (Holm)": _fmt_p(v.p_holm), "p (raw)": _fmt_p(v.p), "n": f"{_fmt_n(v.n)} {v.unit}",
             "power / MDE": f"{_fmt(v.power, 2, False)} / {_fmt(v.mde, 2, False)}",
             "n for paper's effect": _fmt_n(v.n_needed), "test": v.test, "recipe per arm": v.recipe,
             **({"arms": v.arms} if study else {}), "note": v.note,
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
      holds them (then :func:`paper_claims` adds the test-set bootstrap columns);
    * ``tuning``: the folder's ``tuning.json`` (:mod:`equss.paper.tuning`: the shifts tuned per preset),
      read for the ``arms`` column (:class:`~equss.paper.claims_arms.Configs`)."""
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
    if (root / "tuning.json").is_file():
        out["tuning"] = json.loads((root / "tuning.json").read_text())
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
    runs = {a: list(ra.values()), b: list(rb.values())}
    kw = dict(paper_effect=paper_effect, note=note, recipe=cfg.recipe(runs), arms=cfg.matched(runs),
              resolution=_resolution(df, cfg, runs[a] + runs[b]))
    label = METRIC_LABELS.get(metric, metric)
    if metric in METRIC_GROUPS:  # a test-set metric: the bootstrap resamples the same rows' evaluations
        kw["boot_spec"] = _boot_spec(df, metric, "method", [{a: 1, b: -1}], **where)
    if share and set(ya) == set(yb):
        seeds = sorted(ya)
        v = paired([ya[s] for s in seeds], [yb[s] for s in seeds], claim, source, label, sign=sign, why=why, **kw)
        v.per_seed = {s: ya[s] - yb[s] for s in seeds}
        return v
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


# ---------------------------------------------------------------------------- the study's views of a table
RAW = "DINO (raw features)"
LINEAR = ("linear_miou", "linear_acc")
STUDY_TABLE_COLUMNS = ("probe", "resolution", "recipe")


def is_study(tables: Mapping) -> bool:
    """Whether ``tables`` are the study's (issue 26): some table carries ``probe`` / ``resolution`` /
    ``recipe``, or the folder holds ``tuning.json``.  Then claims.csv gets :attr:`Verdict.STUDY_COLUMNS`."""
    frames = [tables.get(k) for k in TABLES]
    return tables.get("tuning") is not None or any(
        f is not None and any(c in f.columns for c in STUDY_TABLE_COLUMNS) for f in frames)


def _recipes(tables: Mapping) -> dict:
    """run -> the tables' ``recipe`` column (``equss.paper.tables``: "STEGO" / "EQUSS" / "—")."""
    out = {}
    for k in TABLES:
        f = tables.get(k)
        if f is not None and {"run", "recipe"} <= set(f.columns):
            out.update({str(r): str(x) for r, x in zip(f["run"], f["recipe"]) if isinstance(x, str) and x})
    return out


def _eval_resolution(c: Mapping | None) -> float:
    """The evaluation resolution a run's config names (a raw-backbone baseline: its provenance's)."""
    if not c:
        return math.nan
    v = c.get("data.eval_resolution", c.get("baseline.eval_resolution"))
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _at_main_resolution(df, cfg: Configs):
    """Rows evaluated at their run's own ``data.eval_resolution`` (the table's resolution): a row without a
    ``resolution`` (written before the column existed) or without a config record counts as such."""
    import pandas as pd

    if "resolution" not in df:
        return pd.Series(True, index=df.index)
    res = pd.to_numeric(df["resolution"], errors="coerce")
    want = df["run"].map(lambda r: _eval_resolution(cfg.get(r))) if "run" in df else res * math.nan
    return res.isna() | want.isna() | (res == want)


def _resolution(df, cfg: Configs, runs: Sequence[str]):
    """The evaluation resolution of ``runs``' rows in ``df`` (the column; else the configs'): one int, or
    ``"224/448"`` where they differ, ``""`` where unknown."""
    import pandas as pd

    vals = []
    if "resolution" in df and "run" in df:
        vals = pd.to_numeric(df[df["run"].isin(list(runs))]["resolution"], errors="coerce").dropna().tolist()
    if not vals:
        vals = [x for x in (_eval_resolution(cfg.get(r)) for r in runs) if math.isfinite(x)]
    vals = sorted({int(x) for x in vals})
    return vals[0] if len(vals) == 1 else "/".join(map(str, vals))


def _view(df, cfg: Configs, probe: str = ONLINE, resolution=None):
    """The rows of a measured table that a family reads: ``probe`` ONLINE (rows without a ``probe`` column
    are online) or POSTHOC (each method's converged probes on the representation its online probe reads:
    "post-hoc quantised" where the method has it (PQ arms), else "post-hoc"; the raw-backbone row as it is,
    its probes being the converged rule already), at the table's own resolution (``resolution`` None) or at
    another one.  None when no row is left."""
    import pandas as pd

    if df is None:
        return None
    if resolution is None:
        d = df[_at_main_resolution(df, cfg)]
    else:
        d = df[pd.to_numeric(df["resolution"], errors="coerce") == resolution] if "resolution" in df else df.iloc[0:0]
    probes = d["probe"].fillna(ONLINE).astype(str) if "probe" in d else None
    if probe == ONLINE:
        d = d if probes is None else d[probes == ONLINE]
    else:
        if probes is None:
            return None
        keep = []
        for key, g in d.groupby(["method", "dataset"] if "dataset" in d else ["method"], sort=False):
            p = probes[g.index]
            raw = key[0] == RAW or ("recipe" in g and (g["recipe"].astype(str) == "—").all())
            want = next((x for x in (POSTHOC_QUANTISED, POSTHOC) if (p == x).any()), ONLINE if raw else None)
            if want is not None:
                keep += g.index[p == want].tolist()
        if not any(probes[i] != ONLINE for i in keep):
            return None
        d = d.loc[sorted(keep)]
    return d if len(d) else None


def _probe_text(v: Verdict, used: Mapping[str, str]) -> str:
    """The probes a post-hoc row's arms used: "post-hoc", or "post-hoc (Q3: post-hoc quantised)"."""
    arms = list((v.boot_spec or {}).get("arms", {}))
    quant = [a for a in arms if used.get(a) == POSTHOC_QUANTISED]
    return POSTHOC + (f" ({', '.join(quant)}: {POSTHOC_QUANTISED})" if quant else "")


# ---------------------------------------------------------------------------- the paper's claims
def paper_claims(tables: dict, power: bool = True) -> list[Verdict]:
    """Every claim of the paper that the reproduction tests, decided from the tables of
    :func:`load_tables` (numbers without the CRF, the official protocol's online probes, each table's
    own resolution) and finalised by Holm within each family (:func:`finalize`).  Where the tables are
    the study's (:func:`is_study`), the linear-probe claims are re-estimated with converged post-hoc
    probes and Table 1's EQUSS - STEGO / EQUSS - M1 at every other evaluation resolution, each in a
    secondary family.  A claim whose table is missing is inconclusive with a note."""
    cfg = Configs(tables.get("configs"), tables.get("tuning"), _recipes(tables))
    t1, t2, t3 = (_measured(tables.get(k)) for k in ("table1", "table2", "table3"))
    o1, o2, o3 = (_view(t, cfg) for t in (t1, t2, t3))

    V: list[Verdict] = []
    V += _stego_claims(o1, o2, cfg) or [_missing("EQUSS > STEGO", "Tables 1, 2", "table1")]
    V += _raw_claims(o1, cfg) if o1 is not None else [_missing("EQUSS and STEGO > raw backbone", "Table 1", "table1")]
    # Table 3: dimension without PQ hurts; PQ helps, more at 1024; Q3 best.  Linear probing first.
    V += _table3_claims(o3, cfg) if o3 is not None else [_missing("Table 3 ablation", "Table 3", "table3")]
    V += _fig4_claims(tables, cfg)
    V += _fig2_claims(tables, cfg)
    V += _fig6_claims(tables, cfg)
    study = is_study(tables)
    if study:
        V += _secondary(t1, t2, t3, cfg, V)
    V = finalize(V, power=power)
    for v in V:
        v.study = study
        _compare_to_primary(v)
    if tables.get("per_image") is not None:  # the records hold per-image counts: test-set intervals
        add_bootstrap(V, tables["per_image"])
    return V


def _stego_claims(t1, t2, cfg: Configs, metrics: Sequence[str] | None = None) -> list[Verdict]:
    """"EQUSS > STEGO" per dataset of Tables 1 and 2 (Table 2a's proxy runs are Table 1's: counted once).
    Where the table also has M1 (STEGO's 70-d head trained on EQUSS's recipe), the claim is decided against
    both (:func:`intersection`): STEGO on its official recipe, and M1, which differs from EQUSS only in the
    expansion and the PQ; the two comparisons are rows of their own, after the claim's row."""
    import pandas as pd

    both = [d.assign(where=w) for d, w in ((t1, "Table 1"), (t2, "Table 2")) if d is not None]
    if not both:
        return []
    every = pd.concat(both)
    rows = every.drop_duplicates(subset=["method", "dataset", "seed"])
    V = []
    for ds in dict.fromkeys(rows["dataset"]):
        d = rows[rows["dataset"] == ds]
        src = " / ".join(dict.fromkeys(every[every["dataset"] == ds]["where"]))
        in_t1 = "Table 1" in src
        m1 = next((str(m) for m in dict.fromkeys(d["method"]) if str(m).split()[0] == "M1"), None)
        # Table 1 (CocoStuff) states all four numbers; Table 2b (Potsdam-3) unsupervised Acc only
        chosen = [m for m in (list(METRIC_LABELS) if in_t1 else ["unsup_acc"]) if metrics is None or m in metrics]
        table = quoted.TABLE1 if in_t1 else quoted.TABLE2B
        claim, head, vs_stego, vs_m1 = f"EQUSS > STEGO ({ds})", [], [], []
        for m in chosen:
            eff = _quoted_diff(table, "EQUSS", "STEGO", m)
            note = f"paper's effect: {'Table 1' if in_t1 else 'Table 2b'} quoted"
            t2a = _quoted_diff(quoted.TABLE2A, "EQUSS", "STEGO", m)
            if in_t1 and "Table 2" in src and math.isfinite(t2a):
                note += f"; Table 2a quotes {t2a:+.1f}"
            where = {"dataset": ds}
            if m1 is None:
                head.append(_two_arms(d, m, "EQUSS", "STEGO", claim, src, cfg, eff, note, where=where))
                continue
            s = _two_arms(d, m, "EQUSS", "STEGO", f"{claim}: vs STEGO, its own recipe", src, cfg, eff, note,
                          where=where)
            q = _two_arms(d, m, "EQUSS", m1, f"{claim}: vs M1, STEGO's head on EQUSS's recipe", src, cfg, eff,
                          _join(note, "the paper's M1 is its STEGO (Table 3's M1 row repeats Table 1's STEGO)"),
                          where=where)
            s.part_of, q.part_of = "vs STEGO", "vs M1"
            v = intersection([s, q], claim, recipe=cfg.recipe({"EQUSS": _runs(d, "EQUSS"), "STEGO": _runs(d, "STEGO"),
                                                               m1: _runs(d, m1)}),
                             arms=f"vs STEGO: {s.arms} | vs M1: {q.arms}", paper_effect=eff)
            if m in METRIC_GROUPS:
                v.boot_spec = _boot_spec(d, m, "method", [{"EQUSS": 1, "STEGO": -1}, {"EQUSS": 1, m1: -1}], **where)
            head.append(v)
            vs_stego.append(s)
            vs_m1.append(q)
        V += head + vs_stego + vs_m1
    return V


def _runs(df, method: str) -> list:
    return list(_runs_by_seed(df, method=method).values())


def _raw_claims(t1, cfg: Configs, metrics: Sequence[str] = tuple(METRIC_LABELS)) -> list[Verdict]:
    """Table 1: EQUSS and STEGO beat the raw backbone (k-means and a linear probe on frozen DINO features)."""
    return [_two_arms(t1, m, method, RAW, f"{method} > raw backbone", "Table 1", cfg,
                      _quoted_diff(quoted.TABLE1, method, RAW, m))
            for method in ("EQUSS", "STEGO") for m in metrics]


def _secondary(t1, t2, t3, cfg: Configs, primary: Sequence[Verdict]) -> list[Verdict]:
    """The study's secondary families (module docstring): the linear-probe claims re-estimated with
    converged post-hoc probes, and Table 1's EQUSS vs STEGO / M1 at each other evaluation resolution.
    Each row is linked to its primary row (``counterpart``)."""
    import pandas as pd

    out = []
    p1, p2, p3 = (_view(t, cfg, POSTHOC) for t in (t1, t2, t3))
    post = (_stego_claims(p1, p2, cfg, LINEAR) if p1 is not None or p2 is not None else [])
    post += _raw_claims(p1, cfg, LINEAR) if p1 is not None and (p1["method"] == RAW).any() else []
    post += _table3_claims(p3, cfg, metrics=("linear_miou",)) if p3 is not None else []
    used = {}  # method (and Table 3 variant) -> the probe its post-hoc rows used
    for d in (p1, p2, p3):
        if d is not None and "probe" in d:
            for m, p in zip(d["method"].astype(str), d["probe"].fillna(ONLINE).astype(str)):
                used[m] = used[m.split()[0]] = p
    for v in post:
        v.family, v.probe = POSTHOC_FAMILY, _probe_text(v, used)
    out += post
    if t1 is not None and "resolution" in t1:
        res = pd.to_numeric(t1["resolution"], errors="coerce")
        for r in sorted({int(x) for x in res[~_at_main_resolution(t1, cfg)].dropna()}):
            view = _view(t1, cfg, ONLINE, resolution=r)
            rows = _stego_claims(view, None, cfg) if view is not None else []
            for v in rows:
                v.family = RESOLUTION_FAMILY
            out += rows
    key = {(v.claim, v.metric, v.source.split(" / ")[0]): v for v in primary}
    for v in out:
        c = key.get((v.claim, v.metric, v.source.split(" / ")[0]))
        if c is not None and c.parts and not v.parts:  # only vs STEGO here: the primary row of that comparison
            c = next((x for x in c.parts if x.part_of == "vs STEGO"), None)
        v.counterpart = c
    return out


def _compare_to_primary(v: Verdict) -> None:
    """A secondary row's note: its primary row's estimate and verdict (and for the resolution check the
    change of the estimate between the resolutions, paired over seeds), so the two can be read together."""
    c = v.counterpart
    if c is None:
        return
    at = f"at {c.resolution}" if v.family == RESOLUTION_FAMILY else "online probes"
    text = f"{at} (primary): {c.estimate:+.2f} [{c.low:+.2f}, {c.high:+.2f}] -> {c.verdict}"
    common = sorted(set(v.per_seed) & set(c.per_seed))
    if v.family == RESOLUTION_FAMILY and len(common) >= 2:
        d = np.array([c.per_seed[s] - v.per_seed[s] for s in common])
        res = stats.ttest_1samp(d, 0.0)
        low, high = _ci(res) if d.std(ddof=1) > 0 else (d.mean(), d.mean())
        text += (f"; change {c.resolution} - {v.resolution}: {d.mean():+.2f} [{low:+.2f}, {high:+.2f}] "
                 f"(paired over {len(d)} seeds, 95 %)")
    v.note = _join(v.note, text)


TABLE3_ARMS = ("M1", "M2", "M3", "Q2", "Q3")
TABLE3_CLAIMS = (({"M1": 1, "M2": -1}, "dimension without PQ hurts: M1 > M2"),
                 ({"M2": 1, "M3": -1}, "dimension without PQ hurts: M2 > M3"),
                 ({"Q2": 1, "M2": -1}, "PQ helps at 384: Q2 > M2"),
                 ({"Q3": 1, "M3": -1}, "PQ helps at 1024: Q3 > M3"),
                 ({"Q3": 1, "M3": -1, "Q2": -1, "M2": 1}, "PQ gain larger at 1024: (Q3 - M3) > (Q2 - M2)"))


def _table3_claims(t3, cfg: Configs, metrics: Sequence[str] = ("linear_miou", "unsup_miou")) -> list[Verdict]:
    """Table 3's ordering on linear mIoU (the paper states it for linear probing), then on unsupervised
    mIoU as secondary rows: a mixed model when the five arms share each seed's batches (also where the
    arms ran different numbers of seeds: M1 and Q3 are Table 1's runs)."""
    t3 = t3.assign(variant=t3["method"].astype(str).str.split().str[0])
    full = {str(m).split()[0]: str(m) for m in t3["method"]}
    arms = {v: _runs_by_seed(t3, variant=v) for v in TABLE3_ARMS}
    share, why = cfg.shares_batches(arms, unbalanced=True)
    recipe = cfg.recipe({full.get(v, v): list(r.values()) for v, r in arms.items()})
    runs = {full.get(v, v): list(r.values()) for v, r in arms.items()}
    resolution = _resolution(t3, cfg, [r for rs in runs.values() for r in rs])
    V = []
    ranks = {"linear_miou": "primary: the paper states Table 3's ordering for linear probing",
             "unsup_miou": "secondary row"}
    for m in metrics:
        rank = ranks[m]
        fit = mixed_fit(t3.assign(arm=t3["variant"]), m, arm="arm", seed="seed") if share else None
        test = dict(t3=t3, metric=m, fit=fit, why=why, recipe=recipe, resolution=resolution)
        V += [_table3_test(w, claim, note=rank, arms=cfg.matched({full.get(a, a): runs[full.get(a, a)] for a in w}),
                           **test) for w, claim in TABLE3_CLAIMS]
        others = [o for o in TABLE3_ARMS if o != "Q3"]
        parts = [_table3_test({"Q3": 1, o: -1}, f"Q3 > {o}", **test) for o in others]
        best = iut(parts, "Q3 best: Q3 > each other arm", note=rank, recipe=recipe, arms=cfg.matched(runs),
                   resolution=resolution, paper_effect=min(_quoted_contrast({"Q3": 1, o: -1}, m) for o in others))
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
                   note=_join(kw.pop("note", ""), f"no shared seeds ({why}): no contrast test"), recipe=recipe, **kw)


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
    eq_runs = {"EQUSS": list(runs["EQUSS"].values())}
    V.append(spearman(per_class["entropy"], per_class["y"], "lower-entropy classes have higher accuracy (rho < 0)",
                      "Fig. 4c", metric, sign=-1, labels=per_class["name"].tolist(), note=note,
                      recipe=cfg.recipe(eq_runs), arms=cfg.matched(eq_runs)))

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
                        recipe=cfg.recipe({"EQUSS": list(dict.fromkeys(fd["run"]))}),
                        arms=cfg.matched({"EQUSS": list(dict.fromkeys(fd["run"]))})))
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
        common = dict(recipe=cfg.recipe({method: d["run"].tolist()}), arms=cfg.matched({method: d["run"].tolist()}),
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
    arms = cfg.matched({"Fig. 6 cells": f6["run"].tolist()})
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
                        unit="K blocks", recipe=recipe, arms=arms,
                        note=_join(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(str(int(s)) for s in seeds)}; "
                                   "blocked by K: the K effect cancels", additive)))
    region = f6["M"].between(8, 32) & f6["K"].between(32, 64)
    V.append(welch(f6[region][metric].tolist(), f6[~region][metric].tolist(),
                   "best region M 8-32, K 32-64 beats the rest", "Fig. 6", label,
                   why="each cell one run; region and rest are different configurations",
                   recipe=recipe, arms=arms,
                   note="the spread is between configurations plus seed noise (one seed per cell)"))
    return V
