"""Shared machinery of the equss datasets: reading, preprocessing, five-crop, index cache.

Preprocessing (STEGO ``src/utils.py::get_transform`` at mhamilton723/STEGO@eb4d6b5, the
same in the official EQUSS ``data/dataset.py`` at
pitlover/Expand-and-Quantize-for-Unsupervised-Semantic-Segmentation@da82dea):

1. optional crop box on the decoded image (Dubai tile grid, five-crop);
2. ``Resize(R)``: the shorter side becomes ``R``, the longer ``int(R * long / short)``
   (torchvision's rule).  Both official codes resize the *image* with
   ``InterpolationMode.NEAREST`` too; that is our default (``image_interp="nearest"``).
   ``image_interp="bilinear"`` (PIL bilinear, antialiased) is offered as an option;
3. ``CenterCrop(R)`` (torchvision: top = round((h - R) / 2)) when ``crop="center"``;
   ``crop="none"`` keeps the aspect ratio (shorter side R; for inference, batch size 1);
4. image: ``ToTensor`` then ImageNet mean/std (STEGO ``normalize``), float32 (3, R, R);
   label: ``NEAREST`` resize + the same crop, int64 (R, R), ``-1`` = ignore.

Label value maps are applied on the full-resolution label before resizing; a value map
commutes with nearest-neighbour resizing, so this equals STEGO's order.

Five-crop (STEGO ``src/crop_datasets.py``, ``crop_type: five``, ``crop_ratio: .5`` in
``configs/train_config.yml``): every sample becomes 5 samples, the top-left, top-right,
bottom-left, bottom-right and centre crops of size ``(int(0.5 h), int(0.5 w))`` of the
*original* image (torchvision ``five_crop`` order and geometry), in the order
``5 * i + k``.  STEGO writes the crops to disk once as JPEG (quality 75) and PNG; we crop
the decoded image in memory on the fly, which is deterministic and avoids the extra
JPEG re-encoding (documented deviation).  The crops are then resized / centre cropped
to ``R`` as above (STEGO's ``loader_crop_type: center``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from equss.errors import EqussError
from equss.imagenet import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401 - re-exported (equss.data)
from equss import paths

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
PREPROC_VERSION = "v1"
# STEGO's prepared copies of the paper's datasets (src/download_datasets.py @eb4d6b5)
STEGO_URL = "https://marhamilresearch4.blob.core.windows.net/stego-public/pytorch_data/"
FIVE_CROP_RATIO = 0.5
CROP_MODES = ("center", "none")
IMAGE_INTERPS = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR}


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset (no files needed)."""

    name: str
    n_classes: int
    class_names: tuple[str, ...]
    default_resolution: int
    palette: np.ndarray  # (n_classes, 3) uint8, colours for colour maps
    splits: tuple[str, ...]
    folder: str  # folder under the data root ('' for the image-folder dataset)
    description: str = ""
    label_mapping: str = ""  # how raw label values become class ids (documentation)
    extra: dict = field(default_factory=dict)

    def __getitem__(self, key):  # allow info["n_classes"]
        return getattr(self, key)


@dataclass
class Sample:
    """One entry of a dataset index (paths are absolute strings)."""

    sample_id: str
    image: str
    label: str | None = None
    box: tuple[int, int, int, int] | None = None  # (left, top, right, bottom) in the file

    def to_json(self) -> dict:
        return {"sample_id": self.sample_id, "image": self.image, "label": self.label,
                "box": list(self.box) if self.box else None}

    @staticmethod
    def from_json(d: dict) -> "Sample":
        return Sample(d["sample_id"], d["image"], d.get("label"),
                      tuple(d["box"]) if d.get("box") else None)


