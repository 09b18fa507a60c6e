"""Per-image confusion counts (issue 25, item 1) and the test-set bootstrap (item 2, in part).

(a) An evaluation (cluster and linear probe, with and without the CRF) and the raw-backbone baseline
    write ``<name>.per_image.npz`` beside their JSON; summing its matrices and matching the sum
    reproduces the JSON's confusion, assignment, mIoU, Accuracy and per-class IoU exactly; each
    image's counts equal sklearn's confusion matrix of that image's predictions.
(b) Every measured number of a smoke-scale results folder's tables (notebooks run by papermill on
    real CamVid) that comes from an evaluation is recomputed from the per-image files.
(c) The bootstrap of :mod:`equss.paper.claims` against a brute-force numpy loop, a case of known
    variance, and sequence-level resampling on a synthetic example whose answer is known.
"""
from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from test_reliability import write_camvid as reliability_camvid
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import confusion_matrix

from equss import cli
from equss.config import load_config
from equss.eval.per_image import PerImageConfusions, per_image_path
from equss.paper import claims, trace

SEQUENCES = ("0001TP", "Seq05VD")
GROUPS = ("cluster", "linear", "cluster_crf", "linear_crf")


def write_camvid(root: Path, n: dict | None = None, seed: int = 0) -> Path:
    """The tiny CamVid of tests/test_reliability.py with CamVid's sequence prefixes in the file names
    (``0001TP_000000.png``, ``Seq05VD_000001.png``)."""
    return reliability_camvid(root, seed=seed, counts=n or {"train": 6, "val": 4, "test": 6},
                       name=lambda split, i: f"{SEQUENCES[i % 2]}_{i:06d}.png")


TINY = ["--set", "data.resolution=28", "--set", "data.eval_resolution=28", "--set", "data.probe_label_size=0",
        "--set", "train.batch_size=2"]


def _nan(x):
    return math.nan if x is None else float(x)


def _same_numbers(a, b) -> bool:
    a, b = np.array([_nan(x) for x in a]), np.array([_nan(x) for x in b])
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _check_against_json(doc: dict, pi: PerImageConfusions, groups) -> None:
    """Every number of the evaluation JSON from the per-image counts: exactly, and the matching also
    by an independent Hungarian (scipy) on the summed counts."""
    assert set(groups) <= set(pi.groups), (groups, list(pi.groups))
    for g in groups:
        got, want = pi.summary(g), doc[g]
        assert got["confusion"] == want["confusion"], g
        assert got["assignment"] == want["assignment"], g
        assert got["mIoU"] == _nan(want["mIoU"]) or (math.isnan(got["mIoU"]) and want["mIoU"] is None), g
        assert got["Accuracy"] == _nan(want["Accuracy"]), g
        assert _same_numbers(got["per_class_iou"], want["per_class_iou"]), g
        total = pi.total(g)
        counts = pi.groups[g]
        assert counts.dtype == np.min_scalar_type(int(counts.max())), (g, counts.dtype)  # as small as the counts allow
        n = total.shape[1]
        if g.startswith("linear"):  # identity mapping: the summed counts are the confusion itself
            assert total.tolist() == want["confusion"]
        elif total.shape[0] == n:  # no extra clusters: row of class c = the cluster scipy matches to c
            rows, cols = linear_sum_assignment(total, maximize=True)
            assert total[rows[np.argsort(cols)]].tolist() == want["confusion"]
        matched = np.asarray(want["confusion"], dtype=float)
        if total.shape[0] == n:  # without an extra row the JSON's numbers follow from its confusion
            tp = np.diag(matched)
            with np.errstate(invalid="ignore", divide="ignore"):
                iou = tp / (matched.sum(0) + matched.sum(1) - tp)
            assert want["Accuracy"] == pytest.approx(100 * tp.sum() / matched.sum(), abs=1e-9)
            assert _nan(want["mIoU"]) == pytest.approx(100 * np.nanmean(iou), abs=1e-9, nan_ok=True)


@pytest.fixture(scope="module")
def tiny_camvid(tmp_path_factory):
    return write_camvid(tmp_path_factory.mktemp("camvid"))


