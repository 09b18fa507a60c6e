"""TensorBoard event files beside a run's ``log.jsonl`` (``make tensorboard`` shows them).

``equss train`` writes, when the ``tensorboard`` package is installed (the ``dev`` and
``tensorboard`` extras install it) and ``EQUSS_TENSORBOARD`` is not ``0``:

* ``train/<loss>`` every ``train.log_every`` steps: the same numbers as the ``log.jsonl`` rows
  (``total``, ``corr``, the three correlation terms, codebook/commitment losses, codebook usage,
  the probe losses, ``grad_norm``);
* ``val/<metric>`` at every validation (cluster and linear mIoU / accuracy);
* ``val/segmentation/<i>``: for the first few validation images, the image, the cluster probe's
  classes (through the validation's Hungarian assignment) and the ground truth side by side.

``log.jsonl`` stays the record of truth (the run cache, the records and every table read it);
the event files are for watching a run.  A resumed run opens its writer with ``purge_step`` at
the checkpoint's step, so TensorBoard drops the rows an interrupted segment wrote after it.
"""
from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np

ENV = "EQUSS_TENSORBOARD"
N_IMAGES = 3


def available() -> bool:
    """True when the ``tensorboard`` package is importable and not switched off (``EQUSS_TENSORBOARD=0``)."""
    if os.environ.get(ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    return importlib.util.find_spec("tensorboard") is not None


class RunWriter:
    """A thin wrapper of :class:`torch.utils.tensorboard.SummaryWriter` for one run folder."""

    def __init__(self, folder: str | os.PathLike, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.writer = SummaryWriter(log_dir=str(self.folder), purge_step=purge_step, flush_secs=30)

    def scalars(self, step: int, values: dict, prefix: str) -> None:
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(float(value)):
                self.writer.add_scalar(f"{prefix}/{key}", float(value), int(step))

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """``image``: (H, W, 3) uint8."""
        self.writer.add_image(tag, np.ascontiguousarray(image), int(step), dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_writer(folder: str | os.PathLike, purge_step: int | None = None) -> RunWriter | None:
    """A :class:`RunWriter` for ``folder``, or None when TensorBoard is not available."""
    if not available():
        return None
    return RunWriter(folder, purge_step=purge_step)


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8; ids outside the palette (ignore, unmatched) black."""
    lab = np.asarray(labels)
    pal = np.asarray(palette, dtype=np.uint8)
    out = np.zeros(lab.shape + (3,), dtype=np.uint8)
    ok = (lab >= 0) & (lab < len(pal))
    out[ok] = pal[lab[ok]]
    return out


def denormalize(image) -> np.ndarray:
    """An ImageNet-normalised (3, H, W) tensor -> (H, W, 3) uint8."""
    from equss.data.base import IMAGENET_MEAN, IMAGENET_STD

    x = image.detach().cpu().float().numpy() if hasattr(image, "detach") else np.asarray(image, dtype=np.float32)
    x = x * np.asarray(IMAGENET_STD, dtype=np.float32)[:, None, None] + np.asarray(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def segmentation_panel(image, prediction: np.ndarray, label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Image | prediction | ground truth, side by side, (H, 3W + 8, 3) uint8 (4-px white gaps)."""
    img = denormalize(image) if not (isinstance(image, np.ndarray) and image.dtype == np.uint8) else image
    h, w = img.shape[:2]
    gap = np.full((h, 4, 3), 255, dtype=np.uint8)
    pred, lab = colorize(prediction, palette), colorize(label, palette)
    if pred.shape[:2] != (h, w) or lab.shape[:2] != (h, w):
        raise ValueError(f"image {img.shape[:2]}, prediction {pred.shape[:2]} and label {lab.shape[:2]} differ")
    return np.concatenate([img, gap, pred, gap, lab], axis=1)
