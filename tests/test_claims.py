"""equss.paper.claims: each statistic against an independent computation (scipy / statsmodels on the
same numbers, numpy by hand, brute force), the verdicts' power and family-wise error by simulation,
and the paper's claims on built tables whose outcomes are known."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from equss.paper import claims


def _t(x):
    return x.mean(-1) / (x.std(-1, ddof=1) / np.sqrt(x.shape[-1]))


# ---------------------------------------------------------------------------- the statistics
def test_paired_against_scipy_inversion_and_sign_flips():
    rng = np.random.default_rng(1)
    a = rng.normal(25, 1, 12)
    b = a - rng.normal(0.7, 1, 12)
    v = claims.paired(a, b, "A > B", "Table 1", "unsup. mIoU")
    ref = stats.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert v.estimate == pytest.approx(np.mean(a - b)) and v.p == pytest.approx(ref.pvalue)
    assert (v.low, v.high) == pytest.approx((ci.low, ci.high))
    # the interval by brute-force test inversion: the shifts the t test does not reject
    d = a - b
    grid = np.linspace(d.mean() - 3, d.mean() + 3, 60001)
    tt = (d.mean() - grid) / (d.std(ddof=1) / math.sqrt(len(d)))
    kept = grid[2 * stats.t.sf(np.abs(tt), len(d) - 1) >= 0.05]
    assert (v.low, v.high) == pytest.approx((kept.min(), kept.max()), abs=2e-4)
    # the null distribution by brute force: all 2^12 sign flips of the paired differences
    flips = np.array(list(itertools.product([1, -1], repeat=len(d))))
    p_perm = np.mean(np.abs(_t(flips * d)) >= abs(_t(d)) - 1e-12)
    assert v.p == pytest.approx(p_perm, abs=0.02)


def test_welch_against_scipy_and_hand_satterthwaite():
    a, b = np.array([25.1, 26.0, 24.7]), np.array([23.0, 24.2, 22.1, 23.5])
    v = claims.welch(a, b, "A > B", "Table 1", "m")
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 4
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    est = a.mean() - b.mean()
    assert v.estimate == pytest.approx(est) and (v.low, v.high) == pytest.approx((est - half, est + half))
    assert v.p == pytest.approx(2 * stats.t.sf(est / math.sqrt(va + vb), df))
    assert v.p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_mixed_model_contrast_is_the_randomised_block_analysis():
    """With a positive seed variance, MixedLM's REML contrast equals the two-way (arm + seed) ANOVA
    computed here with numpy: the same estimate, standard error sqrt(MSE * sum w^2 / n) and df."""
    rng = np.random.default_rng(3)
    arms, seeds = ["M1", "M2", "M3", "Q2", "Q3"], range(4)
    seed_fx = rng.normal(0, 2.0, 4)
    arm_fx = dict(zip(arms, [20.0, 19.0, 18.5, 21.0, 22.0]))
    df = pd.DataFrame([{"arm": a, "seed": s, "y": arm_fx[a] + seed_fx[s] + rng.normal(0, 0.5)}
                       for a in arms for s in seeds])
    fit = claims.mixed_fit(df, "y")
    w = {"Q3": 1, "M3": -1, "Q2": -1, "M2": 1}
    v = claims.mixed_contrast(fit, w, "gain larger at 1024", "Table 3", "m")
    y = df.pivot(index="arm", columns="seed", values="y").loc[arms].to_numpy()
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    dfe = (len(arms) - 1) * (len(seeds) - 1)
    mse = (resid ** 2).sum() / dfe
    wv = np.array([w.get(a, 0) for a in arms])
    est, se = wv @ y.mean(1), math.sqrt(mse * (wv ** 2).sum() / len(seeds))
    assert fit.seed_var > 0 and fit.df == dfe
    assert v.estimate == pytest.approx(est, rel=1e-6)
    assert (v.high - v.low) / 2 == pytest.approx(stats.t.ppf(0.975, dfe) * se, rel=1e-3)
    assert v.p == pytest.approx(2 * stats.t.sf(abs(est) / se, dfe), rel=1e-2)
    assert "mixed model" in v.test and v.n == len(seeds)


def test_holm_against_a_hand_step_down():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0, 0.02, 4), rng.uniform(0, 1, 9), [np.nan]])
    adj = claims.holm(p)
    ok = np.isfinite(p)
    q, m = p[ok], ok.sum()
    order = np.argsort(q)
    hand, running = np.empty(m), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * q[i]))
        hand[i] = running
    assert np.allclose(adj[ok], hand) and np.isnan(adj[~ok]).all()


def test_spearman_against_ranks_and_leave_one_out():
    rng = np.random.default_rng(2)
    x = rng.normal(size=15)
    y = -x + rng.normal(scale=0.6, size=15)
    v = claims.spearman(x, y, "r < 0", "Fig. 4c", "acc", sign=-1)
    rank = lambda z: stats.rankdata(z)  # noqa: E731
    assert v.estimate == pytest.approx(np.corrcoef(rank(x), rank(y))[0, 1])
    assert v.p == pytest.approx(stats.spearmanr(x, y).pvalue)
    se = math.sqrt(1.06 / 12)
    assert (v.low, v.high) == pytest.approx((math.tanh(math.atanh(v.estimate) - 1.959964 * se),
                                              math.tanh(math.atanh(v.estimate) + 1.959964 * se)), abs=1e-5)
    assert v.robust
    # one class carries the sign: rho < 0 with it, >= 0 without it -> not robust, so never "holds"
    x2 = np.arange(11.0)
    for _ in range(1000):
        y2 = np.r_[rng.permutation(np.arange(10.0)), -5.0]
        loo = [stats.spearmanr(np.delete(x2, i), np.delete(y2, i)).statistic for i in range(11)]
        if stats.spearmanr(x2, y2).statistic < 0 <= max(loo):
            break
    w = claims.spearman(x2, y2, "r < 0", "Fig. 4c", "acc", sign=-1, labels=[f"c{i}" for i in range(11)])
    assert w.estimate < 0 and not w.robust and "c" in w.note
    w.p_holm = 0.001
    assert claims.decide(w) == claims.INCONCLUSIVE
    v.p_holm = 0.001
    assert claims.decide(v) == claims.HOLDS


def test_ols_slope_and_tost_against_scipy_and_statsmodels():
    from statsmodels.stats.weightstats import ttost_paired

    rng = np.random.default_rng(4)
    x = np.log2([64, 128, 256, 512, 1024] * 3)
    y = 50 + 2 * x + rng.normal(scale=0.5, size=15)
    s = claims.ols_slope(x, y, "rises", "Fig. 2", "acc", sign=1)
    res = stats.linregress(x, y)
    half = stats.t.ppf(0.975, 13) * res.stderr
    assert s.estimate == pytest.approx(res.slope) and s.p == pytest.approx(res.pvalue)
    assert (s.low, s.high) == pytest.approx((res.slope - half, res.slope + half))
    # TOST of a mean difference, as statsmodels' ttost_paired computes it
    a, b = rng.normal(10, 1, 9), rng.normal(10, 1, 9)
    d = a - b
    p, low, high = claims.tost(d.mean(), d.std(ddof=1) / 3, 8, 1.2)
    assert p == pytest.approx(ttost_paired(a, b, -1.2, 1.2)[0])
    assert (low, high) == pytest.approx(stats.ttest_1samp(d, 0).confidence_interval(0.90))
    # TOST on a slope: the larger of the two one-sided t tests of the OLS slope
    flat = 50 + rng.normal(scale=0.3, size=15)
    e = claims.tost_slope(x, flat, 1.0, "does not fall", "Fig. 2", "acc")
    r = stats.linregress(x, flat)
    hand = max(stats.t.sf((r.slope + 1.0) / r.stderr, 13), stats.t.cdf((r.slope - 1.0) / r.stderr, 13))
    assert e.p == pytest.approx(hand) and e.kind == "equivalence"
    [e] = claims.finalize([e], power=False)
    assert e.verdict == claims.EQUIVALENT and e.p_holm < 0.05


# ---------------------------------------------------------------------------- power
def _nct_power(ncp, df, alpha):
    tc = stats.t.ppf(1 - alpha / 2, df)
    return stats.nct.sf(tc, df, ncp) + stats.nct.cdf(-tc, df, ncp)


def test_power_designs_against_the_noncentral_t():
    one = claims.OneSample(sd=2.0, n=6)
    assert one.power(1.5, 6, 0.05) == pytest.approx(_nct_power(1.5 / 2 * math.sqrt(6), 5, 0.05))
    two = claims.TwoSample(sd=2.0, n=5, ratio=1.0)
    assert two.power(2.0, 5, 0.05) == pytest.approx(_nct_power(1.0 * math.sqrt(2.5), 8, 0.05))
    coef = claims.Coefficient(se=0.8, n=3, df=lambda k: 4 * (k - 1))
    assert coef.power(2.0, 3, 0.01) == pytest.approx(_nct_power(2.5, 8, 0.01))
    assert coef.power(2.0, 12, 0.01) == pytest.approx(_nct_power(2.0 / (0.8 * math.sqrt(3 / 12)), 44, 0.01))
    # the fallback where the non-central t fails (df 2, large non-centrality, small alpha): Monte Carlo
    rng = np.random.default_rng(0)
    z = rng.normal(size=400_000) + 12
    t = z / np.sqrt(rng.chisquare(2, 400_000) / 2)
    mc = np.mean(np.abs(t) > stats.t.ppf(1 - 0.0015 / 2, 2))
    assert claims._t_power_quad(12, 2, 0.0015) == pytest.approx(mc, abs=0.005)
    # runs needed: the smallest n reaching 80 %; MDE: the effect at exactly 80 %
    n = one.n_needed(1.5, 0.05)
    assert one.power(1.5, n, 0.05) >= 0.8 > one.power(1.5, n - 1, 0.05)
    assert one.power(one.mde(0.05), 6, 0.05) == pytest.approx(0.8, abs=1e-6)
    assert math.isnan(one.n_needed(-1.0, 0.05))  # an effect against the claim: nothing to power for


def test_tost_power_by_simulation():
    """The equivalence design's power (true effect 0) against simulated TOSTs of a 5-point slope."""
    rng = np.random.default_rng(5)
    x = np.log2([64, 128, 256, 512, 1024])
    sigma, margin, sims = 1.0, 0.9, 4000
    y = rng.normal(0, sigma, (sims, 5))
    xc = x - x.mean()
    slope = y @ xc / (xc @ xc)
    resid = y - y.mean(1, keepdims=True) - slope[:, None] * xc
    se = np.sqrt((resid ** 2).sum(1) / 3 / (xc @ xc))
    tc = stats.t.ppf(0.95, 3)
    shown = np.mean((slope - tc * se > -margin) & (slope + tc * se < margin))
    design = claims.Equivalence(se=sigma / math.sqrt(xc @ xc), n=5, df=lambda k: k - 2)
    p = design.power(margin, 5, 0.05)
    assert shown == pytest.approx(p, abs=3 * math.sqrt(p * (1 - p) / sims) + 0.01)