# ----------------------------------------------------------------------------- reading
def to_rgb8(img: Image.Image) -> Image.Image:
    """Convert any PIL image to 8-bit RGB (RGBA/LA/P drop alpha; 16-bit/float rescaled)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F" and arr.size and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        elif img.mode != "F" and arr.size and arr.max() > 255:
            arr = arr / 257.0  # 16-bit range 0..65535 -> 0..255
        arr = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    return img.convert("RGB")


@contextlib.contextmanager
def _bomb_is_error():
    """Pillow only warns between ``Image.MAX_IMAGE_PIXELS`` and twice that (and errors above): here
    both are an error, so an image above the limit is never decoded (a 100 Mpx PNG is ~300 MB of RGB)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def open_image(path: str | os.PathLike, what: str = "image") -> Image.Image:
    """Open and fully decode an image file; a missing or broken file is an EqussError."""
    path = str(path)
    if not os.path.isfile(path):
        raise EqussError(f"{what} file {path} is missing; re-download or re-prepare the dataset "
                         "(equss prepare DATASET) or remove it from the split list")
    try:
        with _bomb_is_error():
            img = Image.open(path)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise EqussError(f"{what} file {path} is too large to decode safely ({str(exc).split(',')[0]}: "
                         "Pillow's decompression-bomb limit); downscale it or cut it into tiles") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise EqussError(f"cannot read {what} file {path} ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'corrupt'}); "
                         "replace or remove the file") from None
    return img


def image_size(path: str | os.PathLike, what: str = "image") -> tuple[int, int]:
    """(width, height) from the file header; a missing or broken file is an EqussError."""
    path = str(path)
    if not os.path.isfile(path):
        raise EqussError(f"{what} file {path} is missing; re-download or re-prepare the dataset "
                         "(equss prepare DATASET)")
    try:
        with _bomb_is_error():
            with Image.open(path) as img:
                return img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise EqussError(f"{what} file {path} is too large to decode safely ({str(exc).split(',')[0]}: "
                         "Pillow's decompression-bomb limit); downscale it or cut it into tiles") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise EqussError(f"cannot read {what} file {path} ({type(exc).__name__}); "
                         "replace or remove the file") from None


def check_same_size(image_wh, label_wh, image_path, label_path) -> None:
    if tuple(image_wh) != tuple(label_wh):
        raise EqussError(
            f"label {label_path} is {label_wh[0]}x{label_wh[1]} but its image {image_path} is "
            f"{image_wh[0]}x{image_wh[1]}; replace the label or image so both have the same size")


