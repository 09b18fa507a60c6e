"""Feature cache: values, reuse, resume after interruption, staleness, CLI.

Uses a tiny stand-in backbone (a strided conv with the Backbone attributes) and a tiny
in-memory dataset, so nothing here needs the real backbone or data.
"""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from equss import cli
from equss.data import features
from equss.pipeline import caches
from equss.errors import EqussError
from equss.data.features import FeatureCache, get_or_build_features, pooled_features


class TinyBackbone(nn.Module):
    """Stand-in for equss.backbones.vit.Backbone: (B,3,H,W) -> (B,C,H/p,W/p); counts images seen."""

    def __init__(self, embed_dim=6, patch_size=4, name="tiny-conv", weights_id="seed0",
                 fail_after=None):
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
        self.name, self.patch_size, self.embed_dim, self.weights_id = (
            name, patch_size, embed_dim, weights_id)
        self.calls = 0
        self.images_seen = 0
        self.fail_after = fail_after

    def forward(self, images, normalize=False):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        self.images_seen += images.shape[0]
        out = self.proj(images)
        return F.normalize(out, dim=1) if normalize else out


class TinyDataset(torch.utils.data.Dataset):
    """Stand-in for an equss dataset: (image (3,R,R) float, label (R,R) int64, -1 ignore)."""

    def __init__(self, n=13, res=16, n_classes=5, preproc_id="tiny-train-r16-v1", seed=0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, res, res, generator=g)
        self.labels = torch.randint(-1, n_classes, (n, res, res), generator=g)
        self.n_classes = n_classes
        self.class_names = [f"c{i}" for i in range(n_classes)]
        self.preproc_id = preproc_id

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


def direct(backbone, ds, normalize=False):
    with torch.no_grad():
        return backbone(ds.images, normalize=normalize).numpy()


def test_build_matches_direct_forward():
    bb, ds = TinyBackbone(), TinyDataset()
    cache = get_or_build_features(bb, ds, batch_size=4, progress=False)  # 13 = 4+4+4+1
    ref = direct(TinyBackbone(), ds)
    assert cache.feats.dtype == np.float16 and cache.feats.shape == (13, 6, 4, 4)
    np.testing.assert_allclose(cache.feats.astype(np.float32), ref, rtol=2e-3, atol=2e-3)
    assert cache.labels.dtype == np.int8
    np.testing.assert_array_equal(cache.labels, ds.labels.numpy())
    assert len(cache) == 13 and bb.images_seen == 13
    f, lab = cache[12]
    assert f.dtype == torch.float32 and f.shape == (6, 4, 4)
    assert lab.dtype == torch.int64 and torch.equal(lab, ds.labels[12])
    bf, bl = cache.batch([12, 3, 3])  # any order, repeats allowed: rows of __getitem__
    assert bf.dtype == torch.float32 and bl.dtype == torch.int64
    assert torch.equal(bf[0], f) and torch.equal(bf[1], cache[3][0]) and torch.equal(bl[2], ds.labels[3])
    meta = json.loads((cache.path / "meta.json").read_text())
    assert meta["complete"] is True and meta["backbone"] == "tiny-conv"
    assert meta["weights_id"] == "seed0" and meta["preproc_id"] == "tiny-train-r16-v1"
    assert (meta["n"], meta["C"], meta["h"], meta["w"]) == (13, 6, 4, 4)
    assert meta["dtype"] == "float16" and "created" in meta and "equss_version" in meta
    assert not (cache.path / "progress.json").exists()
    assert bb.training  # the caller's train/eval mode is restored


def test_second_call_reuses_cache():
    ds = TinyDataset()
    first = get_or_build_features(TinyBackbone(), ds, batch_size=5, progress=False)
    bb = TinyBackbone()
    again = get_or_build_features(bb, ds, batch_size=5, progress=False)
    assert bb.calls == 0
    assert again.path == first.path
    np.testing.assert_array_equal(again.feats, first.feats)
    rebuilt_bb = TinyBackbone()
    get_or_build_features(rebuilt_bb, ds, batch_size=5, rebuild=True, progress=False)
    assert rebuilt_bb.images_seen == 13


