"""``folder``: an unlabeled folder of images, for inference on your own pictures.

Every image file under the folder (recursively; extensions in
``equss.data.base.IMAGE_EXTENSIONS``), sorted by relative path, is one sample; RGBA,
palette, grayscale, 16-bit and float images are converted to 8-bit RGB.  Labels are all
-1.  ``sample_id`` is the relative path without extension (``/`` kept).  The folder is
``path=`` if given, else the data root itself.  The only split is ``all``.
``preproc_id`` includes a hash of the absolute folder, so two folders never share a
cache key.
"""
from __future__ import annotations


import numpy as np

from equss.errors import EqussError
from equss.data.base import IMAGE_EXTENSIONS, DatasetInfo, Sample, SegDataset, list_images, pascal_palette

INFO = DatasetInfo(
    name="folder", n_classes=0, class_names=(), default_resolution=448,
    palette=pascal_palette(256), splits=("all",), folder="",
    description="unlabeled image folder (inference); labels all -1",
    label_mapping="no labels: every pixel -1",
)


class ImageFolder(SegDataset):
    info = INFO

    def _build_index(self):
        d = self.root
        if not d.is_dir():
            raise EqussError(f"image folder {d} not found; pass an existing folder of images")
        files = list_images(d)
        if not files:
            raise EqussError(f"image folder {d} has no image files "
                             f"({', '.join(IMAGE_EXTENSIONS)}); put images there or pick "
                             "another folder")
        return [Sample(f.relative_to(d).with_suffix("").as_posix(), str(f), None) for f in files]

    def _map_label(self, label_img, path):  # pragma: no cover - never called (no labels)
        return np.asarray(label_img)