@pytest.mark.slow
@pytest.mark.parametrize("extra", [0, 2])
def test_checkpoint_evaluation_writes_per_image_counts(tiny_camvid, tmp_path, extra):
    from equss.data.features import get_or_build_features
    from equss.pipeline.checkpoint import load_checkpoint, model_from_checkpoint
    from equss.pipeline.evaluate import evaluate_cached, evaluate_checkpoint
    from equss.pipeline.inputs import HFlip, make_backbone, make_dataset

    run = tmp_path / "run"
    assert cli.main(["train", "--preset", "camvid-stego", "--scale", "smoke", "--data-root", str(tiny_camvid),
                     "--device", "cpu", *TINY, "--set", f"model.extra_clusters={extra}", "--out", str(run)]) == 0
    out = tmp_path / "eval"
    evaluate_checkpoint(run / "best.pt", out=out, crf=True, device="cpu", workers=1, data_root=str(tiny_camvid),
                        progress=False)
    doc = json.loads((out / "eval.json").read_text())
    assert doc["per_image_file"] == "eval.per_image.npz" and per_image_path(out / "eval.json").is_file()
    pi = PerImageConfusions.load(out / "eval.per_image.npz")
    names = [Path(line.split()[0]).stem for line in (tiny_camvid / "CamVid" / "test.txt").read_text().splitlines()]
    assert pi.image_ids == [f"test/{s}" for s in names]
    assert pi.sequences == [s.split("_")[0] for s in names] and set(pi.sequences) == set(SEQUENCES)
    assert pi.groups["cluster"].shape == (len(names), 11 + extra, 11)
    assert pi.groups["linear"].shape == (len(names), 11, 11)
    _check_against_json(doc, pi, GROUPS)

    # each image's counts against sklearn on that image's own predictions (the CRF-free groups)
    state = load_checkpoint(run / "best.pt")
    model, cfg = model_from_checkpoint(state)
    ds = make_dataset(cfg, cfg.data.test_split)
    backbone = make_backbone(cfg)
    flip = get_or_build_features(backbone, HFlip(ds), progress=False) if cfg.eval.flip else None
    cache = get_or_build_features(backbone, ds, progress=False)
    res = evaluate_cached(model, cache, ds.n_classes, cfg, flip_cache=flip, progress=False, collect=True)
    assert res["cluster"]["confusion"] == doc["cluster"]["confusion"]
    for i in range(len(ds)):
        label = cache.batch([i])[1].numpy().reshape(-1)
        for g, rows in (("cluster", 11 + extra), ("linear", 11)):
            pred = res["predictions"][g][i].reshape(-1).astype(np.int64)
            keep = (label >= 0) & (pred < 11)  # STEGO's mask: predictions into an extra cluster are dropped
            want = confusion_matrix(pred[keep], label[keep], labels=range(rows))[:, :11]
            assert pi.groups[g][i].tolist() == want.tolist(), (g, i)


def test_baseline_writes_per_image_counts(tiny_camvid, tmp_path):
    from equss.pipeline.baseline import run_baseline

    cfg = load_config("camvid-equss", "smoke", overrides=[
        "data.resolution=28", "data.eval_resolution=28", "data.probe_label_size=0", "train.device=cpu",
        f"data.data_root={tiny_camvid}", "model.extra_clusters=1"])
    run_baseline(cfg, out=tmp_path, device="cpu", progress=False, patches=200, linear_epochs=1)
    doc = json.loads((tmp_path / "baseline.json").read_text())
    assert doc["per_image_file"] == "baseline.per_image.npz"
    pi = PerImageConfusions.load(tmp_path / "baseline.per_image.npz")
    assert pi.groups["cluster"].shape[1:] == (12, 11) and pi.n_images == 6
    _check_against_json(doc, pi, ("cluster", "linear"))


def test_record_copies_the_per_image_files(tmp_path):
    from equss.paper.runs import record

    run = tmp_path / "run"
    run.mkdir()
    for name in ("eval.json", "eval.per_image.npz", "eval_crf.json", "eval_crf.per_image.npz", "best.pt",
                 "config.yaml", "other.npz"):
        (run / name).write_bytes(b"x")
    record(run, tmp_path / "rec")
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == [
        "config.yaml", "eval.json", "eval.per_image.npz", "eval_crf.json", "eval_crf.per_image.npz"]


def test_dataset_sequences():
    from equss.data.camvid import camvid_sequence

    assert camvid_sequence("test/0001TP_008550") == "0001TP"
    assert camvid_sequence("Seq05VD_f02370") == "Seq05VD"
    assert camvid_sequence("test/frame1") == "frame1"  # no prefix: its own


