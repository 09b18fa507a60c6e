"""Per-image confusion counts of an evaluation: what every later statistic needs.

Every evaluation (``eval*.json``, ``baseline.json``) writes, beside its JSON, one compressed
NumPy archive ``<name>.per_image.npz`` (``eval.json`` -> ``eval.per_image.npz``), named in the
JSON's ``per_image_file``.  It holds, for each evaluated group (``cluster``, ``linear``,
``cluster_crf``, ``linear_crf``):

* ``<group>``: an unsigned integer array ``(n_images, rows, n_classes)``, the pixel counts of
  each image in the space *before* Hungarian matching: rows are the predicted cluster
  (``n_classes + extra_clusters`` rows) for the cluster probe, the predicted class for the
  linear probe; columns the true class; the dtype is the smallest of uint8/16/32/64 that holds
  the largest count.  Pixels are counted under the evaluation's mask (ignore labels and, STEGO's
  quirk, predictions into an extra cluster dropped: :class:`~equss.eval.metrics.UnsupervisedMetrics`).
* ``image_ids`` (the dataset's sample ids, in evaluation order) and ``sequences`` (the group of
  correlated images each belongs to: :meth:`equss.data.base.SegDataset.sequence`; an image of a
  dataset that names none is its own sequence);
* ``settings``: a JSON string with, per group, ``n_classes``, ``extra_clusters``,
  ``compute_hungarian`` and ``stego_mask``, and the format version.

Why before matching: the Hungarian assignment is computed on the whole split's summed counts
(STEGO), so an image's own counts cannot be matched alone.  Summing the per-image matrices
gives the split's ``stats`` exactly, and matching that sum again (:meth:`PerImageConfusions.summary`,
the same :class:`UnsupervisedMetrics` code) reproduces the JSON's confusion, assignment, mIoU,
Accuracy and per-class IoU exactly.  A resample of the images (the bootstrap of
:mod:`equss.paper.claims`) re-weights the per-image matrices and applies the split's matching
(``class_rows`` / ``unmatched`` of :meth:`PerImageConfusions.matching`) held fixed.

Size: a CamVid evaluation (233 images, 11 classes, 448 px crops: counts up to 200,704, so
uint32) is 233 x 11 x 11 x 4 = 113 KB per group before compression; mostly zeros, it deflates
to a fraction of that.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from equss.eval.metrics import UnsupervisedMetrics

__all__ = ["PerImageConfusions", "per_image_path", "compact", "FORMAT", "SUFFIX"]

FORMAT = 1
SUFFIX = ".per_image.npz"
GROUPS = ("cluster", "linear", "cluster_crf", "linear_crf")


def per_image_path(json_path: str | os.PathLike) -> Path:
    """``RUN/eval_crf.json`` -> ``RUN/eval_crf.per_image.npz``."""
    path = Path(json_path)
    return path.with_name(path.stem + SUFFIX)


def compact(counts: np.ndarray) -> np.ndarray:
    """``counts`` (non-negative integers) in the smallest unsigned dtype that holds them."""
    counts = np.asarray(counts)
    if counts.size and counts.min() < 0:
        raise ValueError("counts must be non-negative")
    top = int(counts.max()) if counts.size else 0
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if top <= np.iinfo(dtype).max:
            return counts.astype(dtype)
    raise ValueError(f"count {top} does not fit in uint64")


@dataclass
class PerImageConfusions:
    """Per-image counts of one evaluation (module docstring).  ``groups[g]``: ``(n_images, rows,
    n_classes)`` counts; ``settings[g]``: the :class:`UnsupervisedMetrics` arguments of group ``g``."""

    image_ids: list[str]
    sequences: list[str]
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    settings: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self):
        self.image_ids = [str(i) for i in self.image_ids]
        self.sequences = [str(s) for s in self.sequences]
        if len(self.sequences) != len(self.image_ids):
            raise ValueError(f"{len(self.image_ids)} image ids but {len(self.sequences)} sequences")
        for g, a in self.groups.items():
            if a.ndim != 3 or a.shape[0] != len(self.image_ids):
                raise ValueError(f"group {g!r}: counts of shape {a.shape} for {len(self.image_ids)} images")

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, UnsupervisedMetrics], image_ids: Sequence[str],
                     sequences: Sequence[str | None] | None = None) -> "PerImageConfusions":
        """From metrics accumulated with ``per_image=True``; a sequence that is None (or no
        ``sequences``) makes the image its own."""
        ids = [str(i) for i in image_ids]
        seqs = [ids[k] if s is None else str(s) for k, s in enumerate(sequences or [None] * len(ids))]
        groups, settings = {}, {}
        for g, m in metrics.items():
            if not m.per_image:
                raise ValueError(f"group {g!r} was not accumulated with per_image=True")
            groups[g] = m.per_image_stats()
            settings[g] = {"n_classes": m.n_classes, "extra_clusters": m.extra_clusters,
                           "compute_hungarian": m.compute_hungarian, "stego_mask": m.stego_mask}
        return cls(ids, seqs, groups, settings)

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    # -- recomputing the evaluation's numbers
    def total(self, group: str) -> np.ndarray:
        """The split's counts of ``group`` (int64): the sum of the per-image matrices."""
        return self.groups[group].astype(np.int64).sum(0)

    def metrics(self, group: str, weights: Sequence[float] | None = None) -> UnsupervisedMetrics:
        """A :class:`UnsupervisedMetrics` holding the summed counts (``weights``: an integer count per
        image, e.g. a bootstrap resample's multiplicities); matched afresh by :meth:`~UnsupervisedMetrics.compute`."""
        counts = self.groups[group].astype(np.int64)
        stats = counts.sum(0) if weights is None else np.tensordot(np.asarray(weights, dtype=np.int64), counts, 1)
        return UnsupervisedMetrics.from_stats(stats, **self.settings[group])

    def summary(self, group: str) -> dict:
        """The numbers of the evaluation's JSON for ``group`` (mIoU, Accuracy, per_class_iou,
        assignment, confusion), recomputed from the per-image counts."""
        res = self.metrics(group).compute()
        return {k: res[k] for k in ("mIoU", "Accuracy", "per_class_iou", "assignment", "confusion")}

    def matching(self, group: str) -> dict:
        """The split-level matching of ``group``: ``class_rows`` (the row matched to each class),
        ``unmatched`` (rows summed into STEGO's extra row) and ``extra_row``."""
        m = self.metrics(group)
        m.compute()
        return {"class_rows": list(m.class_rows), "unmatched": list(m.unmatched),
                "extra_row": m.extra_clusters > 0 and m.compute_hungarian}

    # -- file
    def save(self, path: str | os.PathLike) -> Path:
        """Write the compressed archive atomically (no link followed)."""
        from equss.safeio import write_atomic

        arrays = {g: compact(a) for g, a in self.groups.items()}
        arrays["image_ids"] = np.array(self.image_ids, dtype=str)
        arrays["sequences"] = np.array(self.sequences, dtype=str)
        arrays["settings"] = np.array(json.dumps({"format": FORMAT, "groups": self.settings}, sort_keys=True))
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, lambda fh: fh.write(buf.getvalue()), binary=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PerImageConfusions":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["settings"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: per-image format {meta.get('format')}, this code reads {FORMAT}")
            settings = meta["groups"]
            groups = {g: z[g] for g in settings}
            return cls(z["image_ids"].tolist(), z["sequences"].tolist(), groups, settings)
