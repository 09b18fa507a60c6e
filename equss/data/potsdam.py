"""Potsdam-3 (STEGO's ISPRS Potsdam .mat tiles, 3 coarse classes).

Facts from STEGO ``src/data.py`` (mhamilton723/STEGO@eb4d6b5), the same in the official
EQUSS ``data/dataset.py`` (pitlover/Expand-and-Quantize-...@da82dea).

Potsdam-3 (``potsdam/``)::

    imgs/ID.mat  key 'img' (H, W, 4: RGB + IR; the first 3 channels are used)
    gt/ID.mat    key 'gt'  (H, W) ids 0..5, 255
    labelled_train.txt (split train), labelled_test.txt (split val),
    unlabelled_train.txt (split unlabelled_train), all.txt (split all)

  Labels: {0 road, 4 car} -> 0; {1 building, 5 clutter} -> 1; {2, 3 vegetation/tree} -> 2;
  255 and other values -> -1.  Images without a gt file get all -1 labels (STEGO fills 1s).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from equss.errors import EqussError
from equss.data.base import (STEGO_URL, DatasetInfo, Sample, SegDataset, cached_index, check_same_size,
                             lut_map, mtime_key, read_list, require_dir, to_rgb8)


POTSDAM_FINE_TO_COARSE = {0: 0, 4: 0, 1: 1, 5: 1, 2: 2, 3: 2}
POTSDAM3_CLASSES = ("roads and cars", "buildings and clutter", "trees and vegetation")

POTSDAM_HINT = ("download STEGO's prepared copy (" + STEGO_URL + "potsdam.zip) and unzip it "
                "in the data root, or see: equss prepare potsdam3")


POTSDAM_INFO = DatasetInfo(
    name="potsdam3", n_classes=3, class_names=POTSDAM3_CLASSES, default_resolution=320,
    palette=np.array([[255, 255, 255], [0, 0, 255], [0, 255, 0]], dtype=np.uint8),
    splits=("train", "val", "unlabelled_train", "all"), folder="potsdam",
    description="ISPRS Potsdam, STEGO .mat tiles, 3 coarse classes",
    label_mapping="{0,4} -> 0, {1,5} -> 1, {2,3} -> 2, 255/others -> -1",
    extra={"lists": {"train": ["labelled_train.txt"], "val": ["labelled_test.txt"],
                     "unlabelled_train": ["unlabelled_train.txt"], "all": ["all.txt"]}},
)



def potsdam_to_3(gt: np.ndarray) -> np.ndarray:
    return lut_map(gt, POTSDAM_FINE_TO_COARSE)


def _loadmat_key(path: str, key: str, what: str) -> np.ndarray:
    import os
    from scipy.io import loadmat
    if not os.path.isfile(path):
        raise EqussError(f"{what} file {path} is missing; {POTSDAM_HINT}")
    try:
        data = loadmat(path)
    except Exception as exc:  # scipy raises several types for broken files
        raise EqussError(f"cannot read {what} file {path} ({type(exc).__name__}); "
                         "replace or remove the file") from None
    if key not in data:
        raise EqussError(f"{what} file {path} has no {key!r} array; use STEGO's potsdam .mat files")
    return np.asarray(data[key])


def mat_to_rgb8(arr: np.ndarray) -> Image.Image:
    """STEGO Potsdam 'img' (H, W, C>=3) -> 8-bit RGB PIL (first 3 channels)."""
    arr = np.asarray(arr)[..., :3]
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if arr.size and arr.max() <= 1.0:  # to_pil_image multiplies float images by 255
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).round().astype(np.uint8)
    return to_rgb8(Image.fromarray(np.ascontiguousarray(arr), mode="RGB"))


class Potsdam3(SegDataset):
    info = POTSDAM_INFO

    def _build_index(self):
        d = require_dir(self.root / "potsdam", "potsdam3", POTSDAM_HINT)
        lists = [d / f for f in POTSDAM_INFO.extra["lists"][self.split]]

        def build():
            samples = []
            for lf in lists:
                for i in read_list(lf, POTSDAM_HINT):
                    gt = d / "gt" / f"{i}.mat"
                    samples.append(Sample(i, str(d / "imgs" / f"{i}.mat"),
                                          str(gt) if gt.is_file() else None))
            return samples

        return cached_index(f"potsdam3-{self.split}",
                            [str(d.resolve()), mtime_key(*lists), "potsdam-index-v1"], build)

    def _read_image(self, sample):
        return mat_to_rgb8(_loadmat_key(sample.image, "img", "image"))

    def _read_label(self, sample, size, box=None):
        if sample.label is None:
            label = np.full((size[1], size[0]), -1, dtype=np.int64)
        else:
            gt = np.squeeze(_loadmat_key(sample.label, "gt", "label"))
            check_same_size(size, (gt.shape[1], gt.shape[0]) if gt.ndim == 2 else gt.shape,
                            sample.image, sample.label)
            label = potsdam_to_3(gt)
            self._note_unknown(sample.label, (gt < 0) | (gt > 5), gt)  # fine ids 0..5
        if box is not None:
            label = label[box[1]:box[3], box[0]:box[2]]
        return label

    def check_sample(self, base_index, decode=True):  # .mat files are always read whole
        s = self.samples[base_index]
        img = _loadmat_key(s.image, "img", "image")
        wh = (img.shape[1], img.shape[0])
        if s.label is not None:
            gt = np.squeeze(_loadmat_key(s.label, "gt", "label"))
            check_same_size(wh, (gt.shape[1], gt.shape[0]) if gt.ndim == 2 else gt.shape,
                            s.image, s.label)
        return wh
