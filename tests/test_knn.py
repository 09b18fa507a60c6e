"""kNN table (STEGO precompute_knns semantics) against a brute-force numpy computation."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from equss import cli
from equss.data import knn
from equss.pipeline import caches
from equss.errors import EqussError
from equss.data.features import get_or_build_features, pooled_features
from equss.data.knn import compute_knn, get_or_build_knn, load_knn, sample_neighbors


def brute_knn(x, k, self_first=True):
    x = np.asarray(x, dtype=np.float64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = xn @ xn.T
    if self_first:
        np.fill_diagonal(sims, np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).normal(size=(57, 16)).astype(np.float32)


@pytest.mark.parametrize("k", [1, 10, 30])
@pytest.mark.parametrize("chunk,key_chunk", [(1, None), (5, None), (57, None), (100, None),
                                             (8, 7), (13, 10), (4, 30), (57, 56)])
def test_matches_brute_force(data, k, chunk, key_chunk):
    nns = compute_knn(data, k=k, chunk=chunk, key_chunk=key_chunk)
    assert nns.shape == (57, k) and nns.dtype == np.int64
    np.testing.assert_array_equal(nns, brute_knn(data, k))
    np.testing.assert_array_equal(nns[:, 0], np.arange(57))  # rank 0 = self


def test_plain_topk_and_tensor_input(data):
    t = torch.from_numpy(data).half()
    nns = compute_knn(t, k=12, chunk=9, key_chunk=11, self_first=False)
    np.testing.assert_array_equal(nns, brute_knn(t.float().numpy(), 12, self_first=False))
    np.testing.assert_array_equal(nns[:, 0], np.arange(57))  # self is its own best match


def test_self_first_with_duplicates():
    x = np.random.default_rng(1).normal(size=(10, 4))
    x = np.concatenate([x, x[:3] * 2.0])  # rows 10..12 are (cosine) duplicates of 0..2
    nns = compute_knn(x, k=4, chunk=3, key_chunk=5)
    np.testing.assert_array_equal(nns[:, 0], np.arange(13))
    assert list(nns[:3, 1]) == [10, 11, 12] and list(nns[10:, 1]) == [0, 1, 2]


def test_bad_k(data):
    with pytest.raises(ValueError):
        compute_knn(data, k=58)


def test_sample_neighbor_ranks(data):
    nns = compute_knn(data, k=30)
    g = torch.Generator().manual_seed(0)
    for idx in (0, 17, 56):
        allowed = list(nns[idx, 1:8])
        draws = sample_neighbors(nns, torch.full((800,), idx), 7, generator=g).tolist()
        assert idx not in draws
        assert set(draws) == set(allowed)  # uniform over ranks 1..7: all hit in 800 draws
    assert set(sample_neighbors(nns, torch.full((20,), 3), 1, generator=g).tolist()) == {nns[3, 1]}
    with pytest.raises(ValueError):
        sample_neighbors(nns, [0], 30)  # only ranks 1..29 exist
    with pytest.raises(ValueError):
        sample_neighbors(nns, [0], 0)
    batch = sample_neighbors(nns, torch.arange(57).repeat(20), 7, generator=g)
    idx = torch.arange(57).repeat(20)
    assert not torch.any(batch == idx)
    table = torch.from_numpy(nns)
    assert torch.all((table[idx, 1:8] == batch[:, None]).any(dim=1))


class TinyBackbone(nn.Module):
    def __init__(self, weights_id="seed0"):
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Conv2d(3, 8, 4, stride=4)
        self.name, self.patch_size, self.embed_dim, self.weights_id = "tiny-conv", 4, 8, weights_id

    def forward(self, images, normalize=False):
        return self.proj(images)


class TinyDataset(torch.utils.data.Dataset):
    def __init__(self, n=21, preproc_id="tiny-knn"):
        g = torch.Generator().manual_seed(3)
        self.images = torch.randn(n, 3, 16, 16, generator=g)
        self.labels = torch.randint(-1, 4, (n, 16, 16), generator=g)
        self.n_classes, self.class_names, self.preproc_id = 4, list("abcd"), preproc_id

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


def test_get_or_build_knn_cache_and_staleness(monkeypatch):
    bb, ds = TinyBackbone(), TinyDataset()
    nns = get_or_build_knn(bb, ds, k=6, progress=False)
    cache = get_or_build_features(bb, ds, progress=False)
    np.testing.assert_array_equal(nns, brute_knn(pooled_features(cache), 6))
    path = knn.knn_path(cache, 6)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["k"] == 6 and meta["backbone"] == "tiny-conv" and meta["complete"]
    assert meta["preproc_id"] == "tiny-knn" and meta["weights_id"] == "seed0"

    def boom(*a, **kw):
        raise AssertionError("recomputed")

    with monkeypatch.context() as mp:  # (monkeypatch.undo() would also undo EQUSS_CACHE)
        mp.setattr(knn, "compute_knn", boom)
        np.testing.assert_array_equal(get_or_build_knn(cache, k=6), nns)  # reused
        np.testing.assert_array_equal(load_knn(cache, 6), nns)
        with pytest.raises(EqussError, match=r"not found.*equss knn.*--k 5"):
            load_knn(cache, 5)

    rebuilt = get_or_build_features(bb, ds, rebuild=True, progress=False)
    with pytest.raises(EqussError, match=r"stale.*--rebuild"):
        load_knn(rebuilt, 6)
    # a rebuilt feature cache makes its kNN file recompute by itself (no manual deletion)
    again = get_or_build_knn(rebuilt, k=6)
    np.testing.assert_array_equal(again, nns)
    np.testing.assert_array_equal(load_knn(rebuilt, 6), nns)  # and the new file is current
    with pytest.raises(EqussError, match="only 21 images"):
        get_or_build_knn(rebuilt, k=30)


def test_cli_knn(monkeypatch, capsys):
    ds = TinyDataset(preproc_id="tiny-knn-cli")
    monkeypatch.setattr(caches, "load_inputs", lambda args: (TinyBackbone(), ds, "cpu"))
    argv = ["knn", "tiny", "--split", "train", "--backbone", "tiny-conv", "--k", "5", "--chunk", "4"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "_k5.npy" in out and "21 images x 5 neighbours" in out
    cache = get_or_build_features(TinyBackbone(), ds, progress=False)
    np.testing.assert_array_equal(load_knn(cache, 5), brute_knn(pooled_features(cache), 5))


def test_batch_source_draws_epochs_and_knn_positives(data):
    """Training's batch drawing (BatchSource.next_indices): every image once per epoch (a
    seeded permutation), positives from kNN ranks 1..num_neighbors, the same stream again
    after a state_dict round trip (what resume relies on)."""
    from equss.config import load_config
    from equss.pipeline.inputs import BatchSource

    nns = compute_knn(data, k=30)
    cfg = load_config("camvid-equss", "smoke", overrides=["data.num_neighbors=5", "train.seed=3"])
    src = BatchSource(cfg, list(range(57)), nns, backbone=object())
    seen, pairs = [], []
    for _ in range(57 // 3 * 2):  # two epochs in batches of 3 (57 = 19 * 3)
        index, pos = src.next_indices(3)
        seen += index.tolist()
        pairs += list(zip(index.tolist(), pos.tolist()))
    assert sorted(seen[:57]) == list(range(57)) and sorted(seen[57:]) == list(range(57))
    assert seen[:57] != list(range(57)) and seen[:57] != seen[57:]  # shuffled, reshuffled
    assert all(p in nns[i, 1:6] for i, p in pairs)
    state = src.state_dict()
    a = [src.next_indices(4) for _ in range(5)]
    src.load_state_dict(state)
    b = [src.next_indices(4) for _ in range(5)]
    for (i1, p1), (i2, p2) in zip(a, b):
        assert torch.equal(i1, i2) and torch.equal(p1, p2)
    other = BatchSource(load_config("camvid-equss", "smoke", overrides=["train.seed=4"]), list(range(57)), nns,
                        backbone=object())
    assert other.next_indices(57)[0].tolist() != BatchSource(cfg, list(range(57)), nns, backbone=object()).next_indices(57)[0].tolist()
