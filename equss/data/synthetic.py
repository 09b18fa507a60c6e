"""The generated smoke data set: CamVid and Dubai aerial in their on-disk layouts, made of a few small
synthetic images, so ``make test`` (smoke scale: a few images per split) runs on a machine with no
data and no network.

Each image is a random partition into class regions (horizontal bands cut by rectangles, so a
region is a class as in a street or aerial scene); a pixel's colour is its class's base colour
plus noise, so the features a backbone sees do carry the labels.  The numbers a smoke run gets on
it mean nothing about the paper: smoke only checks that every step runs.

``smoke_data(root)`` writes both data sets under ``root`` (once: a ``complete`` marker is written
last) and returns ``root``; :func:`equss.paths.smoke_data_root` decides when it is used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

MARKER = ".equss-smoke-complete"
VERSION = "1"
CAMVID_SPLITS = {"train": 8, "val": 8, "test": 8}
CAMVID_SIZE = (240, 180)  # half of CamVid's 480 x 360
CAMVID_CLASSES = 11       # 0..10; 11 is void
DUBAI_SIZE = (509, 544)   # the smallest real tile: 2 x 2 crops of 250 px


def _scene(rng: np.random.Generator, width: int, height: int, n_classes: int) -> np.ndarray:
    """Class ids (H, W): three horizontal bands, each a class, cut by a few rectangles of other classes."""
    lab = np.zeros((height, width), np.uint8)
    cuts = np.sort(rng.integers(height // 5, 4 * height // 5, 2))
    for band, (top, bottom) in enumerate(zip([0, *cuts], [*cuts, height])):
        lab[top:bottom] = rng.integers(0, n_classes)
    for _ in range(int(rng.integers(2, 6))):
        w, h = int(rng.integers(width // 8, width // 3)), int(rng.integers(height // 8, height // 3))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        lab[y:y + h, x:x + w] = rng.integers(0, n_classes)
    return lab


def _render(rng: np.random.Generator, lab: np.ndarray, palette: np.ndarray) -> np.ndarray:
    noise = rng.normal(0, 18, lab.shape + (3,))
    return np.clip(palette[lab].astype(np.float64) + noise, 0, 255).astype(np.uint8)


def write_camvid(root: Path, seed: int = 0) -> None:
    """``root/CamVid``: {train,val,test}/*.png, {split}annot/*.png (class ids 0..10), {split}.txt."""
    from equss.data.camvid import CAMVID_PALETTE

    rng = np.random.default_rng(seed)
    palette = np.asarray(CAMVID_PALETTE, np.uint8)[:CAMVID_CLASSES]
    d = root / "CamVid"
    for split, n in CAMVID_SPLITS.items():
        (d / split).mkdir(parents=True, exist_ok=True)
        (d / f"{split}annot").mkdir(exist_ok=True)
        lines = []
        for i in range(n):
            name = f"Synth{split[:2]}_{i:06d}.png"
            lab = _scene(rng, *CAMVID_SIZE, CAMVID_CLASSES)
            Image.fromarray(_render(rng, lab, palette)).save(d / split / name)
            Image.fromarray(lab, mode="L").save(d / f"{split}annot" / name)
            lines.append(f"{split}/{name} {split}annot/{name}")
        (d / f"{split}.txt").write_text("\n".join(lines) + "\n")


def write_dubai(root: Path, seed: int = 1) -> None:
    """``root/dubai-aerial/tile1..tile8/{images,masks}``: one image per tile, masks in the set's colour codes."""
    from equss.data.dubai import DUBAI_COLOURS, DUBAI_PALETTE5

    rng = np.random.default_rng(seed)
    colours = np.array([[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in DUBAI_COLOURS], np.uint8)
    for t in range(1, 9):
        td = root / "dubai-aerial" / f"tile{t}"
        (td / "images").mkdir(parents=True, exist_ok=True)
        (td / "masks").mkdir(exist_ok=True)
        lab = _scene(rng, *DUBAI_SIZE, len(DUBAI_COLOURS))
        Image.fromarray(_render(rng, lab, DUBAI_PALETTE5)).save(td / "images" / "image_part_001.jpg", quality=95)
        Image.fromarray(colours[lab]).save(td / "masks" / "image_part_001.png")


def smoke_data(root: str | Path) -> Path:
    """Write the generated smoke data under ``root`` unless it is already complete; returns ``root``."""
    root = Path(root)
    marker = root / MARKER
    if marker.is_file() and marker.read_text().strip() == VERSION:
        return root
    write_camvid(root)
    write_dubai(root)
    marker.write_text(VERSION + "\n")
    return root


def smoke_data_root(explicit: str | Path | None = None) -> Path:
    """The data root at smoke scale: ``explicit``, ``EQUSS_DATA`` or ``./data`` when given or present
    (:func:`equss.paths.data_root`), else the generated smoke set in the cache folder (made once)."""
    import os

    from equss import paths

    if explicit is not None or os.environ.get("EQUSS_DATA") or Path("data").is_dir():
        return paths.data_root(explicit)
    return smoke_data(paths.cache_dir("smoke-data")).resolve()
