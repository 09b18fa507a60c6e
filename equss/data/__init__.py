"""Datasets: ``get_dataset(name, split, ...)`` -> torch Dataset of ``(image, label)``.

``image`` float32 (3, R, R), ImageNet-normalised; ``label`` int64 (R, R), -1 = ignore.
Preprocessing, five-crop and caching are described in :mod:`equss.data.base`; each
dataset's layout and label mapping in its module (:mod:`~equss.data.camvid`,
:mod:`~equss.data.dubai`, :mod:`~equss.data.cocostuff`, :mod:`~equss.data.cityscapes`, :mod:`~equss.data.potsdam`, :mod:`~equss.data.folder`).

===============  =======  =========================================  ==================
name             classes  splits                                     folder (data root)
===============  =======  =========================================  ==================
camvid           11       train 367 / val 101 / test 233             CamVid/
dubai_aerial     5        train (tiles 1-6) / val (7) / test (8)     dubai-aerial/
dubai_aerial3    3        as dubai_aerial (Potsdam-3-style grouping) dubai-aerial/
cocostuff27      27       train / val (STEGO curated lists)          cocostuff/
cityscapes27     27       train / val / test                         cityscapes/
potsdam3         3        train / val / unlabelled_train / all       potsdam/
folder           0        all (unlabeled, inference)                 path= or data root
===============  =======  =========================================  ==================
"""
from __future__ import annotations

import os

from equss.errors import EqussError
from equss import paths
from equss.data.base import IMAGENET_MEAN, IMAGENET_STD, DatasetInfo, SegDataset  # noqa: F401
from equss.data.camvid import CamVid
from equss.data.dubai import DubaiAerial, DubaiAerial3
from equss.data.folder import ImageFolder
from equss.data.cityscapes import Cityscapes27
from equss.data.cocostuff import CocoStuff27
from equss.data.potsdam import Potsdam3

DATASETS: dict[str, type[SegDataset]] = {
    "camvid": CamVid,
    "dubai_aerial": DubaiAerial,
    "dubai_aerial3": DubaiAerial3,
    "cocostuff27": CocoStuff27,
    "cityscapes27": Cityscapes27,
    "potsdam3": Potsdam3,
    "folder": ImageFolder,
}


def _lookup(name: str) -> type[SegDataset]:
    key = str(name).lower().replace("-", "_")
    if key not in DATASETS:
        raise EqussError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[key]


def dataset_info(name: str) -> DatasetInfo:
    """Static facts: ``n_classes, class_names, default_resolution, palette, splits, ...``."""
    return _lookup(name).info


def get_dataset(name: str, split: str | None = None, data_root: str | os.PathLike | None = None,
                resolution: int | None = None, crop: str = "center", five_crop: bool = False,
                image_interp: str = "nearest", return_path: bool = False,
                path: str | os.PathLike | None = None) -> SegDataset:
    """Build a dataset.

    ``split`` defaults to the dataset's first split (``train``; ``all`` for ``folder``).
    ``resolution`` defaults to ``dataset_info(name).default_resolution``.  ``crop``:
    ``"center"`` (R x R) or ``"none"`` (shorter side R).  ``five_crop=True`` turns every
    sample into STEGO's 5 crops (used for training).  ``image_interp``: ``"nearest"``
    (STEGO/EQUSS) or ``"bilinear"``.  ``return_path=True`` yields
    ``(image, label, sample_id)``.  ``path`` (``folder`` only): the image folder,
    else the data root itself is used.
    """
    cls = _lookup(name)
    split = split or cls.info.splits[0]
    if cls is ImageFolder and path is not None:
        from pathlib import Path
        root = Path(path).expanduser()
    else:
        root = paths.data_root(data_root)
    return cls(split, root, resolution=resolution, crop=crop, five_crop=five_crop,
               image_interp=image_interp, return_path=return_path)


__all__ = ["DATASETS", "DatasetInfo", "SegDataset", "dataset_info", "get_dataset",
           "IMAGENET_MEAN", "IMAGENET_STD"]