def test_interrupt_and_resume():
    ds = TinyDataset(preproc_id="tiny-resume")
    with pytest.raises(KeyboardInterrupt):
        get_or_build_features(TinyBackbone(fail_after=2), ds, batch_size=4, progress=False)
    path = features.feature_cache_path(features.feature_key("tiny-conv", "seed0", "tiny-resume"))
    assert json.loads((path / "progress.json").read_text())["done"] == 8
    assert json.loads((path / "meta.json").read_text())["complete"] is False
    with pytest.raises(EqussError, match="incomplete"):
        FeatureCache(path)
    bb = TinyBackbone()
    cache = get_or_build_features(bb, ds, batch_size=4, progress=False)
    assert bb.images_seen == 5  # only the remaining items
    np.testing.assert_allclose(cache.feats.astype(np.float32), direct(TinyBackbone(), ds),
                               rtol=2e-3, atol=2e-3)
    np.testing.assert_array_equal(cache.labels, ds.labels.numpy())
    assert cache.meta["complete"] is True


def test_stale_cache_raises():
    ds = TinyDataset(preproc_id="tiny-stale")
    cache = get_or_build_features(TinyBackbone(), ds, batch_size=8, progress=False)
    smaller = TinyDataset(n=9, preproc_id="tiny-stale")  # same preproc_id, data changed
    with pytest.raises(EqussError, match=r"stale.*--rebuild"):
        get_or_build_features(TinyBackbone(), smaller, progress=False)
    other = features.feature_key("tiny-conv", "other-weights", "tiny-stale")
    with pytest.raises(EqussError, match=r"stale.*weights_id.*--rebuild"):
        FeatureCache(cache.path, expect=other)
    rebuilt = get_or_build_features(TinyBackbone(), smaller, rebuild=True, progress=False)
    assert len(rebuilt) == 9


def test_key_separates_weights_preproc_normalize():
    ds = TinyDataset(preproc_id="tiny-key")
    a = get_or_build_features(TinyBackbone(), ds, progress=False)
    b = get_or_build_features(TinyBackbone(weights_id="seed1"), ds, progress=False)
    c = get_or_build_features(TinyBackbone(), ds, normalize=True, progress=False)
    assert len({a.path, b.path, c.path}) == 3
    ref = direct(TinyBackbone(), ds, normalize=True)
    np.testing.assert_allclose(c.feats.astype(np.float32), ref, rtol=2e-3, atol=2e-3)
    opened = features.open_features("tiny-conv", "seed0", "tiny-key")
    assert opened.path == a.path
    with pytest.raises(EqussError, match="equss features"):
        features.open_features("tiny-conv", "seed0", "never-built")


def test_pooled_features_is_spatial_mean():
    ds = TinyDataset(preproc_id="tiny-pool")
    cache = get_or_build_features(TinyBackbone(), ds, progress=False)
    pooled = pooled_features(cache, chunk=5)
    assert pooled.dtype == np.float32 and pooled.shape == (13, 6)
    ref = cache.feats.astype(np.float64).mean(axis=(2, 3))
    np.testing.assert_allclose(pooled, ref, rtol=1e-5, atol=1e-6)


def test_cli_features(monkeypatch, capsys):
    ds = TinyDataset(preproc_id="tiny-cli")
    seen = {}

    def fake_load_inputs(args):
        seen.update(vars(args))
        return TinyBackbone(), ds, "cpu"

    monkeypatch.setattr(caches, "load_inputs", fake_load_inputs)
    argv = ["features", "tiny", "--split", "train", "--backbone", "tiny-conv",
            "--resolution", "16", "--batch-size", "3"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    path = features.feature_cache_path(features.feature_key("tiny-conv", "seed0", "tiny-cli"))
    assert str(path) in out and "13 images" in out
    assert seen["split"] == "train" and seen["resolution"] == 16 and seen["rebuild"] is False