def test_real_camvid_test_split_sequences(data_root):
    from collections import Counter

    from equss.data import get_dataset

    ds = get_dataset("camvid", "test", data_root=data_root)
    # every frame's sequence is its file-name prefix; the test split is two drives
    assert Counter(ds.sequence(i) for i in range(len(ds))) == Counter(
        Path(s.image).name.split("_")[0] for s in ds.samples)
    assert len({ds.sequence(i) for i in range(len(ds))}) == 2


# ---------------------------------------------------------------------------- (b) every table number
EVALUATION = re.compile(r"^(eval.*|baseline|posthoc)\.json$")
# smoke_results: the session's smoke results folder (tests/conftest.py: Table 1, Fig. 4, learning curves)


@pytest.mark.slow
def test_every_table_number_is_recomputed_from_per_image_counts(smoke_results):
    runs = smoke_results / "runs"
    checked, not_evaluations = {}, set()
    for table in trace.tables(smoke_results):
        with open(table, newline="") as fh:
            rows = list(csv.DictReader(fh))
        for row in rows:
            if row.get("source", "measured") != "measured":
                continue
            for col, (fixed, get) in trace.COLUMNS.items():
                if col not in row or row[col] == "":
                    continue
                name = fixed or row["eval"]
                if not EVALUATION.match(name):  # fig4.json (entropies, distances), log.jsonl (validation)
                    not_evaluations.add(col)
                    continue
                pi = PerImageConfusions.load(per_image_path(runs / row["run"] / name))
                recomputed = {g: pi.summary(g) for g in pi.groups}
                assert get(recomputed, row) == pytest.approx(float(row[col]), abs=1e-9, nan_ok=True), \
                    (table.name, row["run"], name, col)
                doc = json.loads((runs / row["run"] / name).read_text())
                assert doc["per_image_file"] == per_image_path(name).name
                checked.setdefault(table.name, set()).add(col)
    assert checked["table1.csv"] == {"unsup_acc", "unsup_miou", "linear_acc", "linear_miou"}
    assert checked["learning_curves.csv"] >= {"unsup_miou", "linear_miou"}
    assert checked["fig4.csv"] == {"iou"}  # Fig. 4's per-class IoU comes from eval.json too
    # what is not an evaluation: validation rows of log.jsonl, Fig. 4's analysis of the codes (fig4.json)
    assert not_evaluations <= {"val_unsup_miou", "val_linear_miou", "val_unsup_acc", "val_linear_acc",
                               "entropy_bits", "distance"}
    evaluated = {p.name for p in runs.glob("*/*.json") if EVALUATION.match(p.name)}
    assert {"eval.json", "eval_crf.json", "baseline.json"} <= evaluated
    assert any(n.startswith("eval_step_") for n in evaluated)
    for path in runs.glob("*/*.json"):  # every evaluation in the records has its per-image file
        if EVALUATION.match(path.name):
            assert per_image_path(path).is_file(), path
    # real CamVid test frames: ids and sequences from the file names
    pi = PerImageConfusions.load(next(runs.glob("*/eval_crf.per_image.npz")))
    assert all(i.startswith("test/") and i[5:].split("_")[0] == s for i, s in zip(pi.image_ids, pi.sequences))
    assert set(pi.groups) == set(GROUPS)


@pytest.mark.slow
def test_claims_of_a_smoke_results_folder_carry_bootstrap_columns(smoke_results, tmp_path):
    """The smoke test split is CamVid's first 8 test frames, all of one drive: an image-level interval
    around each Table 1 estimate, and no sequence-level one (one sequence), said in the note."""
    vs = claims.paper_claims(claims.load_tables(smoke_results), power=False)
    v = next(v for v in vs if v.claim.startswith("EQUSS > STEGO") and v.metric == "linear mIoU")
    assert v.boot["boot_units"] == "8 images / 1 sequence"
    assert v.boot["boot_image_low"] <= v.boot["estimate"] <= v.boot["boot_image_high"]
    assert v.boot["estimate"] == pytest.approx(v.estimate, abs=1e-9)
    assert math.isnan(v.boot["boot_sequence_low"]) and "one sequence" in v.boot["boot_note"]
    claims.write(vs, tmp_path)
    with open(tmp_path / "claims.csv", newline="") as fh:
        assert next(csv.reader(fh))[-len(claims.Verdict.BOOT_COLUMNS):] == list(claims.Verdict.BOOT_COLUMNS)


