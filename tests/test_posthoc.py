"""Converged post-hoc probes on the frozen head output (equss.pipeline.posthoc, issue 26).

* One rule with the raw-feature row: a head that is the identity gives exactly the numbers and the
  per-image counts of ``run_baseline`` (same seed, k, patches, optimiser, epochs, label size).
* The feature view maps the backbone cache through the frozen head (and, for PQ models, the quantiser)
  batch by batch: checked against the head output materialised at once and against a numpy
  implementation of Eq. 2 (nearest L2-normalised codeword, the raw codeword as output).
* Spherical k-means on quantised vectors against a brute-force search over every partition of a tiny case.
* ``posthoc.json``: head and quantised parts (only head without PQ), every number recomputed from
  ``posthoc.per_image.npz``; the CLI; a table row from each part with its ``probe`` column.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import error_line
from equss.eval.per_image import PerImageConfusions
from equss.paper import runs, tables
from test_executor import fresh_cache, tiny
from test_reliability import write_camvid


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    return write_camvid(tmp_path_factory.mktemp("posthoc-camvid"))


def _numbers(doc: dict) -> dict:
    return {g: {k: doc[g][k] for k in ("mIoU", "Accuracy", "confusion", "assignment", "per_class_iou")}
            for g in ("cluster", "linear")}


def _caches(cfg):
    from equss.data.features import get_or_build_features
    from equss.pipeline.inputs import make_backbone, make_dataset

    backbone = make_backbone(cfg)
    train = get_or_build_features(backbone, make_dataset(cfg, cfg.data.train_split, resolution=cfg.data.resolution),
                                  progress=False)
    test = get_or_build_features(backbone, make_dataset(cfg, cfg.data.test_split), progress=False)
    return train, test


def test_identity_head_gives_the_raw_feature_baseline(camvid, tmp_path, monkeypatch):
    from equss.model import EQUSS
    from equss.pipeline.baseline import run_baseline
    from equss.pipeline.checkpoint import save_checkpoint
    from equss.pipeline.posthoc import run_posthoc

    fresh_cache(monkeypatch, tmp_path / "cache")
    cfg = tiny(camvid, 1, "camvid-equss", "model.head_dim=384", "model.pq=false", "model.extra_clusters=1")
    model = EQUSS(cfg, 384, 11)
    with torch.no_grad():  # linear branch = identity, nonlinear branch = 0: z is the backbone feature, bit for bit
        model.head.linear.weight.copy_(torch.eye(384).view(384, 384, 1, 1))
        model.head.linear.bias.zero_()
        model.head.nonlinear[2].weight.zero_()
        model.head.nonlinear[2].bias.zero_()
    save_checkpoint(tmp_path / "identity.pt", {"model": model.state_dict(), "config": cfg.to_dict(), "in_dim": 384,
                                               "n_classes": 11, "step": 0})
    got = run_posthoc(tmp_path / "identity.pt", out=tmp_path / "ph", device="cpu", progress=False)
    want = run_baseline(cfg, out=tmp_path / "base", device="cpu", progress=False)
    assert list(got) == ["head", "per_image", "provenance"]  # no quantised part without PQ
    assert _numbers(got["head"]) == _numbers(want)
    for g in ("cluster", "linear"):
        assert np.array_equal(got["per_image"].groups[f"head_{g}"], want["per_image"].groups[g])
    prov, base = got["provenance"], want["provenance"]
    assert (prov["k"], prov["patches"], prov["linear_epochs"], prov["seed"]) == (base["k"], base["patches"],
                                                                                base["linear_epochs"], 1)
    assert prov["checkpoint_policy"] == "file" and prov["resolution"] == base["eval_resolution"]


def _numpy_pq(z: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Eq. 1-2 by brute force: each channel block's nearest codeword after L2 normalisation of both,
    output the raw codeword (official EQUSS); ``z`` (N, D), ``codebooks`` (M, K, D / M)."""
    m, k, d = codebooks.shape
    out = np.empty_like(z)
    for b in range(m):
        block = z[:, b * d:(b + 1) * d]
        zn = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        en = codebooks[b] / np.maximum(np.linalg.norm(codebooks[b], axis=1, keepdims=True), 1e-12)
        dist = ((zn[:, None, :] - en[None]) ** 2).sum(-1)
        out[:, b * d:(b + 1) * d] = codebooks[b][dist.argmin(1)]
    return out


@pytest.fixture(scope="module")
def trained(camvid, tmp_path_factory):
    """A tiny trained EQUSS run (PQ, M=32, K=256 on d_E=1024) in its own cache: (cfg, run folder)."""
    mp = pytest.MonkeyPatch()
    cache = tmp_path_factory.mktemp("posthoc-cache")
    mp.setenv("EQUSS_CACHE", str(cache))
    cfg = tiny(camvid, 2)
    folder = Path(runs.run(cfg)["run_dir"])
    yield cfg, folder
    mp.undo()