@pytest.fixture
def frozen_heap():
    """statsmodels' Holm branch calls gc.collect() on every call (about 0.15 s with this process's heap);
    gc.freeze() leaves the objects already alive out of it, so a simulation of many families stays fast."""
    import gc

    gc.freeze()
    yield
    gc.unfreeze()


def test_simulated_families_hit_the_stated_power(frozen_heap):
    """400 families of 5 paired claims (6 seeds), one with a real effect: the Holm verdict finds it about
    as often as the power stated at alpha / 5 (Holm's first step; a little more with the other nulls)."""
    rng = np.random.default_rng(11)
    n, m, sd, families = 6, 5, 1.0, 400
    design = claims.OneSample(sd=sd, n=n)
    effect = design.mde(0.05 / m, power=0.6)  # an effect with about 60 % power, computed, not typed
    power = design.power(effect, n, 0.05 / m)
    diffs = rng.normal(0, sd, (families, m, n))
    diffs[:, 0] += effect
    hits = 0
    for fam in diffs:
        vs = [claims.one_sample(d, f"claim {i}", "sim", "m") for i, d in enumerate(fam)]
        vs = claims.finalize(vs, power=False)
        hits += vs[0].verdict == claims.HOLDS
    rate = hits / families
    tol = 3 * math.sqrt(power * (1 - power) / families)
    assert power - tol <= rate <= power + tol + 0.03


