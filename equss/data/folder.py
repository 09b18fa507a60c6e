"""``folder``: your own images, unlabelled or labelled, for training, segmenting and evaluating.

Layout (the folder is ``path=`` if given, else the data root itself)::

    DIR/
      any/sub/folders/*.jpg      the images (every image file, recursively; extensions in
                                 ``equss.data.base.IMAGE_EXTENSIONS``), except those under labels/
      labels/<same path>.png     optional: per image a PNG of class ids (0 .. C-1; any other
                                 value, e.g. 255, is ignore), the image's relative path with .png
      classes.txt                with labels: the C class names, one per line (line i = class i)

Images are sorted by relative path; RGBA, palette, grayscale, 16-bit and float images become
8-bit RGB.  ``sample_id`` is the relative path without extension (``/`` kept).

Classes: without ``classes.txt`` the dataset has none (``n_classes`` 0, every label -1): a model
trained on it has only the clusters of ``model.extra_clusters`` (the ``folder-equss`` preset: 8)
and no linear probe.  With ``classes.txt`` it has its C classes; an image without a label file is
unlabelled (-1).

Splits: ``all`` (every image), ``val`` (every fifth image of the sorted list: positions 4, 9,
14, ...) and ``train`` (the others).  Unlabelled data trains on ``all``; with labels,
``data.train_split=train`` and validation on ``val`` select the checkpoint on held-out images.

``preproc_id`` includes a hash of the absolute folder, so two folders never share a cache key.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from equss.errors import EqussError
from equss.data.base import IMAGE_EXTENSIONS, DatasetInfo, Sample, SegDataset, list_images, pascal_palette

LABELS = "labels"
CLASSES = "classes.txt"
VAL_EVERY = 5  # every fifth image (positions 4, 9, ...) is the validation split
MAX_CLASSES = 255

INFO = DatasetInfo(
    name="folder", n_classes=0, class_names=(), default_resolution=448,
    palette=pascal_palette(256), splits=("all", "train", "val"), folder="",
    description="your own image folder: unlabelled, or labels/<path>.png + classes.txt",
    label_mapping="labels/<path>.png: class ids 0..C-1 (C lines of classes.txt); other values ignore; "
                  "no label file (or no classes.txt): every pixel -1",
)


def read_classes(root: Path) -> list[str] | None:
    """The class names of ``root/classes.txt`` (None without the file); EqussError when unusable."""
    path = Path(root) / CLASSES
    if not path.is_file():
        return None
    try:
        names = [line.strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise EqussError(f"cannot read {path} ({type(exc).__name__}); write one class name per line") from None
    while names and not names[-1]:
        names.pop()
    if not names or any(not n for n in names):
        raise EqussError(f"{path} must list one class name per line, without empty lines (line i = class id i)")
    if len(names) > MAX_CLASSES:
        raise EqussError(f"{path} lists {len(names)} classes; at most {MAX_CLASSES} fit a PNG label (255 = ignore)")
    if len(set(names)) != len(names):
        raise EqussError(f"{path} names a class twice; every line must be a different class")
    return names


def split_of(position: int) -> str:
    """``val`` for every fifth image of the sorted list (positions 4, 9, ...), else ``train``."""
    return "val" if position % VAL_EVERY == VAL_EVERY - 1 else "train"


class ImageFolder(SegDataset):
    info = INFO

    def _build_index(self):
        d = self.root
        if not d.is_dir():
            raise EqussError(f"image folder {d} not found; pass an existing folder of images")
        names = read_classes(d)
        label_dir = d / LABELS
        if label_dir.is_dir() and names is None and list_images(label_dir):
            raise EqussError(f"{label_dir} holds label files but {d / CLASSES} is missing; write the class names "
                             "there, one per line (line i = class id i)")
        if names is not None:
            self.n_classes, self.class_names = len(names), names
        files = [f for f in list_images(d) if f.relative_to(d).parts[0] != LABELS]
        if not files:
            raise EqussError(f"image folder {d} has no image files "
                             f"({', '.join(IMAGE_EXTENSIONS)}); put images there or pick "
                             "another folder")
        samples = []
        for i, f in enumerate(files):
            if self.split != "all" and split_of(i) != self.split:
                continue
            rel = f.relative_to(d).with_suffix("")
            label = label_dir / rel.with_suffix(".png") if names is not None else None
            samples.append(Sample(rel.as_posix(), str(f), str(label) if label is not None and label.is_file() else None))
        if not samples:
            raise EqussError(f"image folder {d} has {len(files)} image(s), too few for a {self.split!r} split (every "
                             f"{VAL_EVERY}th image is 'val'); use split 'all' or add images")
        return samples

    def _content_key(self) -> str:
        """The folder, and the class list when there is one (it decides what a label value means)."""
        names = read_classes(self.root)
        return super()._content_key() + ("\nclasses:" + "\n".join(names) if names else "")

    def _map_label(self, label_img, path):
        arr = np.asarray(label_img)
        if arr.ndim == 3:  # an RGB(A) label whose channels are equal (saved as colour by some tools)
            if not (arr[..., :3] == arr[..., :1]).all():
                raise EqussError(f"label {path} is a colour image; save class ids as a grayscale (mode L) PNG")
            arr = arr[..., 0]
        arr = arr.astype(np.int64)
        unknown = (arr >= self.n_classes) & (arr != 255)
        self._note_unknown(path, unknown, arr)
        return np.where((arr >= 0) & (arr < self.n_classes), arr, -1)

    def label_count(self) -> int:
        """How many samples have a label file."""
        return sum(s.label is not None for s in self.samples)