def test_views_map_the_cache_through_the_frozen_head_and_quantiser(trained, monkeypatch):
    from equss.pipeline.baseline import FeatureView
    from equss.pipeline.checkpoint import load_checkpoint, model_from_checkpoint
    from equss.pipeline.posthoc import feature_map

    cfg, folder = trained
    monkeypatch.setenv("EQUSS_CACHE", str(folder.parents[1]))
    model, _ = model_from_checkpoint(load_checkpoint(folder / "last.pt"))
    train, test = _caches(cfg)
    for cache in (train, test):
        feats = torch.from_numpy(np.asarray(cache.feats, dtype=np.float32))
        with torch.no_grad():
            z = model.head(feats)  # materialised at once
        head = FeatureView(cache, feature_map(model, "head"), channels=1024, batch_size=4)
        quant = FeatureView(cache, feature_map(model, "quantised"), channels=1024, batch_size=4)
        got = torch.cat([f for _, f, _ in head.batches()])
        assert got.shape == z.shape and torch.allclose(got, z, atol=1e-5, rtol=1e-5)
        flat = got.permute(0, 2, 3, 1).reshape(-1, 1024).numpy()
        want = _numpy_pq(flat, model.quantizer.codebooks.detach().numpy())
        q = torch.cat([f for _, f, _ in quant.batches()]).permute(0, 2, 3, 1).reshape(-1, 1024).numpy()
        assert np.allclose(q, want, atol=1e-6)
        labels = torch.cat([lab for _, _, lab in head.batches()])
        assert torch.equal(labels, torch.from_numpy(np.asarray(cache.labels, dtype=np.int64)))


def _objective(x: np.ndarray, assign: np.ndarray, k: int) -> float:
    """Spherical k-means objective: sum over clusters of the norm of the sum of their unit vectors."""
    return float(sum(np.linalg.norm(x[assign == c].sum(0)) for c in range(k)))


def test_spherical_kmeans_on_quantised_vectors_finds_the_best_partition():
    from equss.model.quantize import ProductQuantizer
    from equss.pipeline.baseline import spherical_kmeans

    torch.manual_seed(3)
    pq = ProductQuantizer(4, 2, 3).eval()  # M = 2 codebooks of K = 3 codewords: at most 9 distinct vectors
    with torch.no_grad():
        for p in pq.parameters():
            p.copy_(torch.randn_like(p))
        q = pq(torch.randn(60, 4, 1, 1)).quantized.reshape(60, 4)
    x = q.numpy() / np.linalg.norm(q.numpy(), axis=1, keepdims=True)
    distinct, inverse = np.unique(np.round(x, 6), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    assert 4 <= len(distinct) <= 9
    k = 3
    best, best_assign = -1.0, None
    for labels in itertools.product(range(k), repeat=len(distinct)):  # every partition of the distinct vectors
        assign = np.asarray(labels)[inverse]
        if len(set(labels)) < k:
            continue
        score = _objective(x, assign, k)
        if score > best + 1e-9:
            best, best_assign = score, assign
    cent = spherical_kmeans(q, k, seed=0).numpy()
    got = (x @ cent.T).argmax(1)
    assert _objective(x, got, k) == pytest.approx(best, rel=1e-6)
    same = {(a, b) for a, b in zip(got, best_assign)}  # the same partition up to the clusters' names
    assert len(same) == k


def test_posthoc_file_parts_and_per_image_counts(trained, tmp_path, capsys, monkeypatch):
    from equss import cli

    cfg, folder = trained
    monkeypatch.setenv("EQUSS_CACHE", str(folder.parents[1]))
    result = runs.posthoc(cfg, records=tmp_path / "runs")
    assert result["eval_file"] == "posthoc.json" and set(result) >= {"head", "quantised", "provenance"}
    prov = result["provenance"]
    assert prov["parts"] == ["head", "quantised"] and prov["checkpoint_policy"] == "last" and prov["checkpoint_step"] == 2
    assert (prov["linear_epochs"], prov["patches"], prov["k"]) == (10, 100_000, 11)
    rec = tmp_path / "runs" / result["run"]
    assert {"posthoc.json", "posthoc.per_image.npz"} <= {p.name for p in rec.iterdir()}
    pi = PerImageConfusions.load(rec / "posthoc.per_image.npz")
    assert set(pi.groups) == {"head_cluster", "head_linear", "quantised_cluster", "quantised_linear"}
    for part in ("head", "quantised"):
        for g in ("cluster", "linear"):
            s = pi.summary(f"{part}_{g}")
            assert s["confusion"] == result[part][g]["confusion"]
            assert s["mIoU"] == pytest.approx(result[part][g]["mIoU"], abs=1e-12)
            assert s["Accuracy"] == pytest.approx(result[part][g]["Accuracy"], abs=1e-12)
    # a table row from each part, with its probe column; the online row says "online"
    online = runs.run(cfg)
    rows = [tables.row("EQUSS", online, "camvid", 2), tables.row("EQUSS", result, "camvid", 2, probe="post-hoc"),
            tables.row("EQUSS", result, "camvid", 2, probe="post-hoc quantised")]
    assert [r["probe"] for r in rows] == ["online", "post-hoc", "post-hoc quantised"]
    assert [r["eval"] for r in rows] == ["eval.json", "posthoc.json", "posthoc.json"]
    assert rows[1]["unsup_miou"] == result["head"]["cluster"]["mIoU"]
    assert rows[2]["linear_acc"] == result["quantised"]["linear"]["Accuracy"]
    assert {r["resolution"] for r in rows} == {28} and {r["recipe"] for r in rows} == {"EQUSS"}
    with pytest.raises(ValueError, match="probe"):
        tables.row("EQUSS", online, "camvid", 2, probe="post-hoc")  # an online evaluation has no post-hoc part
    # the CLI writes the same file beside the checkpoint
    out = tmp_path / "cli"
    assert cli.main(["posthoc", "--checkpoint", str(folder / "last.pt"), "--out", str(out), "--device", "cpu"]) == 0
    doc = json.loads((out / "posthoc.json").read_text())
    assert _numbers(doc["quantised"]) == _numbers(result["quantised"])
    assert "not found" in error_line(capsys, ["posthoc", "--checkpoint", str(tmp_path / "missing.pt")])
