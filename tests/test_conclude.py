"""The notebooks' conclusions (equss.paper.conclude): computed from the claims of the notebook's own
table or figure, with their numbers and adjusted verdicts, checked against scipy and a hand Holm."""
import math

import numpy as np
import pytest
from scipy import stats

from equss.paper import claims, conclude, tables


def _holm(p):
    """Holm's step-down adjustment, by hand."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    adj, running = np.empty_like(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adj[i] = running
    return adj


def _fmt(x, digits=1):
    return f"{x:+.{digits}f}".replace("-", "\u2212")


A = {"eq_acc": [55.0, 57.5, 56.0], "st_acc": [49.0, 50.5, 49.5],        # EQUSS > STEGO, unsup. Acc: clear gain
     "eq_lin": [29.0, 30.5, 29.8], "st_lin": [32.5, 33.0, 32.9],        # linear mIoU: against the paper
     "raw": [18.0, 19.5, 17.0], "eq_miou": [21.0, 22.5, 20.0],          # EQUSS > raw (Welch)
     "q2": [28.0, 30.0, 29.0], "m2": [35.0, 36.5, 35.5],                # Table 3
     "m_gain": [1.0, -0.5, 2.0, 0.5]}                                  # Fig. 6: one-sample over K blocks


def _verdicts():
    V = [claims.paired(A["eq_acc"], A["st_acc"], "EQUSS > STEGO (camvid)", "Table 1 / Table 2", "unsup. Acc",
                       paper_effect=5.5),
         claims.paired(A["eq_lin"], A["st_lin"], "EQUSS > STEGO (camvid)", "Table 1 / Table 2", "linear mIoU",
                       paper_effect=2.9),
         claims.welch(A["eq_miou"], A["raw"], "EQUSS > raw backbone", "Table 1", "unsup. mIoU", paper_effect=16.2),
         claims.paired(A["q2"], A["m2"], "PQ helps at 384: Q2 > M2", "Table 3", "linear mIoU", paper_effect=5.1),
         claims.one_sample(A["m_gain"], "more codebooks help: M > 1 beats M = 1", "Fig. 6", "unsup. mIoU"),
         claims._missing("Fig. 2 trends", "Fig. 2", "fig2")]
    return claims.finalize(V, power=False)


def _expected():
    """Estimates, raw p (scipy) and Holm p (by hand) of the five tested claims, in _verdicts' order."""
    d = [np.subtract(A["eq_acc"], A["st_acc"]), np.subtract(A["eq_lin"], A["st_lin"])]
    p = [stats.ttest_rel(A["eq_acc"], A["st_acc"]).pvalue, stats.ttest_rel(A["eq_lin"], A["st_lin"]).pvalue,
         stats.ttest_ind(A["eq_miou"], A["raw"], equal_var=False).pvalue,
         stats.ttest_rel(A["q2"], A["m2"]).pvalue, stats.ttest_1samp(A["m_gain"], 0).pvalue]
    est = [d[0].mean(), d[1].mean(), np.mean(A["eq_miou"]) - np.mean(A["raw"]),
           np.mean(np.subtract(A["q2"], A["m2"])), np.mean(A["m_gain"])]
    return est, p, _holm(p)


def _verdict(est, p_holm):
    return "inconclusive" if p_holm >= 0.05 else ("holds" if est > 0 else "contradicted")


def test_sources_and_concerns():
    assert conclude.sources("Table 1 / Table 2") == ["Table 1", "Table 2"]
    assert conclude.sources("Tables 1, 2") == ["Table 1", "Table 2"]
    assert conclude.sources("Fig. 4a, c") == ["Fig. 4a", "Fig. 4c"]
    assert conclude.concerns("Fig. 4d", "Fig. 4") and not conclude.concerns("Fig. 4d", "Fig. 2")
    assert conclude.concerns("Table 1 / Table 2", "Table 2") and not conclude.concerns("Table 12", "Table 1")


