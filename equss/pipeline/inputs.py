"""Inputs of a run: backbone, datasets, feature caches, kNN positives, and batches.

Two input paths give the same batches (same images, same positives, same numbers):

* ``online``: images go through the frozen backbone at every step;
* ``cache``: backbone features are read from the on-disk float16 feature cache
  (:mod:`equss.data.features`), so no backbone runs at all.

The online path rounds features to float16 as the cache stores them, so that both paths
see identical numbers and give identical losses on the same batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from equss.config import Config
from equss.data.knn import sample_neighbors
from equss.errors import EqussError


class FirstN(Dataset):
    """The first ``n`` items of a dataset (smoke scale), with its own cache key."""

    def __init__(self, base, n: int):
        self.base, self.n = base, min(n, len(base))
        for attr in ("n_classes", "class_names"):
            setattr(self, attr, getattr(base, attr))
        self.preproc_id = f"{base.preproc_id}|first{self.n}"
        self.files = list(getattr(base, "files", []))[: self.n]

    def fingerprint(self):
        return self.base.fingerprint(self.n) if hasattr(self.base, "fingerprint") else None

    def cache_args(self):
        return self.base.cache_args() + ["--max-images", str(self.n)]

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i >= self.n:
            raise IndexError(i)
        return self.base[i]

    def sample_id(self, i: int) -> str:
        return sample_id_of(self.base, i)

    def sequence(self, i: int) -> str | None:
        return sequence_of(self.base, i)


def sample_id_of(dataset, i: int) -> str:
    """``dataset.sample_id(i)``, or the index for a dataset without ids."""
    return dataset.sample_id(i) if hasattr(dataset, "sample_id") else str(i)


def sequence_of(dataset, i: int) -> str | None:
    """``dataset.sequence(i)``, or None for a dataset without sequences."""
    return dataset.sequence(i) if hasattr(dataset, "sequence") else None


class HFlip(Dataset):
    """The horizontally flipped dataset (for flip-averaged evaluation from the cache)."""

    def __init__(self, base):
        self.base = base
        for attr in ("n_classes", "class_names"):
            setattr(self, attr, getattr(base, attr))
        self.preproc_id = f"{base.preproc_id}|hflip"
        self.files = list(getattr(base, "files", []))

    def fingerprint(self):
        return self.base.fingerprint() if hasattr(self.base, "fingerprint") else None

    def cache_args(self):
        return self.base.cache_args() + ["--flip"]

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        img, label = self.base[i][:2]
        return img.flip(-1), label.flip(-1)

    def sample_id(self, i: int) -> str:
        return sample_id_of(self.base, i)

    def sequence(self, i: int) -> str | None:
        return sequence_of(self.base, i)


def make_backbone(cfg: Config, device: torch.device | str = "cpu", pretrained: bool = True):
    from equss.backbones.vit import load_backbone

    return load_backbone(cfg.train.backbone, weights=cfg.train.weights, device=device, pretrained=pretrained)


def make_dataset(cfg: Config, split: str, resolution: int | None = None, train: bool = False):
    from equss.data import get_dataset

    ds = get_dataset(cfg.data.dataset, split, data_root=cfg.data.data_root,
                     resolution=resolution or (cfg.data.resolution if train else cfg.data.eval_resolution),
                     five_crop=bool(train and cfg.data.five_crop))
    if len(ds) == 0:
        raise EqussError(f"dataset {cfg.data.dataset!r} split {split!r} is empty; run `equss prepare {cfg.data.dataset}`")
    if cfg.data.max_images:
        ds = FirstN(ds, cfg.data.max_images)
    return ds


def resize_labels(labels: torch.Tensor, size) -> torch.Tensor:
    """Nearest-neighbour resize of (B, H, W) labels to ``size`` (int or (h, w)); -1 stays -1."""
    size = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    if tuple(labels.shape[-2:]) == size:
        return labels
    lab = torch.as_tensor(labels)[:, None].float()
    return torch.nn.functional.interpolate(lab, size=size, mode="nearest")[:, 0].long()


@dataclass
class Batch:
    feats: torch.Tensor       # (B, C, h, w) float32
    feats_pos: torch.Tensor   # (B, C, h, w)
    labels: torch.Tensor      # (B, R, R) int64, -1 ignore
    index: torch.Tensor       # (B,) dataset indices
    index_pos: torch.Tensor   # (B,)


class BatchSource:
    """Deterministic training batches (indices and kNN positives from one torch.Generator).

    The generator state is part of every checkpoint, so a resumed run draws the same
    batches as an uninterrupted one.
    """

    def __init__(self, cfg: Config, dataset, nns: np.ndarray, cache=None, backbone=None,
                 device: torch.device | str = "cpu"):
        if cache is None and backbone is None:
            raise ValueError("need a feature cache or a backbone")
        self.cfg, self.dataset, self.nns, self.cache, self.backbone = cfg, dataset, nns, cache, backbone
        self.device = torch.device(device)
        self.n = len(dataset)
        self.generator = torch.Generator().manual_seed(cfg.train.seed)
        self._order: list[int] = []

    # -- state for checkpoints
    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": list(self._order)}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._order = list(state["order"])

    def next_indices(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = []
        while len(idx) < batch_size:
            if not self._order:
                self._order = torch.randperm(self.n, generator=self.generator).tolist()
            idx.append(self._order.pop())
        index = torch.tensor(idx)
        k = min(self.cfg.data.num_neighbors, self.nns.shape[1] - 1)
        if k < 1:  # a kNN table of rank 0 only (one image): the image is its own positive
            return index, index.clone()
        return index, sample_neighbors(self.nns, index, k, generator=self.generator)

    def _labels(self, labels: torch.Tensor) -> torch.Tensor:
        size = self.cfg.data.probe_label_size
        return resize_labels(labels, size) if size else labels

    def _online_feats(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        items = [self.dataset[i] for i in index.tolist()]
        imgs = torch.stack([it[0] for it in items]).to(self.device)
        labels = torch.stack([torch.as_tensor(it[1]) for it in items])
        with torch.inference_mode():
            feats = self.backbone(imgs)
        # same rounding as the float16 cache
        return feats.half().float().clone(), labels

    def next(self, batch_size: int) -> Batch:
        index, pos = self.next_indices(batch_size)
        if self.cache is not None:
            feats, labels = self.cache.batch(index.tolist())
            feats_pos, _ = self.cache.batch(pos.tolist())
        else:
            feats, labels = self._online_feats(index)
            feats_pos, _ = self._online_feats(pos)
        return Batch(feats.to(self.device), feats_pos.to(self.device), self._labels(labels).to(self.device), index, pos)

