"""Unsupervised segmentation metrics with Hungarian matching.

A re-implementation of STEGO ``src/utils.py`` ``UnsupervisedMetrics``
(``mhamilton723/STEGO@eb4d6b5``); the official EQUSS ``model/metric.py``
``UnSegMetrics`` (``pitlover/...@da82dea``) is the same computation.  Facts reproduced:

* Statistics: an ``(n_classes + extra_clusters) x n_classes`` count matrix ``stats``
  with rows = predicted cluster, columns = true class.
* Mask: a pixel counts only if ``0 <= target < n_classes`` **and**
  ``0 <= pred < n_classes``.  With extra clusters this silently drops every pixel
  predicted into a cluster index ``>= n_classes`` (a STEGO quirk, kept by default;
  ``stego_mask=False`` keeps them).
* Hungarian: ``scipy.optimize.linear_sum_assignment(stats, maximize=True)``.
  ``extra_clusters == 0``: ``histogram = stats[argsort(col_ind)]`` (row ``i`` is the
  cluster matched to class ``i``).  ``extra_clusters > 0``: rows are the clusters of the
  transposed assignment, one per class, plus one row summing the unmatched clusters,
  plus a zero column -> ``(n+1) x (n+1)``.
* ``IoU = tp / (tp + fp + fn)`` per row of the histogram, NaN (class absent and never
  predicted) dropped from the mean; ``Accuracy = sum(tp) / sum(histogram)``; both in
  percent.  With extra clusters the extra row takes part in the mean when it is not NaN
  (it is NaN under the STEGO mask, because its pixels were dropped).
* ``compute_hungarian=False`` (linear probe): identity mapping, ``histogram = stats``.

``assignment`` (cluster -> class, -1 for unmatched clusters) is the mapping that the
Hungarian step defines.  STEGO's own ``map_clusters`` inserts the -1 entries one position
too late (``np.insert(..., missing + 1, -1)``); we return the correct mapping.

Per-image counts (``per_image=True``): every ``update`` also keeps one count matrix per image
(the first axis of the batch), in the same *cluster* space as ``stats`` (before matching:
the Hungarian step needs the whole split).  They sum exactly to ``stats``, so
:meth:`UnsupervisedMetrics.from_stats` on their sum reproduces every number of
:meth:`compute`; :func:`matched_histogram` + :func:`scores` recompute the numbers of any
re-weighting of the images with the split's matching held fixed (``class_rows`` /
``unmatched`` after :meth:`compute`), as the bootstrap in :mod:`equss.paper.claims` does.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["UnsupervisedMetrics", "matched_histogram", "scores"]


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class UnsupervisedMetrics:
    """Accumulate a confusion matrix and report Hungarian-matched mIoU / accuracy.

    Args:
        n_classes: number of ground-truth classes.
        extra_clusters: clusters beyond ``n_classes`` (STEGO ``cfg.extra_clusters``).
        compute_hungarian: False for the linear probe (identity mapping).
        stego_mask: drop pixels whose prediction is ``>= n_classes`` (STEGO behaviour).
    """

    def __init__(self, n_classes: int, extra_clusters: int = 0, compute_hungarian: bool = True,
                 stego_mask: bool = True, per_image: bool = False):
        if not compute_hungarian and extra_clusters:
            raise ValueError("compute_hungarian=False needs extra_clusters=0 (identity mapping)")
        self.n_classes = int(n_classes)
        self.extra_clusters = int(extra_clusters)
        self.compute_hungarian = compute_hungarian
        self.stego_mask = stego_mask
        self.per_image = per_image
        self.stats = np.zeros((self.n_clusters, self.n_classes), dtype=np.int64)
        self.images: list[np.ndarray] = []  # per_image: one (n_clusters, n_classes) count matrix per image
        self.histogram: np.ndarray | None = None
        self.assignment: list[int] | None = None
        self.class_rows: list[int] | None = None  # after compute: the cluster (row of stats) matched to each class
        self.unmatched: list[int] = []            # after compute: clusters summed into the extra row

    @classmethod
    def from_stats(cls, stats, n_classes: int, extra_clusters: int = 0, compute_hungarian: bool = True,
                   stego_mask: bool = True) -> "UnsupervisedMetrics":
        """An instance holding the counts ``stats`` (e.g. the sum of per-image counts)."""
        m = cls(n_classes, extra_clusters=extra_clusters, compute_hungarian=compute_hungarian, stego_mask=stego_mask)
        stats = np.asarray(stats)
        if stats.shape != m.stats.shape:
            raise ValueError(f"stats of shape {stats.shape}, expected {m.stats.shape}")
        m.stats += stats.astype(np.int64)
        return m

    @property
    def n_clusters(self) -> int:
        return self.n_classes + self.extra_clusters

    def reset(self) -> None:
        self.stats[:] = 0
        self.images = []
        self.histogram = None
        self.assignment = None
        self.class_rows, self.unmatched = None, []

    def update(self, preds, target) -> None:
        """Add predictions (cluster or class indices) and targets of any equal size; with
        ``per_image`` the first axis indexes the images (``(B, H, W)``) and each image's counts
        are kept as well."""
        pred = _to_numpy(preds)
        images = pred.shape[0] if self.per_image and pred.ndim > 1 else 1
        if self.per_image and pred.ndim < 2:
            raise ValueError("per_image counts need predictions with an image axis first (B, H, W)")
        pred = pred.reshape(-1).astype(np.int64)
        actual = _to_numpy(target).reshape(-1).astype(np.int64)
        if pred.shape != actual.shape:
            raise ValueError(f"preds ({pred.size}) and target ({actual.size}) differ in size")
        upper = self.n_classes if self.stego_mask else self.n_clusters
        mask = (actual >= 0) & (actual < self.n_classes) & (pred >= 0) & (pred < upper)
        idx = pred[mask] * self.n_classes + actual[mask]
        if not self.per_image:
            self.stats += np.bincount(idx, minlength=self.stats.size).reshape(self.stats.shape)
            return
        image = np.repeat(np.arange(images), pred.size // images)[mask]
        counts = np.bincount(image * self.stats.size + idx, minlength=images * self.stats.size)
        counts = counts.reshape(images, *self.stats.shape)
        self.images.extend(counts)
        self.stats += counts.sum(0)

    def per_image_stats(self) -> np.ndarray:
        """The kept per-image counts, ``(n_images, n_clusters, n_classes)`` int64 (rows: cluster or
        predicted class before matching, columns: true class); they sum to ``stats``."""
        if not self.images:
            return np.zeros((0, *self.stats.shape), dtype=np.int64)
        return np.stack(self.images)

    def merge(self, other: "UnsupervisedMetrics") -> "UnsupervisedMetrics":
        """Add another instance's counts (e.g. from a parallel worker); returns self."""
        if other.stats.shape != self.stats.shape:
            raise ValueError("cannot merge metrics of different shapes")
        self.stats += other.stats
        self.images += other.images
        return self

    def _histogram(self) -> tuple[np.ndarray, list[int]]:
        n, stats = self.n_classes, self.stats
        if not self.compute_hungarian:
            self.class_rows, self.unmatched = list(range(n)), []
            return stats.copy(), list(range(n))
        rows, cols = linear_sum_assignment(stats, maximize=True)
        assignment = [-1] * self.n_clusters
        for r, c in zip(rows, cols):
            assignment[int(r)] = int(c)
        if self.extra_clusters == 0:
            self.class_rows, self.unmatched = [int(r) for r in rows[np.argsort(cols)]], []
        else:
            # STEGO: second assignment on the transpose, one cluster per class (in class order)
            _, cluster_of_class = linear_sum_assignment(stats.T, maximize=True)
            self.class_rows = [int(r) for r in cluster_of_class]
            self.unmatched = sorted(set(range(self.n_clusters)) - set(rows.tolist()))
        return matched_histogram(stats, self.class_rows, self.unmatched, self.extra_clusters > 0), assignment

    def compute(self) -> dict:
        """``{"mIoU", "Accuracy"}`` in percent plus per-class IoU, assignment, confusion.

        ``confusion`` is the ``n_classes x n_classes`` matched matrix (rows: predicted
        class after matching, columns: true class); ``histogram`` is STEGO's full matrix.
        """
        hist, self.assignment = self._histogram()
        self.histogram = hist
        return {
            **scores(hist, self.n_classes),
            "assignment": list(self.assignment),
            "confusion": hist[: self.n_classes, : self.n_classes].astype(np.int64).tolist(),
            "histogram": hist.tolist(),
        }

    def map_clusters(self, clusters):
        """Map cluster indices to class indices (-1 for unmatched clusters); call compute first."""
        if self.assignment is None:
            self.compute()
        table = np.asarray(self.assignment, dtype=np.int64)
        out = table[_to_numpy(clusters).astype(np.int64)]
        if hasattr(clusters, "detach"):
            import torch

            return torch.from_numpy(out).to(clusters.device)
        return out


