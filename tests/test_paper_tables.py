"""Per-seed table rows and their mean ± std summary (equss.paper.tables), the learning-curve
step rule and checkpoint selection (equss.paper.curves), and the shared notebook setup."""
import csv

import numpy as np
import pytest
from scipy import stats

from equss.paper import curves, runs, tables


def _result(seed, base, run="r"):
    return {"cluster": {"Accuracy": base + seed, "mIoU": base / 2 + 0.3 * seed},
            "linear": {"Accuracy": base + 20 - seed, "mIoU": base / 3 + seed ** 2},
            "cluster_crf": {"Accuracy": base + 1, "mIoU": base / 2 + 1}, "linear_crf": {"Accuracy": 1.0, "mIoU": 2.0},
            "run": f"{run}-seed{seed}", "eval_file": "eval_crf.json"}


def test_row_reads_the_protocol_it_names():
    r = _result(2, 50.0)
    plain, crf = tables.row("EQUSS", r, "camvid", 2), tables.row("EQUSS", r, "camvid", 2, crf=True)
    assert plain["unsup_acc"] == 52.0 and crf["unsup_acc"] == 51.0 and crf["linear_miou"] == 2.0
    assert list(plain)[:6] == ["method", "dataset", "seed", "crf", "run", "eval"] and plain["run"] == "r-seed2"
    assert tables.row("DINO", {**r, "eval_file": None, "run": "baseline-x"}, seed=0)["eval"] == "baseline.json"


def test_summary_is_numpy_mean_and_sample_std(tmp_path):
    seeds = [0, 1, 2, 5]
    rows = [tables.row(m, _result(s, b), "camvid", s) for m, b in (("STEGO", 40.0), ("EQUSS", 50.0)) for s in seeds]
    rows += [{"method": "EQUSS [paper]", "source": "quoted (paper)", "unsup_acc": 53.8, "unsup_miou": 25.8,
              "linear_acc": 75.2, "linear_miou": 41.2}]
    summ = tables.summary(rows)
    assert [(s["method"], s["n"]) for s in summ] == [("STEGO", 4), ("EQUSS", 4)]
    for s, base in zip(summ, (40.0, 50.0)):
        for col in tables.METRICS:
            vals = np.array([tables.row("x", _result(k, base), "", k)[col] for k in seeds])
            assert s[col] == pytest.approx((vals.mean(), vals.std(ddof=1)))
    tables.save_table(rows, tmp_path, "t", caption="cap")
    md = (tmp_path / "t.md").read_text()
    mean, std = summ[1]["unsup_miou"]
    # probe, resolution (none in these results' provenance) and recipe ("—" without a config) before n
    assert "| EQUSS | camvid | no | online |  | — | 4 | " in md and f"{mean:.1f} ± {std:.1f}" in md
    assert "| EQUSS [paper] |" in md and "quoted (paper)" in md and "(mean ± std, 4 seeds)" in md
    with open(tmp_path / "t.csv") as fh:
        got = list(csv.DictReader(fh))
    assert len(got) == 9 and float(got[0]["unsup_acc"]) == rows[0]["unsup_acc"]  # every seed, full precision
    one = tables.summary(rows[:1])[0]
    assert one["n"] == 1 and np.isnan(one["unsup_acc"][1]) and tables.fmt_mean_std(one["unsup_acc"]) == "40.0"


def test_setup_applies_seed_and_common_overrides(tmp_path):
    out, cfg = runs.setup("smoke", str(tmp_path / "res"), "/data", "cpu", ["train.steps=2", "model.head_dim=128"])
    c = cfg("cocostuff27-equss", 3, **{"model.head_dim": 64, "train.lr": 0.001})
    assert (out / "runs").is_dir() and c.name == "camvid-equss" and c.train.seed == 3
    assert c.train.steps == 2 and c.model.head_dim == 128 and c.train.lr == 0.001  # the notebook's overrides win
    assert c.data.data_root == "/data" and c.train.device == "cpu"
    assert cfg("cocostuff27-equss").key() != c.key() and cfg("cocostuff27-equss").train.seed == 0
    assert runs.seeds_for("smoke") == [0] and runs.seeds_for("proxy") == [0, 1, 2]
    assert runs.seeds_for("proxy", proxy=[0]) == [0] and runs.seeds_for("paper", proxy=[0]) == [0, 1, 2]
    assert runs.seeds_for("proxy", [4, 5]) == [4, 5]


