"""Codeword sharing (Eq. 8-9 made visible, the demo notebook's explorer) against brute force:
a loop over every pixel and codebook of small random code arrays."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equss.errors import EqussError
from equss.eval.analysis import combination_distance
from equss.eval.codewords import cell_of, shared_codebooks, shared_region, sharing_by_class, upsample_nearest


def _codes(seed, m=6, h=5, w=7, k=3):
    # few codewords per codebook, so that pixels share codes often (and a few share all)
    return np.random.default_rng(seed).integers(0, k, size=(m, h, w))


def _brute_shared(codes, y, x):
    m, h, w = codes.shape
    out = np.zeros((h, w), dtype=int)
    for i in range(h):
        for j in range(w):
            for b in range(m):
                out[i, j] += int(codes[b, i, j] == codes[b, y, x])
    return out


@pytest.mark.parametrize("seed", range(5))
def test_shared_codebooks_and_region_match_brute_force(seed):
    codes = _codes(seed)
    m, h, w = codes.shape
    rng = np.random.default_rng(100 + seed)
    for _ in range(4):
        y, x = int(rng.integers(h)), int(rng.integers(w))
        brute = _brute_shared(codes, y, x)
        np.testing.assert_array_equal(shared_codebooks(codes, y, x), brute)
        assert shared_codebooks(codes, y, x)[y, x] == m
        # M - shared is the Eq. 9 distance of equss.eval.analysis
        pix = codes.reshape(m, -1).T
        dist = combination_distance(pix, np.repeat(codes[:, y, x][None], h * w, 0)).reshape(h, w)
        np.testing.assert_array_equal(m - shared_codebooks(codes, y, x), dist)
        for k in range(1, m + 1):
            region = shared_region(codes, y, x, k)
            expected = [[brute[i, j] >= k for j in range(w)] for i in range(h)]
            np.testing.assert_array_equal(region, np.array(expected))
        # k = M: exactly the pixels with the same combination
        same = np.array([[all(codes[b, i, j] == codes[b, y, x] for b in range(m)) for j in range(w)] for i in range(h)])
        np.testing.assert_array_equal(shared_region(torch.as_tensor(codes), y, x, m), same)


@pytest.mark.parametrize("seed", range(4))
def test_sharing_by_class_matches_brute_force(seed):
    codes = _codes(seed, m=5, h=6, w=6)
    n_classes = 4
    rng = np.random.default_rng(seed)
    classes = rng.integers(-1, n_classes, size=codes.shape[1:])
    classes[0, 0] = 255  # outside the classes: left out like -1
    y, x, k = 2, 3, 3
    got = sharing_by_class(codes, y, x, k, classes, n_classes)
    brute = _brute_shared(codes, y, x)
    region_total = 0
    counts = {}
    for c in range(n_classes):
        members = [(i, j) for i in range(6) for j in range(6) if classes[i, j] == c]
        assert got["pixels"][c] == len(members)
        if members:
            assert got["mean_shared"][c] == pytest.approx(sum(brute[i, j] for i, j in members) / len(members))
            inside = sum(brute[i, j] >= k for i, j in members)
            assert got["in_region"][c] == pytest.approx(inside / len(members))
        else:
            assert np.isnan(got["mean_shared"][c]) and np.isnan(got["in_region"][c])
            inside = 0
        counts[c] = inside
        region_total += inside
    for c in range(n_classes):
        assert got["region_share"][c] == pytest.approx(counts[c] / region_total)
    assert got["region_share"].sum() == pytest.approx(1.0)


def test_upsample_and_cell_of_are_inverse():
    codes = _codes(7, m=2, h=3, w=4)
    big = upsample_nearest(codes, (9, 10))
    assert big.shape == (2, 9, 10)
    for i in range(9):
        for j in range(10):
            ci, cj = cell_of((i, j), (9, 10), (3, 4))
            assert (ci, cj) == (i * 3 // 9, j * 4 // 10)
            np.testing.assert_array_equal(big[:, i, j], codes[:, ci, cj])


def test_bad_inputs_are_one_line_errors():
    codes = _codes(0)
    for call in (lambda: shared_codebooks(codes, 5, 0), lambda: shared_region(codes, 0, 0, 0),
                 lambda: shared_region(codes, 0, 0, 7), lambda: shared_codebooks(codes[0], 0, 0),
                 lambda: shared_codebooks(codes.astype(float), 0, 0),
                 lambda: sharing_by_class(codes, 0, 0, 1, np.zeros((2, 2), int), 3),
                 lambda: cell_of((10, 0), (9, 10), (3, 4))):
        with pytest.raises(EqussError) as exc:
            call()
        assert "\n" not in str(exc.value)