# ---------------------------------------------------------------------------- (c) the bootstrap
def _run(counts, sequences, ids=None, extra_row=False, unmatched=()):
    counts = np.asarray(counts, dtype=np.int64)
    n = counts.shape[-1]
    return claims.RunCounts(counts, list(ids or [f"i{k}" for k in range(len(counts))]), list(sequences),
                            list(range(n)), list(unmatched), extra_row,
                            {"n_classes": n, "extra_clusters": counts.shape[1] - n, "compute_hungarian": False,
                             "stego_mask": True})


def _random_counts(rng, n_images, n_classes, rows=None):
    out = np.zeros((n_images, rows or n_classes, n_classes), dtype=np.int64)
    for i in range(n_images):
        truth = rng.integers(0, n_classes, 400)
        pred = np.where(rng.random(400) < 0.6, truth, rng.integers(0, rows or n_classes, 400))
        np.add.at(out[i], (pred, truth), 1)
    return out


def _miou(hist):
    """Mean IoU (%) of a matched histogram, written out: IoU_c = tp / (row + column - tp), NaN dropped."""
    vals = []
    for c in range(hist.shape[0]):
        tp = hist[c, c]
        denom = hist[c, :].sum() + hist[:, c].sum() - tp
        if denom > 0:
            vals.append(tp / denom)
    return 100 * sum(vals) / len(vals)


def test_bootstrap_matches_a_brute_force_loop():
    rng = np.random.default_rng(1)
    n = 4
    a = [_random_counts(rng, 30, n) for _ in range(3)]  # arm A: 3 seeds, 30 shared test images
    b = [_random_counts(rng, 30, n) for _ in range(3)]
    seqs = [f"s{k // 5}" for k in range(30)]
    arms = {"A": [_run(c, seqs) for c in a], "B": [_run(c, seqs) for c in b]}
    res = claims.bootstrap_interval(arms, [{"A": 1, "B": -1}], "mIoU", unit="image", n_boot=300, seed=7)

    # brute force: draw the same resamples one by one, sum each run's resampled images, mean over seeds
    draw = np.random.default_rng(7)
    stats = []
    for _ in range(300):
        idx = draw.integers(0, 30, 30)
        stats.append(np.mean([_miou(c[idx].sum(0)) for c in a]) - np.mean([_miou(c[idx].sum(0)) for c in b]))
    low, high = np.percentile(stats, [2.5, 97.5])
    assert res.low == pytest.approx(low, abs=1e-9) and res.high == pytest.approx(high, abs=1e-9)
    assert res.sd == pytest.approx(np.std(stats, ddof=1), abs=1e-9)
    full = np.mean([_miou(c.sum(0)) for c in a]) - np.mean([_miou(c.sum(0)) for c in b])
    assert res.estimate == pytest.approx(full, abs=1e-9)

    # sequences: 6 drawn of 6, each image weighing as often as its sequence was drawn
    seq = claims.bootstrap_interval(arms, [{"A": 1, "B": -1}], "mIoU", unit="sequence", n_boot=300, seed=7)
    draw = np.random.default_rng(7)
    stats = []
    members = [np.flatnonzero(np.array(seqs) == f"s{k}") for k in range(6)]
    for _ in range(300):
        idx = np.concatenate([members[k] for k in draw.integers(0, 6, 6)])
        stats.append(np.mean([_miou(c[idx].sum(0)) for c in a]) - np.mean([_miou(c[idx].sum(0)) for c in b]))
    assert (seq.low, seq.high) == pytest.approx(tuple(np.percentile(stats, [2.5, 97.5])), abs=1e-9)
    assert seq.n_units == 6 and res.n_units == 30

    # "best": the margin to the closest competitor, resample by resample
    best = claims.bootstrap_interval({**arms, "C": arms["B"][:1]}, [{"A": 1, "B": -1}, {"A": 1, "C": -1}], "mIoU",
                                     n_boot=50, seed=3)
    one = claims.bootstrap_interval(arms, [{"A": 1, "B": -1}], "mIoU", n_boot=50, seed=3)
    assert best.estimate <= one.estimate and best.high <= one.high + 1e-12


