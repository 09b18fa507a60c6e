"""Cityscapes-27 (STEGO's 27 classes: labelId - 7).

Facts from STEGO ``src/data.py`` (mhamilton723/STEGO@eb4d6b5), the same in the official
EQUSS ``data/dataset.py`` (pitlover/Expand-and-Quantize-...@da82dea).

Cityscapes-27 (``cityscapes/``, torchvision ``Cityscapes`` layout, ``mode="fine"``)::

    leftImg8bit/{train,val,test}/CITY/CITY_xxx_yyy_leftImg8bit.png
    gtFine/{train,val,test}/CITY/CITY_xxx_yyy_gtFine_labelIds.png

  Labels: labelId - 7 (first non-void id); values outside 0..26 -> -1.
"""
from __future__ import annotations


import numpy as np

from equss.data.base import DatasetInfo, Sample, SegDataset, cached_index, mtime_key, require_dir
from equss.errors import EqussError


CITYSCAPES27_CLASSES = (
    "road", "sidewalk", "parking", "rail track", "building", "wall", "fence", "guard rail",
    "bridge", "tunnel", "pole", "polegroup", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "caravan", "trailer", "train",
    "motorcycle", "bicycle")
# STEGO create_cityscapes_colormap (first 27)
CITYSCAPES_PALETTE = np.array([
    (128, 64, 128), (244, 35, 232), (250, 170, 160), (230, 150, 140), (70, 70, 70),
    (102, 102, 156), (190, 153, 153), (180, 165, 180), (150, 100, 100), (150, 120, 90),
    (153, 153, 153), (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35),
    (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 0, 90), (0, 0, 110), (0, 80, 100), (0, 0, 230), (119, 11, 32)],
    dtype=np.uint8)
CITYSCAPES_FIRST_NONVOID = 7

CITY_HINT = ("download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
             "cityscapes-dataset.com (login) into DATA_ROOT/cityscapes, or see: "
             "equss prepare cityscapes27")

CITY_INFO = DatasetInfo(
    name="cityscapes27", n_classes=27, class_names=CITYSCAPES27_CLASSES,
    default_resolution=320, palette=CITYSCAPES_PALETTE, splits=("train", "val", "test"),
    folder="cityscapes", description="Cityscapes gtFine, 27 classes (labelId - 7)",
    label_mapping="gtFine labelIds - 7; values outside 0..26 -> -1",
)

def cityscapes_to_27(label_ids: np.ndarray) -> np.ndarray:
    out = np.asarray(label_ids).astype(np.int64) - CITYSCAPES_FIRST_NONVOID
    out[(out < 0) | (out > 26)] = -1
    return out


class Cityscapes27(SegDataset):
    info = CITY_INFO

    def _build_index(self):
        d = require_dir(self.root / "cityscapes", "cityscapes27", CITY_HINT)
        img_dir = require_dir(d / "leftImg8bit" / self.split, "cityscapes27", CITY_HINT)
        gt_dir = require_dir(d / "gtFine" / self.split, "cityscapes27", CITY_HINT)
        cities = sorted(p for p in img_dir.iterdir() if p.is_dir())

        def build():
            samples = []
            for city in cities:
                for img in sorted(city.glob("*_leftImg8bit.png")):
                    stem = img.name[: -len("_leftImg8bit.png")]
                    gt = gt_dir / city.name / f"{stem}_gtFine_labelIds.png"
                    samples.append(Sample(f"{city.name}/{stem}", str(img), str(gt)))
            return samples

        return cached_index(f"cityscapes27-{self.split}",
                            [str(d.resolve()), mtime_key(*cities), "city-index-v1"], build)

    def _map_label(self, label_img, path):
        arr = np.asarray(label_img)
        if arr.ndim != 2:
            raise EqussError(f"label {path} is not a single-channel labelIds PNG; "
                             "use the gtFine *_gtFine_labelIds.png files")
        self._note_unknown(path, (arr > 33) & (arr != 255), arr)  # labelIds 0..33 (0..6 void)
        return cityscapes_to_27(arr)