def test_conclusion_names_the_verdicts_and_numbers_of_its_table():
    V = _verdicts()
    est, p, p_holm = _expected()
    for v, e, ph in zip(V, est, p_holm):
        assert v.estimate == pytest.approx(e) and v.p_holm == pytest.approx(ph)
    text = conclude.text(V, "Table 1", present=["table1", "table3", "fig6", "configs"])
    # its claims (Table 1 / Table 2 and Table 1), not those of Table 3 or Fig. 6
    assert "EQUSS > STEGO (camvid)" in text and "EQUSS > raw backbone" in text
    assert "PQ helps" not in text and "more codebooks" not in text
    for k, metric, paper in ((0, "unsup. Acc", 5.5), (1, "linear mIoU", 2.9), (2, "unsup. mIoU", 16.2)):
        v = V[k]
        item = (f"{metric} {_fmt(est[k])} [{_fmt(v.low)}, {_fmt(v.high)}] (paper {_fmt(paper)}), "
                f"p (Holm) {p_holm[k]:.2g} → **{_verdict(est[k], p_holm[k])}**")
        assert item in text, item
    verdicts = [_verdict(est[k], p_holm[k]) for k in (0, 1, 2)]
    assert sorted(verdicts) == ["contradicted", "holds", "inconclusive"]  # the data exercise all three
    words = {"holds": ("holds", "hold"), "contradicted": ("is contradicted", "are contradicted"),
             "inconclusive": ("is inconclusive", "are inconclusive")}
    phrase = ", ".join(f"{verdicts.count(k)} {words[k][verdicts.count(k) != 1]}" for k in words if k in verdicts)
    assert f"Of the 3 tests of the paper's 2 claims on Table 1 (one per metric), {phrase}." in text
    # the Holm family: the five tests present; the tables that are missing named
    assert "over the 5 tested claims of the tables in this results folder only" in text
    assert "table2, fig2, fig4 not produced here" in text
    # the headline sentence gives the first claim's numbers beside the paper's
    assert f"unsup. Acc {_fmt(est[0])} (paper {_fmt(5.5)})" in text.split("\n")[0]
    # no inconclusive claim here points against the paper (the raw-backbone gain is positive)
    assert "points against the paper" not in text


def test_conclusion_of_other_artefacts():
    V = _verdicts()
    est, _, p_holm = _expected()
    t3 = conclude.text(V, "Table 3", present=["table1", "table3", "fig6"])
    assert "PQ helps at 384: Q2 > M2" in t3 and f"linear mIoU {_fmt(est[3])}" in t3 and "EQUSS > STEGO" not in t3
    assert f"**{_verdict(est[3], p_holm[3])}**" in t3
    t2 = conclude.text(V, "Table 2", present=["table1"])
    assert "EQUSS > STEGO (camvid)" in t2 and "raw backbone" not in t2
    f2 = conclude.text(V, "Fig. 2", present=[])
    assert f2.endswith("No claim on Fig. 2 could be decided: fig2.csv not produced.")
    f6 = conclude.text(V, "Fig. 6", present=[*claims.TABLES])
    assert "Holm's correction over all 5 tested claims of this results folder (every table and figure present)" in f6
    assert f"unsup. mIoU {_fmt(est[4])}" in f6


def test_conclusion_with_one_run_per_arm_says_there_is_no_test():
    V = claims.finalize([claims.paired([50.0], [45.0], "EQUSS > STEGO (camvid)", "Table 1", "unsup. Acc",
                                       paper_effect=5.5)], power=False)
    text = conclude.text(V, "Table 1", present=["table1"])
    assert "unsup. Acc +5.0 (paper +5.5), no test → **inconclusive**" in text
    assert "None of the claims has a test at these runs" in text