def test_null_families_keep_the_familywise_error(frozen_heap):
    """1000 families of 6 true nulls (paired and Welch): the Holm-corrected family errs in <= 5 %
    (+ binomial tolerance) of them, where the uncorrected one would err in about a quarter."""
    rng = np.random.default_rng(12)
    families, m = 1000, 6
    x = rng.normal(0, 1, (families, m, 2, 4))
    any_err = any_raw = 0
    for fam in x:
        vs = [claims.paired(a, b, f"c{i}", "sim", "m") if i % 2 else claims.welch(a, b, f"c{i}", "sim", "m")
              for i, (a, b) in enumerate(fam)]
        vs = claims.finalize(vs, power=False)
        any_err += any(v.verdict != claims.INCONCLUSIVE for v in vs)
        any_raw += any(v.p < 0.05 for v in vs)
    assert any_err / families <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / families)
    assert any_raw / families > 0.15


# ---------------------------------------------------------------------------- the paper's claims on built tables
BATCH = {"train.batch_size": 16, "train.backbone": "vit", "train.weights": None, "data.dataset": "camvid",
         "data.train_split": "train", "data.resolution": 224, "data.five_crop": False, "data.max_images": 0,
         "data.num_neighbors": 7, "data.knn_k": 30}


def _config(run, seed, dim, pq, M=32, K=256, lr=3e-4, **extra):
    return {"run": run, "train.seed": seed, "model.head_dim": dim, "model.pq": pq, "model.num_codebooks": M,
            "model.codebook_size": K, "model.objective": "unsupervised", "train.lr": lr, "train.clip_grad": 10.0,
            "train.steps": 250, "loss.pos_intra_shift": 0.9, "loss.pos_inter_shift": 0.8, "loss.neg_inter_shift": 0.7,
            **BATCH, **extra}