def _curve_rows():
    rows = []
    val = {0: [10, 14, 17, 17.8, 18.0, 17.9], 1: [11, 15, 16.8, 17.6, 17.7, 18.2]}
    test = {0: [9, 13, 16, 16.5, 17.5, 17.0], 1: [10, 14, 16.0, 16.2, 16.9, 17.3]}
    for s in (0, 1):
        for i, step in enumerate(range(50, 350, 50)):
            rows.append({"method": "EQUSS", "seed": s, "step": step, "val_unsup_miou": val[s][i],
                         "unsup_miou": test[s][i]})
    return rows, val, test


def test_step_rule_uses_the_seed_mean_validation_curve():
    rows, val, _ = _curve_rows()
    mean = (np.array(val[0]) + np.array(val[1])) / 2  # 10.5 14.5 16.9 17.7 17.85 18.05
    c = curves.choose_steps(rows, tolerance=0.5)["EQUSS"]
    first = int(np.flatnonzero(mean >= mean.max() - 0.5)[0])
    assert c["step"] == 50 * (first + 1) == 200 and c["max_step"] == 300 and c["max"] == pytest.approx(mean.max())
    assert curves.choose_steps(rows, tolerance=0.25)["EQUSS"]["step"] == 250
    assert curves.choose_steps(rows, tolerance=0.1)["EQUSS"]["step"] == 300


def test_checkpoint_selection_against_scipy():
    rows, val, test = _curve_rows()
    sel = curves.selection(rows, last_k=3)
    assert [s["seed"] for s in sel] == [0, 1]
    for s in sel:
        v, t = np.array(val[s["seed"]]), np.array(test[s["seed"]])
        assert s["spearman_val_test"] == pytest.approx(stats.spearmanr(v, t).statistic)
        assert s["best_val_step"] == 50 * (int(v.argmax()) + 1) and s["test_at_best_val"] == t[v.argmax()]
        assert s["test_at_last"] == t[-1] and s["test_mean_last_3"] == pytest.approx(t[-3:].mean())
        assert s["test_best_possible"] == t.max()


# ------------------------------------------------------------------ measured beside the paper (issue 22)
def _table(quoted_suffix=" [Paper-27]"):
    """A small Table-1-like table: STEGO / EQUSS over seeds 0-2 (EQUSS also with CRF, seeds 0-1), a raw
    baseline over seeds 1-2 (one seed in common with nothing else missing), and quoted rows."""
    vals = {("STEGO", False): {0: (40.0, 20.0, 70.0, 30.0), 1: (42.0, 21.0, 71.0, 31.5), 2: (41.0, 19.0, 69.0, 29.0)},
            ("EQUSS", False): {0: (45.0, 22.5, 69.0, 33.0), 1: (50.0, 20.0, 72.5, 30.0), 2: (46.5, 23.0, 70.0, 31.0)},
            ("EQUSS", True): {0: (47.0, 24.0, 70.0, 33.3), 1: (52.0, 21.0, 72.0, 31.1)},
            ("DINO (raw features)", False): {1: (30.0, 10.0, 60.0, 25.0), 2: (32.0, 12.0, 61.0, 26.0)}}
    rows = [{"method": m, "dataset": "camvid", "seed": s, "crf": crf, "run": f"{m}-{s}", "eval": "eval.json",
             **dict(zip(tables.METRICS, v)), "source": "measured"}
            for (m, crf), by_seed in vals.items() for s, v in by_seed.items()]
    quoted = {"STEGO": (48.3, 24.5, 74.4, 38.3), "EQUSS": (53.8, 25.8, None, 41.2)}
    rows += [{"method": m + quoted_suffix, "source": "quoted (paper)", **dict(zip(tables.METRICS, v))}
             for m, v in quoted.items()]
    return rows, vals, quoted