def test_bootstrap_of_accuracy_has_the_variance_of_a_mean():
    """Images with equally many labelled pixels: Accuracy is the mean of the per-image accuracies, so
    the bootstrap sd tends to the plug-in standard error sqrt(mean((x - mean x)^2) / n)."""
    rng = np.random.default_rng(2)
    n_img, pix = 80, 1000
    acc = rng.uniform(0.2, 0.95, n_img)
    counts = np.zeros((n_img, 2, 2), dtype=np.int64)
    for i, p in enumerate(acc):
        right = int(round(p * pix))
        counts[i] = [[right, 0], [pix - right, 0]]  # class 0 everywhere; right pixels predicted 0
    x = np.diag(counts.sum(0)).sum() / (n_img * pix)
    per = counts[:, 0, 0] / pix
    se = math.sqrt(np.mean((per - per.mean()) ** 2) / n_img)
    res = claims.bootstrap_interval({"A": [_run(counts, [f"i{k}" for k in range(n_img)])]}, [{"A": 1}], "Accuracy",
                                    n_boot=4000, seed=0)
    assert res.estimate == pytest.approx(100 * x)
    assert res.sd == pytest.approx(100 * se, rel=0.05)
    assert res.low == pytest.approx(100 * (x - 1.96 * se), abs=100 * 0.2 * se)
    assert res.high == pytest.approx(100 * (x + 1.96 * se), abs=100 * 0.2 * se)


