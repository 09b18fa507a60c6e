"""The paper's datasets: CocoStuff-27, Cityscapes-27, Potsdam-3 (STEGO layouts).

Facts from STEGO ``src/data.py`` (mhamilton723/STEGO@eb4d6b5), the same in the official
EQUSS ``data/dataset.py`` (pitlover/Expand-and-Quantize-...@da82dea).  STEGO's prepared
copies live at https://marhamilresearch4.blob.core.windows.net/stego-public/pytorch_data/
``{cocostuff,cityscapes,potsdam}.zip`` (``src/download_datasets.py``).

CocoStuff-27 (``cocostuff/``)::

    images/{train2017,val2017}/ID.jpg
    annotations/{train2017,val2017}/ID.png     stuffthingmaps (0..181 fine ids, 255 unlabeled)
    curated/train2017/Coco164kFull_Stuff_Coarse.txt     (train list, STEGO)
    curated/val2017/Coco164kFull_Stuff_Coarse_7.txt     (val list: STEGO's cocostuff27
                                                         evaluation uses subset 7)

  Labels: 255 -> -1, fine id -> coarse id by STEGO's ``fine_to_coarse`` (182 -> 27).
  STEGO leaves ids outside the map at 0; we map them to -1 (they do not occur).

Cityscapes-27 (``cityscapes/``, torchvision ``Cityscapes`` layout, ``mode="fine"``)::

    leftImg8bit/{train,val,test}/CITY/CITY_xxx_yyy_leftImg8bit.png
    gtFine/{train,val,test}/CITY/CITY_xxx_yyy_gtFine_labelIds.png

  Labels: labelId - 7 (first non-void id); values outside 0..26 -> -1.

Potsdam-3 (``potsdam/``)::

    imgs/ID.mat  key 'img' (H, W, 4: RGB + IR; the first 3 channels are used)
    gt/ID.mat    key 'gt'  (H, W) ids 0..5, 255
    labelled_train.txt (split train), labelled_test.txt (split val),
    unlabelled_train.txt (split unlabelled_train), all.txt (split all)

  Labels: {0 road, 4 car} -> 0; {1 building, 5 clutter} -> 1; {2, 3 vegetation/tree} -> 2;
  255 and other values -> -1.  Images without a gt file get all -1 labels (STEGO fills 1s).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import EqussError
from .base import (DatasetInfo, Sample, SegDataset, cached_index, check_same_size, lut_map,
                   mtime_key, pascal_palette, require_dir, to_rgb8)

STEGO_URL = "https://marhamilresearch4.blob.core.windows.net/stego-public/pytorch_data/"

# STEGO src/data.py Coco.fine_to_coarse, as 27 runs of fine ids per coarse id would be
# unreadable; written as one list indexed by fine id 0..181.
COCO_FINE_TO_COARSE = [
    9, 11, 11, 11, 11, 11, 11, 11, 11, 8, 8, 8, 8, 8, 8, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    6, 6, 6, 6, 6, 6, 6, 6, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 5, 5, 5, 5, 5, 5,
    5, 5, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 4, 4, 4, 17, 17, 22, 20, 20, 22, 15, 25, 16, 13, 12,
    12, 17, 17, 23, 15, 15, 17, 15, 21, 15, 25, 13, 13, 13, 13, 13, 22, 26, 14, 14, 15,
    22, 21, 21, 24, 20, 22, 15, 17, 16, 15, 22, 24, 21, 17, 25, 16, 21, 17, 22, 16, 21,
    21, 25, 21, 26, 21, 24, 20, 17, 14, 21, 26, 15, 23, 20, 21, 24, 15, 24, 22, 25, 15,
    20, 17, 17, 22, 14, 18, 18, 18, 18, 18, 18, 18, 26, 26, 19, 19, 24,
]
assert len(COCO_FINE_TO_COARSE) == 182
# names from the official EQUSS data/dataset_utils.py get_class_labels("cocostuff27");
# the duplicated "food"/"furniture" (things 2/3 vs stuff 14/15) are suffixed here.
COCO27_CLASSES = (
    "electronic", "appliance", "food-things", "furniture-things", "indoor", "kitchen",
    "accessory", "animal", "outdoor", "person", "sports", "vehicle", "ceiling", "floor",
    "food-stuff", "furniture-stuff", "rawmaterial", "textile", "wall", "window", "building",
    "ground", "plant", "sky", "solid", "structural", "water")
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
POTSDAM_FINE_TO_COARSE = {0: 0, 4: 0, 1: 1, 5: 1, 2: 2, 3: 2}
POTSDAM3_CLASSES = ("roads and cars", "buildings and clutter", "trees and vegetation")
CITYSCAPES_FIRST_NONVOID = 7

COCO_HINT = ("download STEGO's prepared copy (" + STEGO_URL + "cocostuff.zip) and unzip it "
             "in the data root, or see: equss prepare cocostuff27")
CITY_HINT = ("download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
             "cityscapes-dataset.com (login) into DATA_ROOT/cityscapes, or see: "
             "equss prepare cityscapes27")
POTSDAM_HINT = ("download STEGO's prepared copy (" + STEGO_URL + "potsdam.zip) and unzip it "
                "in the data root, or see: equss prepare potsdam3")

COCO_INFO = DatasetInfo(
    name="cocostuff27", n_classes=27, class_names=COCO27_CLASSES, default_resolution=320,
    palette=pascal_palette(27), splits=("train", "val"), folder="cocostuff",
    description="COCO-Stuff 164k, STEGO curated lists, 27 coarse classes",
    label_mapping="stuffthingmaps fine id 0..181 -> STEGO fine_to_coarse; 255 -> -1",
    extra={"lists": {"train": "curated/train2017/Coco164kFull_Stuff_Coarse.txt",
                     "val": "curated/val2017/Coco164kFull_Stuff_Coarse_7.txt"},
           "fine_to_coarse": COCO_FINE_TO_COARSE},
)
CITY_INFO = DatasetInfo(
    name="cityscapes27", n_classes=27, class_names=CITYSCAPES27_CLASSES,
    default_resolution=320, palette=CITYSCAPES_PALETTE, splits=("train", "val", "test"),
    folder="cityscapes", description="Cityscapes gtFine, 27 classes (labelId - 7)",
    label_mapping="gtFine labelIds - 7; values outside 0..26 -> -1",
)
POTSDAM_INFO = DatasetInfo(
    name="potsdam3", n_classes=3, class_names=POTSDAM3_CLASSES, default_resolution=320,
    palette=np.array([[255, 255, 255], [0, 0, 255], [0, 255, 0]], dtype=np.uint8),
    splits=("train", "val", "unlabelled_train", "all"), folder="potsdam",
    description="ISPRS Potsdam, STEGO .mat tiles, 3 coarse classes",
    label_mapping="{0,4} -> 0, {1,5} -> 1, {2,3} -> 2, 255/others -> -1",
    extra={"lists": {"train": ["labelled_train.txt"], "val": ["labelled_test.txt"],
                     "unlabelled_train": ["unlabelled_train.txt"], "all": ["all.txt"]}},
)


def coco_fine_to_coarse(fine: np.ndarray) -> np.ndarray:
    """stuffthingmaps fine ids -> 27 coarse ids; 255 and unknown -> -1."""
    return lut_map(fine, dict(enumerate(COCO_FINE_TO_COARSE)))


def cityscapes_to_27(label_ids: np.ndarray) -> np.ndarray:
    out = np.asarray(label_ids).astype(np.int64) - CITYSCAPES_FIRST_NONVOID
    out[(out < 0) | (out > 26)] = -1
    return out


def potsdam_to_3(gt: np.ndarray) -> np.ndarray:
    return lut_map(gt, POTSDAM_FINE_TO_COARSE)


def _read_list(path: Path, hint: str) -> list[str]:
    if not path.is_file():
        raise EqussError(f"split list {path} is missing; {hint}")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


class CocoStuff27(SegDataset):
    info = COCO_INFO

    def _build_index(self):
        d = require_dir(self.root / "cocostuff", "cocostuff27", COCO_HINT)
        list_file = d / COCO_INFO.extra["lists"][self.split]
        split_dir = list_file.parent.name

        def build():
            return [Sample(f"{split_dir}/{i}", str(d / "images" / split_dir / f"{i}.jpg"),
                           str(d / "annotations" / split_dir / f"{i}.png"))
                    for i in _read_list(list_file, COCO_HINT)]

        return cached_index(f"cocostuff27-{self.split}",
                            [str(d.resolve()), mtime_key(list_file), "coco-index-v1"], build)

    def _map_label(self, label_img, path):
        arr = np.asarray(label_img)
        if arr.ndim != 2:
            raise EqussError(f"label {path} is not a single-channel stuffthingmaps PNG; "
                             "use the stuffthingmaps_trainval2017 annotations")
        return coco_fine_to_coarse(arr)


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
        return cityscapes_to_27(arr)


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
                for i in _read_list(lf, POTSDAM_HINT):
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
        if box is not None:
            label = label[box[1]:box[3], box[0]:box[2]]
        return label

    def check_sample(self, base_index):
        s = self.samples[base_index]
        img = _loadmat_key(s.image, "img", "image")
        wh = (img.shape[1], img.shape[0])
        if s.label is not None:
            gt = np.squeeze(_loadmat_key(s.label, "gt", "label"))
            check_same_size(wh, (gt.shape[1], gt.shape[0]) if gt.ndim == 2 else gt.shape,
                            s.image, s.label)
        return wh