def _synthetic_tables():
    """Tables in the notebooks' CSV layout (plus the configs and per-class accuracy that load_tables adds),
    built so that each claim's outcome is known.  A seed effect shared by the arms of a seed makes the
    pairing matter."""
    rng = np.random.default_rng(0)
    noise = lambda: float(rng.normal(scale=0.1))  # noqa: E731
    seeds = [0, 1, 2, 3]
    seed_fx = {s: float(rng.normal(scale=2.0)) for s in seeds}
    configs = []

    def rows(method, dataset, base, dim=1024, pq=True, lr=3e-4):
        out = []
        for s in seeds:
            run = f"{dataset}-{method.split()[0]}-seed{s}"
            if method.startswith("DINO"):
                configs.append({"run": run, "baseline.what": "raw backbone baseline", "baseline.seed": s})
            else:
                configs.append(_config(run, s, dim, pq, lr=lr, **{"data.dataset": dataset}))
            for crf in (False, True):
                v = base + seed_fx[s]
                out.append({"method": method, "dataset": dataset, "seed": s, "crf": crf, "run": run,
                            "unsup_acc": v + 30 + noise() + (5 if crf else 0), "unsup_miou": v + noise(),
                            "linear_acc": v + 50 + noise(), "linear_miou": v + 10 + noise(), "source": "measured"})
        return out

    quoted = {"method": "EQUSS [paper]", "source": "quoted (paper)", "unsup_miou": 99.0}
    t1 = (rows("DINO (raw features)", "camvid", 10) + rows("STEGO", "camvid", 20, 70, False, 5e-4)
          + rows("EQUSS", "camvid", 22) + [quoted])
    t2 = [dict(r, table="2a") for r in t1 if r.get("method") in ("STEGO", "EQUSS")]
    t2 += [dict(r, table="2b")
           for r in rows("STEGO", "dubai_aerial", 17, 70, False) + rows("EQUSS", "dubai_aerial", 15)]
    # Table 3: M1 > M2 > M3, PQ gains +1 at 384 and +4 at 1024, Q3 best
    t3 = sum((rows(name, "camvid3", b, dim, pq) for name, b, dim, pq in (
        ("M1 (70, no PQ)", 22, 70, False), ("M2 (384, no PQ)", 21, 384, False), ("M3 (1024, no PQ)", 19, 1024, False),
        ("Q2 (384, PQ)", 22, 384, True), ("Q3 (1024, PQ)", 23, 1024, True))), [])
    lw = np.log2([64, 128, 256, 512, 1024])
    f2 = [{"method": m, "dim": int(2 ** w), "seed": 0, "crf": False, "source": "measured", "run": f"f2-{m}-{w}",
           "unsup_acc": 50 + slope * w + noise()}
          for m, slope in (("supervised head", 2.0), ("STEGO head", -1.5), ("EQUSS (PQ)", 0.0)) for w in lw]
    # Fig. 4 on the Table 1 runs: STEGO uses ~85 % of its 560 bits, EQUSS ~50 % of its 256
    f4 = [{"method": m, "seed": s, "run": f"camvid-{m}-seed{s}", "class_index": c, "class": f"c{c}",
           "entropy_bits": frac * cap + 2 * c + noise(), "iou": 50 - 3 * c + noise(), "source": "measured"}
          for m, frac, cap in (("STEGO", 0.85, 560), ("EQUSS", 0.5, 256)) for c in range(8) for s in seeds]
    acc = [{"run": f"camvid-EQUSS-seed{s}", "class_index": c, "accuracy": 90 - 8 * c + noise()}
           for s in seeds for c in range(8)]
    fd = [{"seed": s, "run": f"camvid-EQUSS-seed{s}", "class_a_index": a, "class_b_index": b,
           "distance": (10 if a == b else 25) + noise(), "source": "measured"} for s in seeds for a in range(6)
          for b in range(6)]
    f6 = [{"M": m, "K": k, "seed": 0, "crf": False, "source": "measured", "run": f"f6-{m}-{k}",
           "unsup_miou": 10 + (3 if m > 1 else 0) + (4 if 8 <= m <= 32 and 32 <= k <= 64 else 0) + noise()}
          for m in (1, 2, 4, 8, 16, 32, 64) for k in (8, 16, 32, 64, 128)]
    out = {k: pd.DataFrame(v) for k, v in (("table1", t1), ("table2", t2), ("table3", t3), ("fig2", f2), ("fig4", f4),
                                            ("fig4_distance", fd), ("fig6", f6), ("class_accuracy", acc))}
    out["configs"] = pd.DataFrame(configs).drop_duplicates("run")
    out["fig4_meta"] = pd.DataFrame([{"histogram_bins": 256}])
    return out


