import itertools

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from equss.eval.analysis import (class_distance_matrix, codeword_entropy, codeword_frequency,
                            combination_distance, histogram_entropy, per_class_entropy)


def test_codeword_entropy_matches_scipy():
    rng = np.random.default_rng(0)
    k, m = 16, 5
    codes = rng.integers(0, k, (3000, m)) % (np.arange(m) + 2)  # different spreads per book
    expected = sum(entropy(np.bincount(codes[:, j], minlength=k), base=2) for j in range(m))
    assert codeword_entropy(codes, k) == pytest.approx(expected, rel=1e-12)
    assert codeword_entropy(torch.from_numpy(codes).view(30, 100, m), k) == pytest.approx(expected, rel=1e-12)
    freq = codeword_frequency(codes, k)
    assert freq.shape == (m, k)
    for j in range(m):
        np.testing.assert_array_equal(freq[j], np.bincount(codes[:, j], minlength=k))
    assert codeword_entropy(np.zeros((10, 4), int), k) == 0.0


def test_per_class_entropy():
    rng = np.random.default_rng(1)
    k = 8
    codes = rng.integers(0, k, (2000, 3))
    labels = rng.integers(-1, 4, 2000)
    codes[labels == 2] = 5  # a constant class: 0 bits
    out = per_class_entropy(codes, labels, k)
    assert sorted(out) == [0, 1, 2, 3]
    assert out[2] == 0.0
    for c in (0, 1, 3):
        sel = codes[labels == c]
        exp = sum(entropy(np.bincount(sel[:, j], minlength=k), base=2) for j in range(3))
        assert out[c] == pytest.approx(exp)


def test_histogram_entropy_matches_numpy_loop():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5000, 7)) * np.arange(1, 8)
    x[:, 3] = 1.5  # constant dimension
    for bins in (16, 256):
        exp = sum(entropy(np.histogram(x[:, d], bins=bins)[0], base=2) for d in range(7))
        assert histogram_entropy(x, bins=bins) == pytest.approx(exp, rel=1e-12)
    exp = sum(entropy(np.histogram(x[:, d], bins=32, range=(-4, 4))[0], base=2) for d in range(7))
    assert histogram_entropy(x, bins=32, value_range=(-4, 4)) == pytest.approx(exp, rel=1e-12)


def test_combination_distance_brute():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, (6, 10))
    b = rng.integers(0, 4, (9, 10))
    d = combination_distance(a[:, None], b[None])
    brute = [[sum(int(a[i, m] != b[j, m]) for m in range(10)) for j in range(9)] for i in range(6)]
    assert d.tolist() == brute
    dt = combination_distance(torch.from_numpy(a)[:, None], torch.from_numpy(b)[None])
    assert dt.tolist() == brute


def test_class_distance_matrix_brute():
    rng = np.random.default_rng(4)
    n, m, k, c = 600, 6, 5, 4
    labels = rng.integers(-1, c - 1, n)  # class 3 absent
    codes = rng.integers(0, k, (n, m))
    codes[labels == 0, :3] = 0
    for samples in (None, 50):
        d = class_distance_matrix(codes, labels, c, samples_per_class=samples, seed=7, codebook_size=k)
        sim = class_distance_matrix(codes, labels, c, samples_per_class=samples, seed=7, similarity=True,
                                    codebook_size=k)
        picked = []
        r = np.random.default_rng(7)
        for cls in range(c):
            idx = np.flatnonzero(labels == cls)
            if samples is not None and idx.size > samples:
                idx = np.sort(r.choice(idx, samples, replace=False))
            picked.append(idx)
        for a, b in itertools.product(range(c - 1), repeat=2):
            pairs = [int(np.sum(codes[i] != codes[j])) for i in picked[a] for j in picked[b]]
            assert d[a, b] == pytest.approx(np.mean(pairs))
            assert sim[a, b] == pytest.approx(m - np.mean(pairs))
        assert np.isnan(d[3]).all() and np.isnan(d[:, 3]).all()
        assert d[0, 0] < d[1, 1]
