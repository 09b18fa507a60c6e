"""The test-set bootstrap behind claims.csv's ``boot_*`` columns (split off :mod:`equss.paper.claims`,
whose module docstring gives the design): per-image confusion counts of each run re-weighted by resampled
test images or whole sequences, the split-level Hungarian matching held fixed."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

BOOT_N = 2000      # resamples
BOOT_SEED = 0      # numpy.random.default_rng seed of every interval (the same draws for every claim)
METRIC_GROUPS = {"unsup_miou": ("cluster", "mIoU"), "unsup_acc": ("cluster", "Accuracy"),
                 "linear_miou": ("linear", "mIoU"), "linear_acc": ("linear", "Accuracy")}


@dataclass
class RunCounts:
    """One run's per-image counts of one evaluated group, with its split-level matching."""
    counts: np.ndarray            # (n_images, rows, n_classes), int64, before matching
    image_ids: list
    sequences: list
    class_rows: list              # row of ``counts`` matched to each class (split-level Hungarian)
    unmatched: list               # rows summed into STEGO's extra row
    extra_row: bool
    settings: dict                # UnsupervisedMetrics arguments (for ``rematch``)

    @classmethod
    def of(cls, per_image, group: str) -> "RunCounts":
        """From a :class:`equss.eval.per_image.PerImageConfusions` (the matching of its summed counts)."""
        m = per_image.matching(group)
        return cls(per_image.groups[group].astype(np.int64), list(per_image.image_ids), list(per_image.sequences),
                   m["class_rows"], m["unmatched"], m["extra_row"], dict(per_image.settings[group]))

    def reorder(self, ids: Sequence[str]) -> "RunCounts":
        pos = {i: k for k, i in enumerate(self.image_ids)}
        take = [pos[i] for i in ids]
        return RunCounts(self.counts[take], list(ids), [self.sequences[k] for k in take], self.class_rows,
                         self.unmatched, self.extra_row, self.settings)

    def values(self, weights: np.ndarray, metric: str, rematch: bool = False) -> np.ndarray:
        """``metric`` ("mIoU" or "Accuracy", percent) of every row of ``weights`` ((B, n_images) image
        multiplicities): the counts re-weighted and summed, matched with the split's matching held fixed
        (``rematch``: Hungarian re-fitted on each resample)."""
        from equss.eval.metrics import UnsupervisedMetrics, matched_histogram

        stats = np.tensordot(np.asarray(weights, dtype=np.int64), self.counts, 1)  # (B, rows, n_classes)
        if rematch:
            return np.array([UnsupervisedMetrics.from_stats(st, **self.settings).compute()[metric] for st in stats])
        hist = matched_histogram(stats, self.class_rows, self.unmatched, self.extra_row).astype(np.float64)
        if metric == "Accuracy":
            with np.errstate(divide="ignore", invalid="ignore"):
                return 100.0 * np.trace(hist, axis1=-2, axis2=-1) / hist.sum((-2, -1))
        if metric != "mIoU":
            raise ValueError(f"unknown metric {metric!r} (mIoU, Accuracy)")
        tp = np.diagonal(hist, axis1=-2, axis2=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = tp / (hist.sum(-2) + hist.sum(-1) - tp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample with every class absent: NaN
            return 100.0 * np.nanmean(iou, axis=-1)


def resample_weights(sequences: Sequence[str], n_boot: int, unit: str, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n_images)`` multiplicities of a bootstrap.  ``unit="image"``: resample ``b`` draws
    ``rng.integers(0, n, n)`` image positions (n images); ``unit="sequence"``: it draws
    ``rng.integers(0, k, k)`` of the k sequences (in order of first appearance) and every image weighs
    as often as its sequence was drawn.  Resamples are drawn one after the other from ``rng``."""
    seqs = [str(x) for x in sequences]
    n = len(seqs)
    if unit == "image":
        out = np.zeros((n_boot, n), dtype=np.int64)
        for b in range(n_boot):
            out[b] = np.bincount(rng.integers(0, n, n), minlength=n)
        return out
    if unit != "sequence":
        raise ValueError(f"unit must be 'image' or 'sequence', got {unit!r}")
    names = list(dict.fromkeys(seqs))
    of = np.array([names.index(x) for x in seqs])
    k = len(names)
    out = np.zeros((n_boot, n), dtype=np.int64)
    for b in range(n_boot):
        out[b] = np.bincount(rng.integers(0, k, k), minlength=k)[of]
    return out


@dataclass
class Bootstrap:
    estimate: float               # the statistic on the test set itself
    low: float                    # percentile interval
    high: float
    sd: float                     # sd of the resampled statistic
    unit: str                     # image | sequence
    n_units: int
    n_boot: int
    level: float


def bootstrap_interval(arms: Mapping[str, Sequence[RunCounts]], contrasts: Sequence[Mapping[str, float]],
                       metric: str, unit: str = "image", n_boot: int = BOOT_N, level: float = 0.95,
                       seed: int = BOOT_SEED, rematch: bool = False) -> Bootstrap:
    """Percentile bootstrap interval of ``min over contrasts of sum_arm w_arm * mean over the arm's runs of
    metric`` (one contrast: A - B is ``{A: 1, B: -1}``, one arm's mean ``{A: 1}``; several: "best", the margin
    to the closest) over test images (``unit="image"``) or whole sequences (``unit="sequence"``), every run
    re-weighted with the same draw (:func:`resample_weights`), each with its split-level matching held fixed
    (:meth:`RunCounts.values`).  All runs must hold the same images (they are aligned by image id)."""
    runs = [r for rs in arms.values() for r in rs]
    if not runs:
        raise ValueError("no runs")
    ids = runs[0].image_ids
    if any(sorted(r.image_ids) != sorted(ids) for r in runs):
        raise ValueError("the runs were evaluated on different images")
    aligned = {a: [r if r.image_ids == ids else r.reorder(ids) for r in rs] for a, rs in arms.items()}
    weights = resample_weights(runs[0].sequences, n_boot, unit, np.random.default_rng(seed))
    weights = np.concatenate([np.ones((1, len(ids)), dtype=np.int64), weights])  # row 0: the test set itself
    means = {a: np.mean([r.values(weights, metric, rematch) for r in rs], axis=0) for a, rs in aligned.items()}
    stat = np.min([sum(w * means[a] for a, w in c.items()) for c in contrasts], axis=0)
    boot = stat[1:]
    low, high = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    n_units = len(ids) if unit == "image" else len(set(runs[0].sequences))
    return Bootstrap(float(stat[0]), float(low), float(high), float(np.std(boot, ddof=1)), unit, n_units, n_boot,
                     level)


class PerImageRecords:
    """The per-image counts of a results folder's records, loaded on demand: ``get(run, eval_file)``."""

    def __init__(self, runs_dir):
        from pathlib import Path

        self.root = Path(runs_dir)
        self._cache: dict = {}

    def files(self) -> list:
        from equss.eval.per_image import SUFFIX

        return sorted(self.root.glob(f"*/*{SUFFIX}")) if self.root.is_dir() else []

    def get(self, run: str, eval_file: str):
        from equss.eval.per_image import PerImageConfusions, per_image_path

        key = (str(run), str(eval_file))
        if key not in self._cache:
            path = per_image_path(self.root / key[0] / key[1])
            self._cache[key] = PerImageConfusions.load(path) if path.is_file() else None
        return self._cache[key]