def _by_claim(vs):
    return {(v.claim, v.metric): v for v in vs}


def test_paper_claims_on_synthetic_tables():
    t = _synthetic_tables()
    vs = claims.paper_claims(t, power=False)
    v = _by_claim(vs)
    eq = v["EQUSS > STEGO (camvid)", "unsup. mIoU"]
    assert eq.source == "Table 1 / Table 2" and eq.verdict == claims.HOLDS  # 2a's runs counted once
    assert eq.test.startswith("paired t") and eq.n == 4
    # paired by seed: the shared seed effect cancels (Welch on the same numbers would not see it)
    d = t["table1"][t["table1"]["crf"] == False]  # noqa: E712
    a, b = (d[d["method"] == m].sort_values("seed")["unsup_miou"].to_numpy() for m in ("EQUSS", "STEGO"))
    assert eq.p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert stats.ttest_ind(a, b, equal_var=False).pvalue > eq.p
    assert "d 1024" in eq.recipe and "d 70" in eq.recipe and "lr 0.0005" in eq.recipe
    dubai = [x for x in vs if x.claim == "EQUSS > STEGO (dubai_aerial)"]
    assert [x.metric for x in dubai] == ["unsup. Acc"] and dubai[0].verdict == claims.CONTRADICTED
    raw = v["EQUSS > raw backbone", "linear mIoU"]
    assert raw.test.startswith("Welch") and "no training batch stream" in raw.test
    assert raw.verdict == claims.HOLDS
    # Table 3 on the mixed model, linear probing first
    t3 = [x for x in vs if x.source == "Table 3"]
    assert [x.metric for x in t3] == ["linear mIoU"] * 6 + ["unsup. mIoU"] * 6
    assert all("mixed model" in x.test for x in t3)
    for x in t3:
        assert x.verdict == claims.HOLDS, (x.claim, x.metric, x.estimate, x.p_holm)
    assert v["Q3 best: Q3 > each other arm", "linear mIoU"].estimate == pytest.approx(1.0, abs=0.3)  # Q3 - Q2
    # Fig. 4: fractions of each maximum, paired by seed; accuracy, not IoU; the within/across distance
    bits = v["EQUSS needs fewer bits per class than STEGO (each as a fraction of its maximum)",
             "class-mean entropy / its maximum"]
    assert bits.estimate == pytest.approx(0.35 + (7 / 560 - 7 / 256), abs=0.01) and bits.verdict == claims.HOLDS
    corr = v["lower-entropy classes have higher accuracy (rho < 0)", "per-class accuracy"]
    assert corr.estimate == pytest.approx(-1.0) and corr.verdict == claims.HOLDS and corr.robust
    assert v["codeword distance within a class < across classes (Eq. 9)", "mean Hamming distance (codebooks)"].verdict \
        == claims.HOLDS
    # Fig. 2 trends and the equivalence claim; Fig. 6 blocked by K
    f2 = {x.claim: x for x in vs if x.source == "Fig. 2"}
    assert f2["supervised head: accuracy rises with width"].verdict == claims.HOLDS
    assert f2["STEGO head: accuracy falls with width"].verdict == claims.HOLDS
    flat = f2["EQUSS: accuracy does not fall with width"]
    assert flat.kind == "equivalence" and flat.margin == pytest.approx(claims.fig2_margin())
    assert flat.verdict == claims.EQUIVALENT
    f6 = {x.claim: x for x in vs if x.source == "Fig. 6"}
    assert f6["more codebooks help: M > 1 beats M = 1"].n == 5 and f6["more codebooks help: M > 1 beats M = 1"].unit \
        == "K blocks"
    # one family: Holm over every claim with a p-value
    assert np.allclose([x.p_holm for x in vs], claims.holm([x.p for x in vs]), equal_nan=True)


def test_paper_claims_power_columns():
    t = _synthetic_tables()
    vs = claims.paper_claims({k: t[k] for k in ("table1", "configs")})
    m = sum(math.isfinite(x.p) for x in vs)
    x = _by_claim(vs)["EQUSS > STEGO (camvid)", "unsup. mIoU"]
    assert x.alpha_power == pytest.approx(0.05 / m) and x.paper_effect == pytest.approx(1.3)
    d = claims.OneSample(x.design.sd, 4)
    assert x.power == pytest.approx(d.power(1.3, 4, 0.05 / m)) and x.n_needed == d.n_needed(1.3, 0.05 / m)
    assert x.n_needed_single <= x.n_needed


def test_unpaired_arms_and_missing_tables(tmp_path):
    t = _synthetic_tables()
    cfg = t["configs"].copy()
    cfg.loc[cfg["run"] == "camvid-STEGO-seed1", "data.knn_k"] = 10  # another kNN table: other positives
    v = _by_claim(claims.paper_claims({"table1": t["table1"], "configs": cfg}, power=False))
    x = v["EQUSS > STEGO (camvid)", "unsup. mIoU"]
    assert x.test.startswith("Welch") and "seed 1" in x.test
    one = {"table1": t["table1"][t["table1"]["seed"] == 0], "configs": t["configs"]}
    vs = claims.paper_claims(one, power=False)
    eq = _by_claim(vs)["EQUSS > STEGO (camvid)", "unsup. mIoU"]
    assert eq.verdict == claims.INCONCLUSIVE and math.isnan(eq.p) and math.isfinite(eq.estimate)
    missing = [x for x in vs if "not produced" in x.note]
    assert {x.source for x in missing} >= {"Table 3", "Fig. 2", "Fig. 6", "Fig. 4d"}
    assert all(x.verdict == claims.INCONCLUSIVE for x in missing)


def test_load_tables_reads_configs_and_per_class_accuracy(tmp_path):
    import json

    import yaml

    t = _synthetic_tables()
    for name in claims.TABLES:
        t[name].to_csv(tmp_path / f"{name}.csv", index=False)
    conf = np.array([[50, 5, 0], [10, 30, 2], [0, 5, 8]])  # rows predicted, columns true
    for r in t["configs"].to_dict("records"):
        folder = tmp_path / "runs" / r["run"]
        folder.mkdir(parents=True)
        if "baseline.what" in r and r["baseline.what"] == r["baseline.what"]:
            (folder / "baseline.json").write_text(json.dumps({"provenance": {"what": r["baseline.what"]}}))
            continue
        nested = {}
        for k, val in r.items():
            if k == "run" or (isinstance(val, float) and math.isnan(val)):
                continue
            group, key = k.split(".")
            nested.setdefault(group, {})[key] = val
        (folder / "config.yaml").write_text(yaml.safe_dump(nested))
        (folder / "eval.json").write_text(json.dumps({"cluster": {"confusion": conf.tolist()}}))
    (tmp_path / "fig4.provenance.json").write_text(json.dumps({"histogram_bins": 128}))
    loaded = claims.load_tables(tmp_path)
    assert set(loaded) == set(claims.TABLES) | {"configs", "class_accuracy", "fig4_meta"}
    acc = loaded["class_accuracy"]
    one = acc[acc["run"] == "camvid-EQUSS-seed0"].sort_values("class_index")["accuracy"].to_numpy()
    assert one == pytest.approx(100 * np.diag(conf) / conf.sum(0))  # recall of each true class
    assert int(loaded["fig4_meta"]["histogram_bins"].iloc[0]) == 128
    c = claims.Configs(loaded["configs"])
    assert c.shares_batches({"a": {0: "camvid-EQUSS-seed0", 1: "camvid-EQUSS-seed1"},
                             "b": {0: "camvid-STEGO-seed0", 1: "camvid-STEGO-seed1"}})[0]
    assert not c.shares_batches({"a": {0: "camvid-EQUSS-seed0", 1: "camvid-EQUSS-seed1"},
                                 "b": {0: "camvid-DINO-seed0", 1: "camvid-DINO-seed1"}})[0]


def test_committed_proxy_arms_share_batches():
    """The finding the module docstring states, on the committed proxy records: STEGO and EQUSS of a
    seed (and Table 3's arms) share batches; the raw-backbone baseline does not."""
    from pathlib import Path

    res = Path(__file__).resolve().parent.parent / "results" / "proxy"
    if not (res / "table1.csv").exists():
        pytest.skip("no committed proxy results")
    t = claims.load_tables(res)
    c = claims.Configs(t.get("configs"))
    t1 = t["table1"][t["table1"]["source"] == "measured"]
    by = {m: claims._runs_by_seed(t1.drop_duplicates(["method", "seed"]), method=m)
          for m in ("EQUSS", "STEGO", "DINO (raw features)")}
    assert c.shares_batches({"EQUSS": by["EQUSS"], "STEGO": by["STEGO"]})[0]
    assert not c.shares_batches({"EQUSS": by["EQUSS"], "DINO": by["DINO (raw features)"]})[0]
    t3 = claims._measured(t["table3"])
    t3 = t3.assign(variant=t3["method"].str.split().str[0])
    assert c.shares_batches({v: claims._runs_by_seed(t3, variant=v) for v in ("M1", "M2", "M3", "Q2", "Q3")})[0]


def test_write_markdown_and_csv(tmp_path):
    import csv

    t = _synthetic_tables()
    vs = claims.paper_claims({k: t[k] for k in ("table1", "configs")})
    claims.write(vs, tmp_path)
    md = (tmp_path / "claims.md").read_text()
    assert "**holds**" in md and "EQUSS > STEGO" in md and "p → Holm" in md
    rows = list(csv.DictReader(open(tmp_path / "claims.csv")))
    assert list(rows[0]) == list(claims.Verdict.COLUMNS)
    for col in ("claim", "source", "metric", "estimate", "low", "high", "p", "p_holm", "test", "n", "power", "mde",
                "n_needed", "verdict", "note", "recipe"):
        assert col in rows[0]
    assert [r["verdict"] for r in rows] == [v.verdict for v in vs]
    assert float(rows[0]["p_holm"]) == pytest.approx(vs[0].p_holm)
    html = claims.styled(vs).to_html()
    assert claims.VERDICT_COLOURS[claims.HOLDS] in html


def test_tables_before_the_study_keep_their_claims_and_layout(tmp_path):
    """Tables without the study's columns (no probe / resolution / recipe, no tuning.json): one family, no
    intersection rows, no secondary rows, and claims.csv / claims.md in their old layout (the committed
    results/proxy claims are recomputed field by field by tests/test_traceability.py)."""
    t = _synthetic_tables()
    assert not claims.is_study(t)
    vs = claims.paper_claims(t, power=False)
    assert {v.family for v in vs} == {claims.PRIMARY} and not any(v.parts or v.part_of for v in vs)
    assert [v.claim for v in vs if v.source.startswith("Table 1")][:4] == ["EQUSS > STEGO (camvid)"] * 4
    assert claims.columns(vs) == list(claims.Verdict.COLUMNS)
    claims.write(vs, tmp_path)
    header = (tmp_path / "claims.md").read_text().splitlines()[0]
    assert header == ("| claim (paper) | where | metric | verdict | estimate [interval] | p → Holm | n "
                      "| power · MDE · n needed | test |")
    # the arms are still computed (the notebook's styled table shows them): the recipes differ, tuning unrecorded
    eq = _by_claim(vs)["EQUSS > STEGO (camvid)", "unsup. mIoU"]
    assert eq.arms.startswith("recipes differ: EQUSS: its recipe, STEGO: its recipe (lr 0.0003 vs 0.0005)")
    assert "shifts' tuning not recorded" in eq.arms
    # a tuning.json alone makes them the study's: the study's columns are written
    assert claims.columns(claims.paper_claims({**t, "tuning": {"arms": {}}}, power=False))[-4:] == list(
        claims.Verdict.STUDY_COLUMNS)