def test_versus_paper_numbers_against_a_hand_computation():
    rows, vals, quoted = _table()
    got = tables.versus_paper_rows(rows, [("EQUSS", "STEGO"), ("EQUSS", "DINO (raw features)")])
    by = {(e["label"], e["crf"]): e for e in got}
    assert [e["kind"] for e in got] == ["arm"] * 4 + ["contrast"] * 2  # no STEGO + CRF arm: no CRF contrast
    for (m, crf), by_seed in vals.items():
        e = by[(m + (" + CRF" if crf else ""), crf)]
        assert e["n"] == len(by_seed) and isinstance(e["n"], int)
        for k, col in enumerate(tables.METRICS):
            x = np.array([v[k] for v in by_seed.values()])
            assert e["mean"][col] == pytest.approx(x.mean()) and e["std"][col] == pytest.approx(x.std(ddof=1))
            q = quoted.get(m, (None,) * 4)[k]
            assert (np.isnan(e["paper"][col]) and np.isnan(e["diff"][col])) if q is None else \
                (e["paper"][col] == q and e["diff"][col] == pytest.approx(x.mean() - q))
    # EQUSS - STEGO without CRF: per seed, then mean / std; the paper's contrast from the quoted rows
    c = by[("EQUSS − STEGO", False)]
    d = np.array([np.subtract(vals["EQUSS", False][s], vals["STEGO", False][s]) for s in (0, 1, 2)])
    assert c["n"] == 3 and c["seeds"] == [0, 1, 2]
    assert c["mean"]["unsup_acc"] == pytest.approx(d[:, 0].mean())
    assert c["std"]["unsup_acc"] == pytest.approx(d[:, 0].std(ddof=1))
    assert c["paper"]["unsup_acc"] == pytest.approx(53.8 - 48.3)
    assert c["diff"]["unsup_acc"] == pytest.approx(d[:, 0].mean() - (53.8 - 48.3))
    assert np.isnan(c["paper"]["linear_acc"])  # the paper quotes no EQUSS linear Acc here
    # EQUSS - DINO: only the seeds both ran (1, 2); no quoted DINO row: no paper value
    raw = by[("EQUSS − DINO", False)]
    assert raw["seeds"] == [1, 2] and raw["mean"]["unsup_miou"] == pytest.approx(((20.0 - 10.0) + (23.0 - 12.0)) / 2)
    assert np.isnan(raw["paper"]["unsup_miou"])
    # with CRF the contrast needs a STEGO + CRF arm: there is none, so no row
    assert ("EQUSS − STEGO (+ CRF)", True) not in by


def test_versus_paper_frame_has_no_nan_integer_n_one_decimal():
    import re

    rows, vals, _ = _table()
    frame = tables.versus_paper_frame(rows, [("EQUSS", "STEGO")])
    cells = [v for col in frame.columns for v in frame[col]]
    assert not any(v is None or (isinstance(v, float) and np.isnan(v)) for v in cells)
    assert frame[("", "n")].dtype.kind == "i" and list(frame[("", "n")]) == [3, 3, 2, 2, 3]
    number = re.compile(r"^(—|[+−]?\d+\.\d( ± \d+\.\d)?)$")
    for col in frame.columns[4:]:
        assert all(number.match(v) for v in frame[col]), col
    e = frame.iloc[1]  # EQUSS without CRF
    x = np.array([v[0] for v in vals["EQUSS", False].values()])
    assert e[("unsup. Acc", "measured")] == f"{x.mean():.1f} ± {x.std(ddof=1):.1f}"
    assert e[("unsup. Acc", "paper")] == "53.8"
    assert e[("unsup. Acc", "measured − paper")] == f"{x.mean() - 53.8:+.1f}".replace("-", "−")
    assert e[("linear Acc", "paper")] == "—" and e[("linear Acc", "measured − paper")] == "—"
    assert frame.iloc[2][("", "CRF")] == "yes" and frame.iloc[2][("", "method")] == "EQUSS + CRF"
    c = frame.iloc[4]
    assert c[("", "method")] == "EQUSS − STEGO"
    d = np.array([vals["EQUSS", False][s][3] - vals["STEGO", False][s][3] for s in (0, 1, 2)])
    assert c[("linear mIoU", "measured")] == f"{d.mean():+.1f} ± {d.std(ddof=1):.1f}".replace("-", "−")
    assert c[("linear mIoU", "paper")] == f"{41.2 - 38.3:+.1f}"


def test_versus_paper_matches_quoted_rows_within_a_group():
    rows = [{"method": m, "dataset": ds, "seed": s, "crf": False, "table": t, "unsup_acc": a + s, "unsup_miou": 10.0,
             "linear_acc": 50.0, "linear_miou": 20.0, "source": "measured"}
            for t, ds in (("2a", "camvid"), ("2b", "dubai")) for m, a in (("STEGO", 40.0), ("EQUSS", 45.0))
            for s in (0, 1)]
    rows += [{"method": f"{m} [{name}]", "table": t, "source": "quoted (paper)", "unsup_acc": q, "unsup_miou": None,
              "linear_acc": None, "linear_miou": None}
             for t, name, qs in (("2a", "City", {"STEGO": 73.2, "EQUSS": 79.9}),
                                 ("2b", "Pots", {"STEGO": 77.0, "EQUSS": 82.0}))
             for m, q in qs.items()]
    got = {(e["group"], e["label"]): e for e in tables.versus_paper_rows(rows, [("EQUSS", "STEGO")], group="table")}
    assert got["2a", "STEGO"]["paper"]["unsup_acc"] == 73.2 and got["2b", "STEGO"]["paper"]["unsup_acc"] == 77.0
    assert got["2b", "EQUSS − STEGO"]["paper"]["unsup_acc"] == pytest.approx(5.0)
    assert got["2a", "EQUSS − STEGO"]["mean"]["unsup_acc"] == pytest.approx(5.0)
    frame = tables.versus_paper_frame(rows, [("EQUSS", "STEGO")], group="table")
    assert list(frame[("", "table")]) == ["2a", "2a", "2b", "2b", "2a", "2b"]
    assert "City" in tables.versus_paper(rows, [("EQUSS", "STEGO")], group="table").caption


def test_show_has_no_nan_and_integer_n():
    rows, _, _ = _table()
    df = tables.show(rows)
    assert not df.isna().any().any() and not any(v is None for v in df.to_numpy().ravel())
    assert [v for v in df["n"] if v != ""] == [3, 3, 2, 2] and all(isinstance(v, int) for v in df["n"] if v != "")
    assert df.iloc[0]["source"] == "measured (mean ± std, 3 seeds)" and df.iloc[-1]["dataset"] == ""


def test_dot_chart_frames_use_the_t_interval():
    rows, vals, quoted = _table()
    points, summary = tables.dots(rows, [("EQUSS", "STEGO")])
    s = summary[(summary["label"] == "STEGO") & (summary["metric"] == "unsup. mIoU")].iloc[0]
    x = np.array([v[1] for v in vals["STEGO", False].values()])
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert (s["low"], s["high"]) == (pytest.approx(low), pytest.approx(high)) and s["paper"] == 24.5 and s["n"] == 3
    assert len(points[(points["label"] == "STEGO") & (points["metric"] == "unsup. mIoU")]) == 3
    assert set(points["panel"]) == {"configurations", "contrasts"}
    assert np.isnan(tables.t_interval([1.0])[0])
