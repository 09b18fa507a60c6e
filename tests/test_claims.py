"""Computed verdicts (equss.paper.claims) against scipy's own tests and brute force."""
import math

import numpy as np
import pytest
from scipy import stats

from equss.paper import claims


def test_two_cells_is_scipy_welch_interval():
    a, b = [25.1, 26.0, 24.7], [23.0, 24.2, 22.1, 23.5]
    v = claims.greater({"A": a, "B": b}, "A", "B", "A > B", "Table 1")
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert v.estimate == pytest.approx(np.mean(a) - np.mean(b))
    assert (v.low, v.high) == pytest.approx((ci.low, ci.high))
    assert v.verdict == claims.HOLDS and v.n == {"A": 3, "B": 4}
    assert claims.greater({"A": a, "B": b}, "B", "A", "B > A", "x").verdict == claims.CONTRADICTED
    noisy = claims.greater({"A": [20, 30, 25], "B": [24, 26, 25]}, "A", "B", "A > B", "x")
    assert noisy.verdict == claims.INCONCLUSIVE and noisy.low < 0 < noisy.high


def test_four_cell_contrast_matches_monte_carlo_free_formula():
    cells = {"Q3": [26.0, 25.5, 26.4], "M3": [22.0, 21.5, 22.6], "Q2": [25.0, 25.2, 24.9], "M2": [24.1, 24.3, 24.0]}
    w = {"Q3": 1, "M3": -1, "Q2": -1, "M2": 1}
    v = claims.contrast(cells, w, "gain larger at 1024", "Table 3")
    est = sum(wi * np.mean(cells[k]) for k, wi in w.items())
    terms = [np.var(cells[k], ddof=1) / 3 for k in w]
    se = math.sqrt(sum(terms))
    df = sum(terms) ** 2 / sum(t * t / 2 for t in terms)
    half = stats.t.ppf(0.975, df) * se
    assert v.estimate == pytest.approx(est)
    assert (v.low, v.high) == pytest.approx((est - half, est + half))
    assert v.verdict == claims.HOLDS


def test_one_seed_is_inconclusive_but_reports_the_estimate():
    v = claims.greater({"A": [30.0], "B": [20.0, 21.0]}, "A", "B", "A > B", "x")
    assert v.verdict == claims.INCONCLUSIVE and v.estimate == pytest.approx(9.5) and math.isnan(v.low)
    missing = claims.greater({"A": [1.0, 2.0]}, "A", "B", "A > B", "x")
    assert missing.verdict == claims.INCONCLUSIVE and "B" in missing.note


def test_correlation_and_slope_against_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = -0.8 * x + rng.normal(scale=0.5, size=30)
    v = claims.correlation(x, y, "negative", "Fig. 4c", sign=-1)
    r, _ = stats.pearsonr(x, y)
    ci = stats.pearsonr(x, y).confidence_interval(0.95)
    assert v.estimate == pytest.approx(r) and (v.low, v.high) == pytest.approx((ci.low, ci.high), abs=1e-6)
    assert v.verdict == claims.HOLDS
    assert claims.correlation(x, y, "positive", "x", sign=1).verdict == claims.CONTRADICTED
    dims = np.log2([64, 128, 256, 512, 1024] * 3)
    acc = 50 + 2 * dims + rng.normal(scale=0.5, size=15)
    s = claims.slope(dims, acc, "rises", "Fig. 2", sign=1)
    res = stats.linregress(dims, acc)
    assert s.estimate == pytest.approx(res.slope) and s.verdict == claims.HOLDS
    assert claims.slope(dims, acc, "falls", "Fig. 2", sign=-1).verdict == claims.CONTRADICTED


def test_write_markdown_and_csv(tmp_path):
    vs = [claims.greater({"A": [2, 3, 4], "B": [0, 1, 0.5]}, "A", "B", "EQUSS > STEGO", "Table 1"),
          claims.greater({"A": [2], "B": [1]}, "A", "B", "one seed", "Fig. 6")]
    claims.write(vs, tmp_path)
    md = (tmp_path / "claims.md").read_text()
    assert "**holds**" in md and "**inconclusive**" in md and "EQUSS > STEGO" in md
    import csv
    rows = list(csv.DictReader(open(tmp_path / "claims.csv")))
    assert [r["verdict"] for r in rows] == ["holds", "inconclusive"]