def list_images(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension), sorted by relative path."""
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted((p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                  key=lambda p: p.relative_to(folder).as_posix())


# ----------------------------------------------------------------------------- transforms
def five_crop_boxes(width: int, height: int, ratio: float = FIVE_CROP_RATIO):
    """The 5 boxes (left, top, right, bottom) of torchvision ``five_crop`` with size
    ``(int(ratio*h), int(ratio*w))``: tl, tr, bl, br, centre (STEGO crop_datasets.py)."""
    ch, cw = int(height * ratio), int(width * ratio)
    ct, cl = int(round((height - ch) / 2.0)), int(round((width - cw) / 2.0))
    tops_lefts = [(0, 0), (0, width - cw), (height - ch, 0), (height - ch, width - cw), (ct, cl)]
    return [(left, top, left + cw, top + ch) for top, left in tops_lefts]


def preprocess_image(img: Image.Image, resolution: int, crop: str = "center",
                     interp: str = "nearest") -> torch.Tensor:
    """PIL RGB -> float32 (3, R, R) ImageNet-normalised (see module docstring)."""
    img = TF.resize(img, [resolution], interpolation=IMAGE_INTERPS[interp], antialias=True)
    if crop == "center":
        img = TF.center_crop(img, [resolution, resolution])
    t = TF.to_tensor(img)
    return TF.normalize(t, IMAGENET_MEAN, IMAGENET_STD)


def preprocess_label(label: np.ndarray, resolution: int, crop: str = "center") -> torch.Tensor:
    """int label (H, W) with -1 ignore -> int64 (R, R), NEAREST resize + same crop."""
    pil = Image.fromarray(label.astype(np.int32), mode="I")
    pil = TF.resize(pil, [resolution], interpolation=InterpolationMode.NEAREST)
    if crop == "center":
        pil = TF.center_crop(pil, [resolution, resolution])
    return torch.from_numpy(np.asarray(pil, dtype=np.int64).copy())


def lut_map(values: np.ndarray, mapping: dict[int, int], size: int = 256) -> np.ndarray:
    """Map integer label values through ``mapping``; values not in it -> -1."""
    lut = np.full(size, -1, dtype=np.int64)
    for k, v in mapping.items():
        lut[k] = v
    values = np.asarray(values).astype(np.int64)
    out = np.full(values.shape, -1, dtype=np.int64)
    ok = (values >= 0) & (values < size)
    out[ok] = lut[values[ok]]
    return out


# ----------------------------------------------------------------------------- index cache
def _cache_file(key_parts: Sequence[str], stem: str) -> Path:
    h = hashlib.sha1("\n".join(key_parts).encode()).hexdigest()[:12]
    return paths.cache_dir("datasets") / f"{stem}-{h}.json"


def cached_index(stem: str, key_parts: Sequence[str], build: Callable[[], list[Sample]],
                 write: bool = True) -> list[Sample]:
    """Load an index from ``cache_dir('datasets')`` keyed by ``key_parts`` or build it.

    The key holds the resolved data folder and the modification times of the files that
    define the index, so edits to the data rebuild it.  Never writes under the data root.
    """
    path = _cache_file(key_parts, stem)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if data.get("key") == list(key_parts):
                return [Sample.from_json(d) for d in data["samples"]]
        except (OSError, ValueError, KeyError):
            pass
    samples = build()
    if write and samples:
        try:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"key": list(key_parts),
                                       "samples": [s.to_json() for s in samples]}))
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache only costs speed
    return samples


def files_fingerprint(files: Sequence[str | os.PathLike], root: str | os.PathLike | None = None) -> dict:
    """``{"root", "n_files", "sha1"}``: sha1 over each file's path, size and mtime (ns); a
    missing file counts as ``missing`` (reading it fails later with its own message)."""
    h = hashlib.sha1()
    for f in files:
        try:
            st = os.stat(f)
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{f}\0missing\n".encode())
    return {"root": str(Path(root).resolve()) if root is not None else None, "n_files": len(files),
            "sha1": h.hexdigest()}


def files_content_hash(files: Sequence[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """sha256 over each file's path (relative to ``root``) and bytes: what a cache was built from,
    independent of modification times (a fresh copy of unchanged data has the same hash)."""
    h = hashlib.sha256()
    base = Path(root).resolve() if root is not None else None
    for f in files:
        p = Path(f)
        name = str(p.resolve().relative_to(base)) if base is not None and p.resolve().is_relative_to(base) else str(p)
        h.update(name.encode() + b"\0")
        try:
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            h.update(b"missing")
        h.update(b"\n")
    return h.hexdigest()


def mtime_key(*files: Path) -> str:
    return ";".join(f"{f}:{f.stat().st_mtime_ns if f.exists() else 'missing'}" for f in files)


# ----------------------------------------------------------------------------- dataset
class SegDataset(Dataset):
    """Base class: ``(image float32 (3,R,R), label int64 (R,R))`` pairs, -1 = ignore.

    Subclasses set ``info`` and implement ``_build_index()`` (list of :class:`Sample`)
    and ``_map_label(label_image)`` (PIL label -> int64 array with -1 ignore).
    ``files[i]`` is the image file sample ``i`` comes from (several samples may share
    one file: Dubai crops, five-crop); ``sample_id(i)`` is a unique name usable as a
    relative file path (it may contain ``/``).  With ``return_path=True`` items are ``(image, label, sample_id)``.
    """

    info: DatasetInfo

    def __init__(self, split: str, root: Path, resolution: int | None = None,
                 crop: str = "center", five_crop: bool = False, image_interp: str = "nearest",
                 return_path: bool = False):
        if split not in self.info.splits:
            raise EqussError(f"dataset {self.info.name!r} has no split {split!r}; "
                             f"choose one of: {', '.join(self.info.splits)}")
        if crop not in CROP_MODES:
            raise EqussError(f"unknown crop mode {crop!r}; choose one of: {', '.join(CROP_MODES)}")
        if image_interp not in IMAGE_INTERPS:
            raise EqussError(f"unknown image interpolation {image_interp!r}; choose one of: "
                             f"{', '.join(IMAGE_INTERPS)}")
        resolution = int(resolution or self.info.default_resolution)
        if resolution < 1:
            raise EqussError(f"resolution must be a positive number of pixels, got {resolution}")
        self.name = self.info.name
        self.split = split
        self.root = Path(root)
        self.resolution = resolution
        self.crop = crop
        self.five_crop = bool(five_crop)
        self.image_interp = image_interp
        self.return_path = return_path
        self.n_classes = self.info.n_classes
        self.class_names = list(self.info.class_names)
        self.unknown_labels: dict[str, tuple[int, list]] = {}  # label file -> (pixels, example values)
        self.samples: list[Sample] = self._build_index()
        if not self.samples:
            raise EqussError(f"dataset {self.name!r} split {split!r} under {self.root} has no "
                             "images; check the folder or run: equss prepare "
                             f"{self.name} --data-root DIR")
        self._n_per = 5 if self.five_crop else 1
        self.files = [s.image for s in self.samples for _ in range(self._n_per)]
        ids = "\n".join(s.sample_id for s in self.samples)
        content = hashlib.sha1((self._content_key() + "\n" + ids).encode()).hexdigest()[:10]
        self.preproc_id = (f"{self.name}-{split}-r{resolution}-{crop}-{image_interp}"
                           f"{'-five' + str(FIVE_CROP_RATIO) if self.five_crop else ''}"
                           f"-{PREPROC_VERSION}-{content}")

    # -- subclass hooks
    def _build_index(self) -> list[Sample]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _map_label(self, label_img: Image.Image, path: str) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _read_image(self, sample: Sample) -> Image.Image:
        return to_rgb8(open_image(sample.image, "image"))

    def _read_label(self, sample: Sample, size: tuple[int, int],
                    box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Label of the image of ``size`` (W, H) as int64 (H, W), -1 ignore, cut to ``box``
        (before the value map, which is then cheaper); all -1 when there is no label."""
        if sample.label is None:
            w, h = (box[2] - box[0], box[3] - box[1]) if box else size
            return np.full((h, w), -1, dtype=np.int64)
        img = open_image(sample.label, "label")
        check_same_size(size, img.size, sample.image, sample.label)
        if box is not None:
            img = img.crop(box)
        return self._map_label(img, sample.label if box is None else f"{sample.label}@{tuple(box)}")

    def _content_key(self) -> str:
        """Text that identifies the data in the cache key: the resolved data root, so a copy of
        a dataset elsewhere (clean or corrupted) never shares a feature cache with it."""
        return str(self.root.resolve())

    def source_files(self, limit: int | None = None) -> list[str]:
        """The image and label files the first ``limit`` items (all: None) are read from."""
        n_base = len(self.samples) if limit is None else -(-int(limit) // self._n_per)
        out, seen = [], set()
        for s in self.samples[:n_base]:
            for f in (s.image, s.label):
                if f is not None and f not in seen:
                    seen.add(f)
                    out.append(f)
        return out

    def fingerprint(self, limit: int | None = None) -> dict:
        """What the first ``limit`` items were built from: the data root and a hash of every
        source file's path, size and modification time (so a label fixed in place, or a
        file replaced, changes it).  Stored with feature caches to detect changed data."""
        return files_fingerprint(self.source_files(limit), self.root)

    def content_hash(self, limit: int | None = None) -> str:
        """:func:`files_content_hash` of the files :meth:`fingerprint` covers."""
        return files_content_hash(self.source_files(limit), self.root)

    def cache_args(self) -> list[str]:
        """``equss features`` arguments that rebuild this dataset's cache exactly."""
        args = [self.name, "--split", self.split, "--resolution", str(self.resolution),
                "--data-root", str(self.root)]
        return args + (["--five-crop"] if self.five_crop else [])

    def _note_unknown(self, path: str, unknown: np.ndarray, raw: np.ndarray) -> None:
        """Record label pixels whose raw value is no class and not the dataset's void value
        (they become ignore, -1); the first such file of a dataset is one warning line."""
        count = int(unknown.sum())
        if not count:
            return
        values = [v.tolist() if hasattr(v, "tolist") else v for v in np.unique(raw[unknown], axis=0)[:4]]
        first = not self.unknown_labels
        self.unknown_labels[path] = (count, values)  # per file (and crop box): reading it again counts once
        if first:
            import sys
            print(f"equss: warning: label {path} has {count} pixels with values outside the {self.n_classes} classes "
                  f"of {self.name} (e.g. {values[0]}); they are treated as ignore. `equss prepare {self.name} "
                  "--histogram` counts them in every split", file=sys.stderr, flush=True)

    def label_report(self) -> str | None:
        """One line summing :meth:`_note_unknown` over the labels read so far (None if clean)."""
        if not self.unknown_labels:
            return None
        pixels = sum(c for c, _ in self.unknown_labels.values())
        path, (_, values) = next(iter(self.unknown_labels.items()))
        return (f"{len(self.unknown_labels)} label file(s) of {self.name} {self.split} have {pixels} pixels with values "
                f"outside the {self.n_classes} classes (first: {path}, e.g. {values[0]}); they were treated as ignore")

    # -- public API
    def __len__(self) -> int:
        return len(self.samples) * self._n_per

    def sample_id(self, index: int) -> str:
        base, k = divmod(index, self._n_per)
        sid = self.samples[base].sample_id
        return f"{sid}__five{k}" if self.five_crop else sid

    def sequence(self, index: int) -> str | None:
        """The group of correlated images sample ``index`` belongs to (the driving sequence of a
        CamVid frame, the photo a Dubai crop is cut from), for resampling whole groups; None where
        the dataset names none (each image is then its own)."""
        return None

    def load_raw(self, index: int) -> tuple[Image.Image, np.ndarray]:
        """The cropped-but-not-resized RGB image and its int64 label (-1 ignore)."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        base, k = divmod(index, self._n_per)
        s = self.samples[base]
        img = self._read_image(s)
        label = self._read_label(s, img.size, s.box)
        if s.box is not None:
            img = img.crop(s.box)
        if self.five_crop:
            left, top, right, bottom = five_crop_boxes(img.width, img.height)[k]
            img = img.crop((left, top, right, bottom))
            label = label[top:bottom, left:right]
        return img, label

    def __getitem__(self, index: int):
        img, label = self.load_raw(index)
        image = preprocess_image(img, self.resolution, self.crop, self.image_interp)
        target = preprocess_label(label, self.resolution, self.crop)
        if self.return_path:
            return image, target, self.sample_id(index)
        return image, target

    def check_sample(self, base_index: int, decode: bool = True) -> tuple[int, int]:
        """Check one index entry: files exist, decode completely (a truncated JPEG fails here,
        not in the middle of a training), image and label have the same size, label values
        are known.  ``decode=False``: file headers only (fast)."""
        s = self.samples[base_index]
        if decode:
            img = self._read_image(s)
            self._read_label(s, img.size)
            return img.size
        wh = image_size(s.image, "image")
        if s.label is not None:
            check_same_size(wh, image_size(s.label, "label"), s.image, s.label)
        return wh

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"preproc_id={self.preproc_id!r})")


def read_list(path: Path, hint: str) -> list[str]:
    """Non-empty stripped lines of a split list; one clear error when it is missing."""
    if not path.is_file():
        raise EqussError(f"split list {path} is missing; {hint}")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def require_dir(path: Path, dataset: str, hint: str) -> Path:
    if not path.is_dir():
        raise EqussError(f"dataset folder {path} for {dataset!r} not found; {hint}")
    return path


def pascal_palette(n: int) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved), first ``n`` colours."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap
