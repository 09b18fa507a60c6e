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
    assert "| EQUSS | camvid | no | 4 | " in md and f"{mean:.1f} ± {std:.1f}" in md
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