def test_overall_counts_and_names_the_decided_claims():
    V = _verdicts()
    est, _, p_holm = _expected()
    text = conclude.overall_text(V, present=["table1", "table3", "fig6"])
    decided = [_verdict(e, p) for e, p in zip(est, p_holm)]
    assert f"Of the {len(decided)} claims decided" in text
    for k, v in enumerate(V[:5]):
        if decided[k] != "inconclusive":
            assert v.claim in text.split(decided[k].capitalize() + ":")[1]
    assert "Not decided: fig2.csv not produced." in text


def test_conclusion_reads_the_notebooks_results_folder(tmp_path):
    """End to end: a Table 1 CSV in a results folder -> the Markdown of its claims, the family limited to it."""
    rng = np.random.default_rng(3)
    rows = []
    for m, base in (("DINO (raw features)", 40.0), ("STEGO", 45.0), ("EQUSS", 50.0)):
        for s in (0, 1, 2):
            rows.append({"method": m, "dataset": "camvid", "seed": s, "crf": False, "run": f"{m[:4]}-{s}",
                         "eval": "eval.json", **{c: base + rng.normal() for c in tables.METRICS}, "source": "measured"})
    tables.save_table(rows, tmp_path, "table1")
    md = conclude.conclusion(tmp_path, "Table 1").data
    assert md.startswith("**What Table 1 shows**") and "EQUSS > STEGO (camvid)" in md
    assert "over the 12 tested claims of the tables in this results folder only (table1;" in md
    # the estimate of EQUSS > STEGO on unsup. Acc: no configs, so Welch = the difference of means
    eq = np.mean([r["unsup_acc"] for r in rows if r["method"] == "EQUSS"])
    st = np.mean([r["unsup_acc"] for r in rows if r["method"] == "STEGO"])
    assert f"unsup. Acc {_fmt(eq - st)} [" in md


def test_curves_and_qualitative_conclusions():
    chosen = {"STEGO": {"step": 200, "at_step": 26.08, "max": 26.48, "max_step": 250}}
    selected = [{"method": "STEGO", "seed": s, "spearman_val_test": r, "test_at_best_val": b, "test_at_last": last}
                for s, r, b, last in ((0, -0.4, 19.5, 20.4), (1, 0.22, 19.0, 19.1), (2, 0.38, 19.4, 19.3))]
    text = conclude.curves_text(chosen, selected)
    assert "step 200 chosen (seed-mean validation cluster mIoU 26.1; maximum 26.5 at step 250)" in text
    assert "Spearman rho −0.40, +0.22, +0.38 over 3 seeds" in text
    assert f"{np.mean([19.5, 19.0, 19.4]):.1f} vs {np.mean([20.4, 19.1, 19.3]):.1f} at the last" in text
    scores = [{"STEGO": {"mIoU": a}, "EQUSS": {"mIoU": b}} for a, b in ((10.0, 12.0), (20.0, 15.0), (5.0, 6.0))]
    q = conclude.qualitative_text(scores, [0, 5, 9], seed=0)
    assert "higher per-image mIoU on 2 of 3 images (mean 11.0 vs 11.7)" in q and "no claim is tested" in q


def test_image_scores_against_a_loop():
    from equss.paper import figures

    rng = np.random.default_rng(0)
    label = rng.integers(-1, 4, size=(20, 30))
    pred = rng.integers(-1, 5, size=(20, 30))
    got = figures.image_scores(pred, label)
    ok, right, inter, union = 0, 0, {}, {}
    for p, t in zip(pred.ravel(), label.ravel()):
        if t < 0:
            continue
        ok += 1
        right += p == t
        for c in {int(p), int(t)} - {-1}:
            union[c] = union.get(c, 0) + 1
            inter[c] = inter.get(c, 0) + (p == t == c)
    assert got["Acc"] == pytest.approx(100 * right / ok)
    assert got["mIoU"] == pytest.approx(100 * np.mean([inter[c] / union[c] for c in union]))
    assert math.isnan(figures.image_scores(pred, -np.ones_like(label))["Acc"])


