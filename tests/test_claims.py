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