def test_sequence_bootstrap_with_two_sequences_has_a_known_answer():
    """Two sequences, every frame of the first all right and of the second all wrong, equal sizes:
    resampling frames gives a narrow interval around 50 %, resampling the two sequences gives 0, 50 or
    100 % with probabilities 1/4, 1/2, 1/4, so the 95 % interval is [0, 100]."""
    n_img, pix = 100, 50
    counts = np.zeros((n_img, 2, 2), dtype=np.int64)
    counts[: n_img // 2, 0, 0] = pix   # sequence A: right
    counts[n_img // 2:, 1, 0] = pix    # sequence B: wrong
    seqs = ["A"] * (n_img // 2) + ["B"] * (n_img // 2)
    arms = {"X": [_run(counts, seqs)]}
    img = claims.bootstrap_interval(arms, [{"X": 1}], "Accuracy", unit="image", n_boot=2000, seed=0)
    seq = claims.bootstrap_interval(arms, [{"X": 1}], "Accuracy", unit="sequence", n_boot=2000, seed=0)
    assert img.estimate == seq.estimate == 50.0
    assert img.sd == pytest.approx(50 / math.sqrt(n_img), rel=0.06)  # binomial: sqrt(p(1-p)/n)
    assert (seq.low, seq.high) == (0.0, 100.0) and seq.n_units == 2
    w = claims.resample_weights(seqs, 4000, "sequence", np.random.default_rng(5))
    share = np.bincount(w[:, 0], minlength=3) / 4000  # times sequence A was drawn: Binomial(2, 1/2)
    assert share == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    assert (w[:, : n_img // 2] == w[:, [0]]).all()  # a sequence's frames move together

    # an image that is its own sequence: the sequence bootstrap is the image bootstrap
    own = {"X": [_run(counts, [f"i{k}" for k in range(n_img)])]}
    a = claims.bootstrap_interval(own, [{"X": 1}], "Accuracy", unit="sequence", n_boot=500, seed=4)
    b = claims.bootstrap_interval(own, [{"X": 1}], "Accuracy", unit="image", n_boot=500, seed=4)
    assert (a.low, a.high, a.sd) == (b.low, b.high, b.sd)


def test_bootstrap_holds_the_split_matching_fixed():
    """Cluster counts with extra clusters: each resample uses the split's class_rows / unmatched
    (STEGO's extra row); ``rematch`` re-fits the Hungarian per resample instead."""
    from equss.eval.metrics import UnsupervisedMetrics

    rng = np.random.default_rng(3)
    n, e = 4, 2
    counts = _random_counts(rng, 20, n, rows=n + e)
    pi = PerImageConfusions([f"i{k}" for k in range(20)], ["s"] * 20, {"cluster": counts},
                            {"cluster": {"n_classes": n, "extra_clusters": e, "compute_hungarian": True,
                                         "stego_mask": False}})
    run = claims.RunCounts.of(pi, "cluster")
    split = UnsupervisedMetrics.from_stats(counts.sum(0), n, extra_clusters=e, stego_mask=False)
    full = split.compute()
    assert run.class_rows == split.class_rows and run.extra_row
    w = claims.resample_weights(pi.sequences, 20, "image", np.random.default_rng(0))
    fixed = run.values(w, "mIoU")
    refit = run.values(w, "mIoU", rematch=True)
    for k in range(20):
        st = np.tensordot(w[k], counts, 1)
        hist = np.zeros((n + 1, n + 1))
        hist[:n, :n] = st[split.class_rows]
        hist[n, :n] = st[split.unmatched].sum(0)
        assert fixed[k] == pytest.approx(_miou(hist), abs=1e-9)
        assert refit[k] == pytest.approx(UnsupervisedMetrics.from_stats(st, n, extra_clusters=e,
                                                                         stego_mask=False).compute()["mIoU"])
    assert run.values(np.ones((1, 20), dtype=np.int64), "mIoU")[0] == pytest.approx(full["mIoU"], abs=1e-12)


def test_claims_get_bootstrap_columns_only_with_per_image_records(tmp_path):
    """Claims from records with per-image counts gain the bootstrap columns (intervals around the
    per-image estimate); without them the CSV keeps exactly its columns of before."""
    import pandas as pd

    rng = np.random.default_rng(4)
    n, n_img = 3, 12
    ids = [f"test/{'0001TP' if k < 8 else 'Seq05VD'}_{k:06d}" for k in range(n_img)]
    seqs = [i[5:].split("_")[0] for i in ids]
    rows, runs = [], tmp_path / "runs"
    for method, skill in (("STEGO", 0.4), ("EQUSS", 0.7)):
        for s in range(3):
            counts = {}
            for g in ("cluster", "linear"):
                c = np.zeros((n_img, n, n), dtype=np.int64)
                for i in range(n_img):
                    truth = rng.integers(0, n, 300)
                    pred = np.where(rng.random(300) < skill, truth, rng.integers(0, n, 300))
                    np.add.at(c[i], (pred, truth), 1)
                counts[g] = c
            pi = PerImageConfusions(ids, seqs, counts, {g: {"n_classes": n, "extra_clusters": 0,
                                                            "compute_hungarian": g == "cluster", "stego_mask": True}
                                                        for g in counts})
            run = f"camvid-{method.lower()}-seed{s}"
            (runs / run).mkdir(parents=True)
            pi.save(runs / run / "eval.per_image.npz")
            num = {g: pi.summary(g) for g in counts}
            rows.append({"method": method, "dataset": "camvid", "seed": s, "crf": False, "run": run, "eval": "eval.json",
                         "unsup_acc": num["cluster"]["Accuracy"], "unsup_miou": num["cluster"]["mIoU"],
                         "linear_acc": num["linear"]["Accuracy"], "linear_miou": num["linear"]["mIoU"],
                         "source": "measured"})
    pd.DataFrame(rows).to_csv(tmp_path / "table1.csv", index=False)
    tables = claims.load_tables(tmp_path)
    assert "per_image" in tables
    vs = claims.paper_claims(tables, power=False)
    v = next(v for v in vs if v.claim == "EQUSS > STEGO (camvid)" and v.metric == "unsup. mIoU")
    b = v.boot
    assert b["boot_image_low"] < v.estimate < b["boot_image_high"]
    assert b["boot_sequence_low"] <= b["boot_sequence_high"] and b["boot_units"] == "12 images / 2 sequences"
    assert b["estimate"] == pytest.approx(v.estimate, abs=1e-9)  # the per-image counts give the table's estimate
    raw = next(v for v in vs if v.claim == "EQUSS > raw backbone" and v.metric == "unsup. mIoU")
    assert raw.boot == {"boot_note": "no runs for DINO (raw features)"}  # no baseline rows in this table
    fig = next(v for v in vs if v.source.startswith("Fig. 4"))
    assert "not a test-set metric" in fig.boot["boot_note"]
    claims.write(vs, tmp_path)
    with open(tmp_path / "claims.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == list(claims.Verdict.COLUMNS) + list(claims.Verdict.BOOT_COLUMNS)
    assert "test-set bootstrap" in (tmp_path / "claims.md").read_text()

    for f in runs.glob("*/*.npz"):  # the same tables without per-image records: the columns of before
        f.unlink()
    bare = claims.load_tables(tmp_path)
    assert "per_image" not in bare
    claims.write(claims.paper_claims(bare, power=False), tmp_path / "bare")
    with open(tmp_path / "bare" / "claims.csv", newline="") as fh:
        assert next(csv.reader(fh)) == list(claims.Verdict.COLUMNS)
    assert "test-set bootstrap" not in (tmp_path / "bare" / "claims.md").read_text()