def test_preview_draws_the_committed_results(tmp_path):
    """The figures redrawn from the committed proxy CSVs (equss.paper.preview): every artefact the CSVs
    allow, each a PNG that matplotlib reads back."""
    import matplotlib.image as mpimg

    from equss.paper import preview

    res = __import__("pathlib").Path(__file__).resolve().parent.parent / "results" / "proxy"
    if not (res / "table1.csv").is_file():
        pytest.skip("no committed proxy results")
    written = preview.draw(res, tmp_path)
    expected = [n for n in ("table1", "table2", "table3", "fig2", "fig4", "fig6", "learning_curves")
                if (res / f"{n}.csv").is_file()]
    assert [p.stem for p in written] == expected
    for p in written:
        assert mpimg.imread(p).shape[2] in (3, 4)


def test_conclusion_of_the_study_names_both_comparisons_the_arms_and_the_secondary_families():
    """The study's tables (test_claims_study: EQUSS beats STEGO and M1 on unsupervised mIoU; online linear
    probes contradict it, converged ones do not; at 224 STEGO leads): the claim with its two comparisons
    under it, the recipe mismatch of the comparison with STEGO, the secondary families beside their primary
    verdicts, and the count of contradicted linear verdicts that survive converged probes."""
    from test_claims_study import VS_M1, VS_STEGO, study_tables

    t = study_tables()
    V = claims.paper_claims(t, power=False)
    text = conclude.text(V, "Table 1", list(t))
    lines = text.split("\n")
    by = {(v.family, v.claim, v.metric): v for v in V}
    whole = by[claims.PRIMARY, "EQUSS > STEGO (camvid)", "unsup. mIoU"]
    head = next(i for i, line in enumerate(lines) if line.startswith("- **EQUSS > STEGO (camvid)**"))
    assert f"unsup. mIoU {_fmt(whole.estimate)} [" in lines[head] and "→ **holds**" in lines[head]
    assert lines[head + 1].startswith("  - *vs STEGO, its own recipe*: ")
    assert lines[head + 2].startswith("  - *vs M1, STEGO's head on EQUSS's recipe*: ")
    assert "— arms: recipes differ: EQUSS: EQUSS's recipe, STEGO: STEGO's recipe" in lines[head + 1]
    assert "— arms" not in lines[head + 2]  # matched: nothing to name
    # the counts: the claim's rows, not its comparisons (4 metrics x 3 claims of Table 1)
    assert "Of the 12 tests of the paper's 3 claims on Table 1 (one per metric)" in text
    # the primary family's size: its tested rows without the intersection rows, the secondary ones apart
    primary = [v for v in V if v.family == claims.PRIMARY and not v.parts and v.p == v.p]
    assert f"Holm's correction over the {len(primary)} tested claims" in text
    assert "the post-hoc probes and resolution check are corrected in families of their own" in text
    post = by[claims.POSTHOC_FAMILY, VS_STEGO, "linear mIoU"]
    assert (f"linear mIoU {_fmt(post.estimate)} [{_fmt(post.low)}, {_fmt(post.high)}] (paper {_fmt(2.9)}), "
            f"p (Holm) {post.p_holm:.2g} → **holds** (primary {_fmt(post.counterpart.estimate)} → contradicted)") in text
    assert "Of the 2 linear verdicts contradicted with the online probes, with converged probes 2 hold." in text
    r = by[claims.RESOLUTION_FAMILY, VS_M1, "unsup. mIoU"]
    assert "**Evaluated at resolution 224**" in text and f"unsup. mIoU {_fmt(r.estimate)} [" in text
    # the claims notebook: the five contradicted linear verdicts of the design (2 of Table 1, 3 of Table 3)
    overall = conclude.overall_text(V, list(t))
    assert "Of the 5 linear verdicts contradicted with the online probes, with converged probes 5 hold." in overall
    assert "EQUSS > STEGO (dubai_aerial) (Table 2, unsup. Acc" in overall
    assert "; vs STEGO holds; vs M1 contradicted)" in overall.split("Contradicted:")[1]
