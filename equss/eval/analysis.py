"""Analyses of Sec. 5 of the paper: codeword entropy (Eq. 6-7, Fig. 4) and codeword
combination distance (Eq. 8-9, Fig. 5).

Sources: the paper and the official analysis scripts of
``pitlover/Expand-and-Quantize-for-Unsupervised-Semantic-Segmentation@da82dea``:

* ``cross_entropy.py``: pixels of each class (CocoStuff, label 255 ignored; 10 000
  random pixels per class per run, 10 runs summed) -> for every codebook the PMF of
  code indices over ``K`` codewords -> ``sum(-p * log2(p + 1e-8))`` summed over the M
  codebooks.  :func:`per_class_entropy` computes this with the exact ``0 log 0 = 0``
  (the ``1e-8`` changes a result by < 1e-6 bits per codeword).
* For STEGO (continuous 70-d codes) the scripts hold no working histogram code: commit
  ``986f5d8`` of ``cross_entropy.py`` (``file_name = "stego"``, ``pq_num = 70``) counts
  ``torch.unique`` values per dimension, which for float features neither defines bins
  nor runs (``astype`` on a tensor).  :func:`histogram_entropy` therefore uses an
  explicit, documented measure: per dimension, a histogram with ``bins`` equal-width
  bins over that dimension's range, Shannon entropy in bits, summed over dimensions.
  Default ``bins=256`` matches the K=256 codewords of the COCO EQUSS preset, so one
  dimension and one codebook have the same alphabet size (at most 8 bits each).
* ``edit_distance.py``: per class a random sample of ``num`` pixels (label 255
  ignored), and for every pair of classes (a, b) the mean over **all** sample pairs,
  self-pairs included when a == b, of the number of codebooks whose indices are
  **equal** (``np.sum(comp_A == comp_B, axis=2)``), a similarity; the plot then
  row-normalises the matrix.  The paper's Eq. 9 is the Hamming distance (number of
  differing codebooks) = M - that similarity.  :func:`class_distance_matrix` returns the
  distance by default and the official similarity with ``similarity=True``.  (The
  official script pads classes with fewer than ``num`` pixels with all-zero code rows;
  we use only real pixels.)
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "codeword_frequency",
    "codeword_entropy",
    "per_class_entropy",
    "histogram_entropy",
    "combination_distance",
    "class_distance_matrix",
]


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _codes_2d(codes) -> np.ndarray:
    c = _np(codes)
    if c.ndim == 1:
        c = c[:, None]
    return c.reshape(-1, c.shape[-1]).astype(np.int64)


def _entropy_bits(counts: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in bits of count vectors along ``axis`` (0 log 0 = 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=axis, keepdims=True)
    p = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    logp = np.log2(p, out=np.zeros_like(p), where=p > 0)
    return -(p * logp).sum(axis=axis)


def codeword_frequency(codes, codebook_size: int) -> np.ndarray:
    """Counts ``(M, K)``: how often each codeword of each codebook is used (Fig. 4b).

    ``codes``: integer indices ``(..., M)``.
    """
    c = _codes_2d(codes)
    m = c.shape[1]
    if c.size and (c.min() < 0 or c.max() >= codebook_size):
        raise ValueError(f"code indices must lie in [0, {codebook_size})")
    flat = (np.arange(m)[None, :] * codebook_size + c).reshape(-1)
    return np.bincount(flat, minlength=m * codebook_size).reshape(m, codebook_size)


def codeword_entropy(codes, codebook_size: int) -> float:
    """J(X) of Eq. 6-7: sum over the M codebooks of the entropy (bits) of the code PMF."""
    return float(_entropy_bits(codeword_frequency(codes, codebook_size), axis=1).sum())


def per_class_entropy(codes, labels, codebook_size: int) -> dict[int, float]:
    """Eq. 7 per ground-truth class (Fig. 4a): ``{class: bits}``; labels < 0 ignored."""
    c = _codes_2d(codes)
    lab = _np(labels).reshape(-1).astype(np.int64)
    if lab.shape[0] != c.shape[0]:
        raise ValueError("codes and labels hold a different number of pixels")
    return {int(k): codeword_entropy(c[lab == k], codebook_size) for k in np.unique(lab[lab >= 0])}


def histogram_entropy(features, bins: int = 256, value_range=None) -> float:
    """Entropy (bits) of continuous features: per-dimension histogram entropy, summed.

    Args:
        features: ``(..., D)`` floats (e.g. STEGO 70-d codes per pixel).
        bins: equal-width bins per dimension (default 256, see module docstring).
        value_range: None (each dimension's own min/max, like ``numpy.histogram``), a
            pair ``(lo, hi)`` for all dimensions, or arrays ``(lo[D], hi[D])`` (pass the
            ranges of all pixels to compare classes on the same bins).
    """
    x = _np(features).astype(np.float64)
    x = x.reshape(-1, x.shape[-1])
    if value_range is None:
        lo, hi = x.min(0), x.max(0)
    else:
        lo = np.broadcast_to(np.asarray(value_range[0], dtype=np.float64), (x.shape[1],))
        hi = np.broadcast_to(np.asarray(value_range[1], dtype=np.float64), (x.shape[1],))
    lo, hi = lo.copy(), hi.copy()
    flat = hi <= lo  # numpy.histogram widens an empty range by 0.5 each side
    lo[flat] -= 0.5
    hi[flat] += 0.5
    # same arithmetic as numpy.histogram's equal-width fast path
    idx = np.floor((x - lo) * (bins / (hi - lo))).astype(np.int64)
    idx[idx == bins] = bins - 1
    inside = (x >= lo) & (x <= hi)
    edges = [np.linspace(lo[d], hi[d], bins + 1) for d in range(x.shape[1])]
    total = 0.0
    for d in range(x.shape[1]):
        i = idx[inside[:, d], d]
        v = x[inside[:, d], d]
        e = edges[d]
        i = np.clip(i, 0, bins - 1)
        i[v < e[i]] -= 1  # numpy's edge corrections
        i[(v >= e[np.minimum(i + 1, bins)]) & (i != bins - 1)] += 1
        total += float(_entropy_bits(np.bincount(i, minlength=bins)))
    return total


def combination_distance(codes_a, codes_b):
    """Eq. 8-9: number of codebooks whose indices differ (Hamming), broadcast over ``(..., M)``."""
    if hasattr(codes_a, "ne") and hasattr(codes_b, "ne"):  # torch tensors
        return codes_a.ne(codes_b).sum(-1)
    return (_np(codes_a) != _np(codes_b)).sum(-1)


def _sample_per_class(lab: np.ndarray, n_classes: int, samples: int | None, rng) -> list[np.ndarray]:
    out = []
    for k in range(n_classes):
        idx = np.flatnonzero(lab == k)
        if samples is not None and idx.size > samples:
            idx = np.sort(rng.choice(idx, samples, replace=False))
        out.append(idx)
    return out


def class_distance_matrix(codes, labels, n_classes: int, samples_per_class: int | None = 10000,
                          seed: int = 0, codebook_size: int | None = None,
                          similarity: bool = False) -> np.ndarray:
    """``(C, C)`` mean combination distance between sampled pixels of each class pair (Fig. 5).

    Entry (a, b) is the mean of Eq. 9 over all pairs (i in sample(a), j in sample(b)),
    self-pairs included when a == b, as in the official ``edit_distance.py``.  The mean
    is computed exactly from per-class code frequencies,
    ``M - sum_m sum_k f_a[m, k] f_b[m, k]``, so memory is ``O(C M K)`` whatever the
    sample size.  Classes without pixels give NaN rows/columns.  ``similarity=True``
    returns the official quantity, the mean number of equal codebooks.
    """
    c = _codes_2d(codes)
    lab = _np(labels).reshape(-1).astype(np.int64)
    m = c.shape[1]
    k = int(codebook_size) if codebook_size is not None else int(c.max()) + 1 if c.size else 1
    rng = np.random.default_rng(seed)
    freq = np.full((n_classes, m, k), np.nan)
    for cls, idx in enumerate(_sample_per_class(lab, n_classes, samples_per_class, rng)):
        if idx.size:
            freq[cls] = codeword_frequency(c[idx], k) / idx.size
    matches = np.einsum("amk,bmk->ab", freq, freq)
    return matches if similarity else m - matches
