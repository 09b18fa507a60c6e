"""CocoStuff-27 (STEGO's curated COCO-Stuff 164k lists, 27 coarse classes).

Facts from STEGO ``src/data.py`` (mhamilton723/STEGO@eb4d6b5), the same in the official
EQUSS ``data/dataset.py`` (pitlover/Expand-and-Quantize-...@da82dea).

CocoStuff-27 (``cocostuff/``)::

    images/{train2017,val2017}/ID.jpg
    annotations/{train2017,val2017}/ID.png     stuffthingmaps (0..181 fine ids, 255 unlabeled)
    curated/train2017/Coco164kFull_Stuff_Coarse.txt     (train list, STEGO)
    curated/val2017/Coco164kFull_Stuff_Coarse_7.txt     (val list: STEGO's cocostuff27
                                                         evaluation uses subset 7)

  Labels: 255 -> -1, fine id -> coarse id by STEGO's ``fine_to_coarse`` (182 -> 27).
  STEGO leaves ids outside the map at 0; we map them to -1 (they do not occur).
"""
from __future__ import annotations


import numpy as np

from equss.errors import EqussError
from equss.data.base import (STEGO_URL, DatasetInfo, Sample, SegDataset, cached_index, lut_map, mtime_key,
                             pascal_palette, read_list, require_dir)


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
COCO_HINT = ("download STEGO's prepared copy (" + STEGO_URL + "cocostuff.zip) and unzip it "
             "in the data root, or see: equss prepare cocostuff27")

COCO_INFO = DatasetInfo(
    name="cocostuff27", n_classes=27, class_names=COCO27_CLASSES, default_resolution=320,
    palette=pascal_palette(27), splits=("train", "val"), folder="cocostuff",
    description="COCO-Stuff 164k, STEGO curated lists, 27 coarse classes",
    label_mapping="stuffthingmaps fine id 0..181 -> STEGO fine_to_coarse; 255 -> -1",
    extra={"lists": {"train": "curated/train2017/Coco164kFull_Stuff_Coarse.txt",
                     "val": "curated/val2017/Coco164kFull_Stuff_Coarse_7.txt"},
           "fine_to_coarse": COCO_FINE_TO_COARSE},
)

def coco_fine_to_coarse(fine: np.ndarray) -> np.ndarray:
    """stuffthingmaps fine ids -> 27 coarse ids; 255 and unknown -> -1."""
    return lut_map(fine, dict(enumerate(COCO_FINE_TO_COARSE)))


class CocoStuff27(SegDataset):
    info = COCO_INFO

    def _build_index(self):
        d = require_dir(self.root / "cocostuff", "cocostuff27", COCO_HINT)
        list_file = d / COCO_INFO.extra["lists"][self.split]
        split_dir = list_file.parent.name

        def build():
            return [Sample(f"{split_dir}/{i}", str(d / "images" / split_dir / f"{i}.jpg"),
                           str(d / "annotations" / split_dir / f"{i}.png"))
                    for i in read_list(list_file, COCO_HINT)]

        return cached_index(f"cocostuff27-{self.split}",
                            [str(d.resolve()), mtime_key(list_file), "coco-index-v1"], build)

    def _map_label(self, label_img, path):
        arr = np.asarray(label_img)
        if arr.ndim != 2:
            raise EqussError(f"label {path} is not a single-channel stuffthingmaps PNG; "
                             "use the stuffthingmaps_trainval2017 annotations")
        self._note_unknown(path, (arr >= len(COCO_FINE_TO_COARSE)) & (arr != 255), arr)  # 255: unlabelled
        return coco_fine_to_coarse(arr)