def matched_histogram(stats, class_rows, unmatched=(), extra_row: bool = False) -> np.ndarray:
    """STEGO's matched histogram of cluster counts ``stats`` (``(..., n_clusters, n_classes)``, any
    leading batch axes) for a fixed matching: row ``c`` is the cluster ``class_rows[c]``; with
    ``extra_row`` (extra clusters) one more row sums the ``unmatched`` clusters and a zero column
    makes it ``(n + 1) x (n + 1)``."""
    stats = np.asarray(stats)
    n = stats.shape[-1]
    matched = stats[..., list(class_rows), :]
    if not extra_row:
        return matched
    hist = np.zeros((*stats.shape[:-2], n + 1, n + 1), dtype=stats.dtype)
    hist[..., :n, :n] = matched
    hist[..., n, :n] = stats[..., list(unmatched), :].sum(-2)
    return hist


def scores(hist, n_classes: int) -> dict:
    """mIoU, Accuracy (percent) and per-class IoU of a matched histogram (rows predicted, columns
    true): ``IoU = tp / (tp + fp + fn)`` per row, NaN dropped from the mean (the extra row of
    :func:`matched_histogram` included when not NaN, as STEGO)."""
    h = np.asarray(hist).astype(np.float64)
    tp = np.diag(h)
    fp = h.sum(0) - tp
    fn = h.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (tp + fp + fn)
        acc = tp.sum() / h.sum()
    valid = iou[~np.isnan(iou)]
    miou = float(valid.mean()) if valid.size else math.nan
    return {"mIoU": 100.0 * miou, "Accuracy": 100.0 * float(acc),
            "per_class_iou": [100.0 * float(v) for v in iou[:n_classes]]}
