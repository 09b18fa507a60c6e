"""Codeword sharing between pixels: Eq. 8-9 of the paper made visible for one picked pixel.

A pixel's *codeword combination* (Eq. 8) is its M product-quantiser indices, one per
codebook; the distance of two pixels (Eq. 9) is the number of codebooks whose indices
differ.  For a picked pixel ``p`` these functions compute, over a code map ``codes`` of
shape ``(M, H, W)`` (e.g. ``EQUSS.forward(feats).codes[0]``, at feature resolution):

* :func:`shared_codebooks`: for every pixel ``q`` the number of codebooks in which ``q``
  has the same index as ``p`` (``M - distance(p, q)``);
* :func:`shared_region`: the pixels that share ``p``'s code in at least ``k`` of the M
  codebooks (``k = M``: the same combination, ``k = 1``: any one codebook);
* :func:`sharing_by_class`: per class of a class map (ground truth, or the model's own
  classes when there are no labels), how many codebooks its pixels share with ``p`` on
  average and what fraction of them lies in the shared region, plus which classes the
  shared region is made of: how the code space lines up with the classes.

Everything is integer counting on numpy arrays (torch tensors are accepted);
``tests/test_codewords.py`` holds them to a brute-force loop over pixels and codebooks.
"""
from __future__ import annotations

import numpy as np

from equss.errors import EqussError

__all__ = ["shared_codebooks", "shared_region", "sharing_by_class", "upsample_nearest", "cell_of"]


def _codes(codes) -> np.ndarray:
    if hasattr(codes, "detach"):
        codes = codes.detach().cpu().numpy()
    c = np.asarray(codes)
    if c.ndim != 3:
        raise EqussError(f"a code map must have shape (M, H, W), got {tuple(c.shape)}")
    if not np.issubdtype(c.dtype, np.integer):
        raise EqussError(f"a code map holds codeword indices (integers), got {c.dtype}")
    return c


def _pixel(c: np.ndarray, y: int, x: int) -> tuple[int, int]:
    _, h, w = c.shape
    y, x = int(y), int(x)
    if not (0 <= y < h and 0 <= x < w):
        raise EqussError(f"pixel (row {y}, column {x}) is outside the {h} x {w} code map")
    return y, x


def shared_codebooks(codes, y: int, x: int) -> np.ndarray:
    """``(H, W)`` int: in how many of the M codebooks each pixel has the index of pixel ``(y, x)``
    (M minus the Eq. 9 distance to it; the picked pixel itself gets M)."""
    c = _codes(codes)
    y, x = _pixel(c, y, x)
    return (c == c[:, y, x][:, None, None]).sum(0)


def shared_region(codes, y: int, x: int, k: int) -> np.ndarray:
    """``(H, W)`` bool: the pixels that share pixel ``(y, x)``'s code in at least ``k`` codebooks."""
    c = _codes(codes)
    m = c.shape[0]
    if not 1 <= int(k) <= m:
        raise EqussError(f"k must be between 1 and the number of codebooks {m}, got {k}")
    return shared_codebooks(c, y, x) >= int(k)


def sharing_by_class(codes, y: int, x: int, k: int, classes, n_classes: int) -> dict[str, np.ndarray]:
    """How the pixels that share ``(y, x)``'s code are spread over the classes of ``classes``.

    ``classes``: ``(H, W)`` class ids at the code map's resolution (values outside
    ``0..n_classes-1``, e.g. -1 or 255, are left out).  Returns arrays of length ``n_classes``:

    * ``pixels``: pixels of each class;
    * ``mean_shared``: mean number of codebooks they share with the picked pixel (NaN for an
      absent class);
    * ``in_region``: the fraction of each class's pixels inside the shared region (>= k codebooks);
    * ``region_share``: the fraction of the shared region (class pixels only) that each class
      makes up (sums to 1 when the region holds any class pixel).
    """
    c = _codes(codes)
    cls = np.asarray(classes.detach().cpu().numpy() if hasattr(classes, "detach") else classes)
    if cls.shape != c.shape[1:]:
        raise EqussError(f"the class map {tuple(cls.shape)} must have the code map's size {tuple(c.shape[1:])}")
    shared = shared_codebooks(c, y, x)
    region = shared_region(c, y, x, k)
    valid = (cls >= 0) & (cls < n_classes)
    ids = np.where(valid, cls, 0).astype(np.int64).ravel()
    w = valid.ravel().astype(np.float64)
    pixels = np.bincount(ids, weights=w, minlength=n_classes)
    shared_sum = np.bincount(ids, weights=w * shared.ravel(), minlength=n_classes)
    region_count = np.bincount(ids, weights=w * region.ravel(), minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_shared = np.where(pixels > 0, shared_sum / np.maximum(pixels, 1), np.nan)
        in_region = np.where(pixels > 0, region_count / np.maximum(pixels, 1), np.nan)
    total = region_count.sum()
    region_share = region_count / total if total > 0 else np.zeros(n_classes)
    return {"pixels": pixels.astype(np.int64), "mean_shared": mean_shared, "in_region": in_region,
            "region_share": region_share}


def upsample_nearest(array, size: tuple[int, int]) -> np.ndarray:
    """``(..., h, w)`` -> ``(..., H, W)`` by nearest neighbour: output pixel ``(i, j)`` takes cell
    ``(floor(i * h / H), floor(j * w / W))`` (a code map shown over the image it came from)."""
    a = np.asarray(array)
    h, w = a.shape[-2:]
    H, W = int(size[0]), int(size[1])
    rows = (np.arange(H) * h) // H
    cols = (np.arange(W) * w) // W
    return a[..., rows[:, None], cols[None, :]]


def cell_of(pixel_yx: tuple[int, int], image_hw: tuple[int, int], codes_hw: tuple[int, int]) -> tuple[int, int]:
    """The code-map cell of an image pixel (the inverse of :func:`upsample_nearest`'s mapping)."""
    (y, x), (H, W), (h, w) = pixel_yx, image_hw, codes_hw
    if not (0 <= y < H and 0 <= x < W):
        raise EqussError(f"pixel (row {y}, column {x}) is outside the {H} x {W} image")
    return (int(y) * h) // H, (int(x) * w) // W