# ---------------------------------------------------------------------------- the paper's claims on built tables
def _synthetic_tables():
    """Tables in the notebooks' CSV layout, built so that each claim's outcome is known."""
    import pandas as pd

    rng = np.random.default_rng(0)
    noise = lambda: float(rng.normal(scale=0.1))  # noqa: E731
    seeds = [0, 1, 2]

    def rows(method, dataset, base, **extra):
        return [{"method": method, "dataset": dataset, "seed": s, "crf": crf, "run": f"{method}-{s}",
                 "unsup_acc": base + 30 + noise() + (5 if crf else 0), "unsup_miou": base + noise(),
                 "linear_acc": base + 50 + noise(), "linear_miou": base + 10 + noise(), "source": "measured", **extra}
                for s in seeds for crf in (False, True)]

    quoted = {"method": "EQUSS [paper]", "source": "quoted (paper)", "unsup_miou": 99.0}
    t1 = rows("DINO (raw features)", "camvid", 10) + rows("STEGO", "camvid", 20) + rows("EQUSS", "camvid", 22) + [quoted]
    t2 = [dict(r, table="2a") for r in rows("STEGO", "camvid", 20) + rows("EQUSS", "camvid", 22)]
    t2 += [dict(r, table="2b") for r in rows("STEGO", "dubai_aerial", 17) + rows("EQUSS", "dubai_aerial", 15)]
    # Table 3: M1 > M2 > M3, PQ gains +1 at 384 and +4 at 1024, Q3 best
    t3 = sum((rows(name, "camvid", b) for name, b in (("M1 (70, no PQ)", 22), ("M2 (384, no PQ)", 21),
                                                       ("M3 (1024, no PQ)", 19), ("Q2 (384, PQ)", 22),
                                                       ("Q3 (1024, PQ)", 23))), [])
    lw = np.log2([64, 128, 256, 512, 1024])
    f2 = [{"method": m, "dim": int(2 ** w), "seed": s, "crf": False, "source": "measured",
           "unsup_acc": 50 + slope * w + noise()}
          for m, slope in (("supervised head", 2.0), ("STEGO head", -1.5), ("EQUSS (PQ)", 0.0)) for w in lw for s in seeds]
    f4 = [{"method": m, "seed": s, "class_index": c, "entropy_bits": bits + 10 * c + noise(),
           "iou": 60 - 5 * c + noise(), "source": "measured"}
          for m, bits in (("STEGO", 480), ("EQUSS", 120)) for c in range(8) for s in seeds]
    fd = [{"seed": s, "class_a_index": a, "class_b_index": b, "distance": (10 if a == b else 25) + noise(),
           "source": "measured"} for s in seeds for a in range(6) for b in range(6)]
    f6 = [{"M": m, "K": k, "seed": 0, "crf": False, "source": "measured",
           "unsup_miou": 10 + (3 if m > 1 else 0) + (4 if 8 <= m <= 32 and 32 <= k <= 64 else 0) + noise()}
          for m in (1, 2, 4, 8, 16, 32, 64) for k in (8, 16, 32, 64, 128)]
    return {k: pd.DataFrame(v) for k, v in (("table1", t1), ("table2", t2), ("table3", t3), ("fig2", f2), ("fig4", f4),
                                             ("fig4_distance", fd), ("fig6", f6))}


def test_paper_claims_on_synthetic_tables():
    t = _synthetic_tables()
    v = {x.claim: x for x in claims.paper_claims(t)}
    holds = [c for c, x in v.items() if x.verdict == claims.HOLDS]
    assert v["EQUSS > STEGO, unsup. mIoU (camvid)"].verdict == claims.HOLDS
    assert v["EQUSS > STEGO, unsup. mIoU (camvid)"].source == "Table 1 / Table 2"  # 2a's proxy runs counted once
    assert v["EQUSS > STEGO, unsup. mIoU (dubai_aerial)"].verdict == claims.CONTRADICTED
    # the Welch interval of the no-CRF seeds, recomputed with scipy
    d = t["table1"][(t["table1"]["crf"] == False)]  # noqa: E712
    a, b = (d[d["method"] == m]["unsup_miou"].to_numpy() for m in ("EQUSS", "STEGO"))
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    x = v["EQUSS > STEGO, unsup. mIoU (camvid)"]
    assert x.estimate == pytest.approx(a.mean() - b.mean()) and (x.low, x.high) == pytest.approx((ci.low, ci.high))
    assert x.n == {"EQUSS": 3, "STEGO": 3}
    for name in ("EQUSS > raw backbone, linear mIoU", "STEGO > raw backbone, unsup. Acc",
                 "M1 > M2 without PQ (unsup. mIoU)", "M2 > M3 without PQ (unsup. mIoU)",
                 "PQ helps at 384: Q2 > M2 (unsup. mIoU)", "PQ helps at 1024: Q3 > M3 (unsup. mIoU)",
                 "PQ gain larger at 1024: (Q3 - M3) > (Q2 - M2) (unsup. mIoU)", "Q3 best: Q3 > M2 (unsup. mIoU)",
                 "EQUSS needs fewer bits per class than STEGO", "lower-entropy classes have higher IoU (r < 0)",
                 "codeword distance within a class < across classes (Eq. 9)",
                 "supervised head: unsup. Acc rises with width (unsup_acc)",
                 "STEGO head: unsup. Acc falls with width (unsup_acc)",
                 "more codebooks help: M > 1 beats M = 1 (unsup. mIoU)",
                 "best region M 8-32, K 32-64 beats the rest (unsup. mIoU)"):
        assert name in holds, (name, v[name].verdict, v[name].estimate, v[name].low, v[name].high)
    assert v["Q3 best: Q3 > M1 (unsup. mIoU)"].verdict == claims.HOLDS
    flat = v["EQUSS: unsup. Acc does not fall with width (unsup_acc)"]
    assert flat.verdict == claims.INCONCLUSIVE and flat.low < 0 < flat.high and "does not fall" in flat.note
    assert "not on one scale" in v["EQUSS needs fewer bits per class than STEGO"].note


def test_paper_claims_with_missing_tables_and_one_seed(tmp_path):
    t = _synthetic_tables()
    one = {"table1": t["table1"][t["table1"]["seed"] == 0]}
    v = claims.paper_claims(one)
    eq = next(x for x in v if x.claim == "EQUSS > STEGO, unsup. mIoU (camvid)")
    assert eq.verdict == claims.INCONCLUSIVE and eq.n == {"EQUSS": 1, "STEGO": 1} and math.isfinite(eq.estimate)
    missing = [x for x in v if "not produced" in x.note]
    assert {x.source for x in missing} >= {"Table 3", "Fig. 2", "Fig. 6", "Fig. 4d"}
    assert all(x.verdict == claims.INCONCLUSIVE for x in missing)
    for name, df in t.items():
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    loaded = claims.load_tables(tmp_path)
    assert set(loaded) == set(claims.TABLES)
    assert [x.verdict for x in claims.paper_claims(loaded)] == [x.verdict for x in claims.paper_claims(t)]
    claims.write(claims.paper_claims(loaded), tmp_path)
    assert "**holds**" in (tmp_path / "claims.md").read_text()
