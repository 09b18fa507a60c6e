"""Synthetic copies of the paper's datasets in their exact on-disk layouts, and random
backbone weights files in the formats equss loads (for the paper-scale dry run,
``tests/test_paper_dry_run.py``).

A handful of small images each, written with the file formats of the real data:

* ``write_cocostuff(root)``: STEGO's CocoStuff copy (``equss/data/cocostuff.py``):
  ``cocostuff/images/{train2017,val2017}/ID.jpg``, ``cocostuff/annotations/.../ID.png``
  (stuffthingmaps: single-channel PNG, fine ids 0..181 and 255 = unlabeled),
  ``cocostuff/curated/{train2017,val2017}/Coco164kFull_Stuff_Coarse{,_7}.txt``; the curated
  lists name a subset of the images (as STEGO's do).
* ``write_cityscapes(root)``: ``cityscapes/leftImg8bit/{train,val}/CITY/CITY_xxx_yyy_leftImg8bit.png``
  and ``cityscapes/gtFine/.../CITY_xxx_yyy_gtFine_{labelIds,color,instanceIds}.png`` +
  ``_polygons.json`` (labelIds 0..33, -1 of the license plate written as 255 is not in gtFine).
* ``write_potsdam(root)``: STEGO's Potsdam copy: ``potsdam/imgs/ID.mat`` (key ``img``,
  H x W x 4 uint8: RGB + IR), ``potsdam/gt/ID.mat`` (key ``gt``, ids 0..5 and 255),
  ``labelled_train.txt``, ``labelled_test.txt``, ``unlabelled_train.txt`` (tiles without gt)
  and ``all.txt``.

Each writer returns a dict with the number of images per split.  Images are blocks of class
colours plus noise (so features are not degenerate) in several sizes and aspect ratios.

Weights: :func:`write_dino_release` writes a DINO-release-format file (a plain state dict
with the DINO/timm ViT key names, random weights) and :func:`write_state_dict` any timm ViT
as a plain state dict (for ``train.weights``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COCO_TRAIN_IDS = ["000000000009", "000000000025", "000000000030", "000000000034"]
COCO_VAL_IDS = ["000000000139", "000000000285", "000000000632"]
COCO_NOT_CURATED = ["000000000042"]  # an image on disk that the curated lists leave out
# (height, width): landscape, portrait, square (COCO images have both orientations)
COCO_SIZES = [(72, 96), (96, 72), (80, 80), (64, 88)]
CITY_TRAIN = {"aachen": ["aachen_000000_000019", "aachen_000001_000019"], "bochum": ["bochum_000000_000313"]}
CITY_VAL = {"frankfurt": ["frankfurt_000000_000294", "frankfurt_000000_000576"], "lindau": ["lindau_000000_000019"]}
CITY_SIZE = (64, 128)  # Cityscapes is 1024 x 2048: 1:2
POTSDAM_TRAIN = ["2_10_0_0", "2_10_0_1", "3_11_0_0"]
POTSDAM_TEST = ["6_7_0_0", "6_7_0_1"]
POTSDAM_UNLABELLED = ["7_8_0_0"]
POTSDAM_SIZE = (80, 80)  # STEGO's tiles are square


def _blocks(h: int, w: int, values: np.ndarray, rng: np.random.Generator, block: int = 16) -> np.ndarray:
    """A label map of ``block``-pixel squares, each one value drawn from ``values``."""
    gh, gw = -(-h // block), -(-w // block)
    grid = rng.choice(values, size=(gh, gw))
    return np.kron(grid, np.ones((block, block), dtype=grid.dtype))[:h, :w]


def _image(label: np.ndarray, rng: np.random.Generator, channels: int = 3) -> np.ndarray:
    """uint8 image whose colour follows the label (one colour per value) plus noise."""
    palette = np.random.default_rng(12345).integers(0, 256, (256, channels))
    img = palette[label.astype(np.int64) % 256] + rng.normal(0, 12, label.shape + (channels,))
    return np.clip(img, 0, 255).astype(np.uint8)


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def write_cocostuff(root: str | Path, seed: int = 0) -> dict:
    """STEGO's CocoStuff layout under ``root/cocostuff``; returns images per split."""
    d = Path(root) / "cocostuff"
    rng = np.random.default_rng(seed)
    fine_ids = np.concatenate([np.arange(0, 182), [255]]).astype(np.uint8)
    for split, ids in (("train2017", COCO_TRAIN_IDS + COCO_NOT_CURATED), ("val2017", COCO_VAL_IDS)):
        for i, sid in enumerate(ids):
            h, w = COCO_SIZES[i % len(COCO_SIZES)]
            fine = _blocks(h, w, fine_ids, rng)
            path = d / "images" / split / f"{sid}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_image(fine, rng)).save(path, quality=90)
            _png(d / "annotations" / split / f"{sid}.png", fine)  # mode "L": single channel
    # STEGO's curated folder holds both lists for each split; equss reads the full train list
    # and val subset 7
    for split, ids in (("train2017", COCO_TRAIN_IDS), ("val2017", COCO_VAL_IDS)):
        folder = d / "curated" / split
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Coco164kFull_Stuff_Coarse.txt").write_text("".join(f"{i}\n" for i in ids))
        (folder / "Coco164kFull_Stuff_Coarse_7.txt").write_text("".join(f"{i}\n" for i in ids))
    return {"train": len(COCO_TRAIN_IDS), "val": len(COCO_VAL_IDS)}


def write_cityscapes(root: str | Path, seed: int = 1) -> dict:
    """The torchvision/Cityscapes layout (``mode="fine"``) under ``root/cityscapes``."""
    d = Path(root) / "cityscapes"
    rng = np.random.default_rng(seed)
    label_ids = np.arange(0, 34, dtype=np.uint8)  # gtFine labelIds: 0..33 (0..6 void)
    h, w = CITY_SIZE
    counts = {}
    for split, cities in (("train", CITY_TRAIN), ("val", CITY_VAL)):
        counts[split] = 0
        for city, stems in cities.items():
            for stem in stems:
                ids = _blocks(h, w, label_ids, rng)
                _png(d / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", _image(ids, rng))
                gt = d / "gtFine" / split / city
                _png(gt / f"{stem}_gtFine_labelIds.png", ids)
                _png(gt / f"{stem}_gtFine_color.png", np.dstack([_image(ids, rng), np.full((h, w), 255, np.uint8)]))
                Image.fromarray(ids.astype(np.uint16) * 1000).save(gt / f"{stem}_gtFine_instanceIds.png")  # 16-bit
                (gt / f"{stem}_gtFine_polygons.json").write_text(json.dumps({"imgHeight": h, "imgWidth": w, "objects": []}))
                counts[split] += 1
    return counts


def write_potsdam(root: str | Path, seed: int = 2) -> dict:
    """STEGO's Potsdam layout (.mat tiles) under ``root/potsdam``."""
    from scipy.io import savemat

    d = Path(root) / "potsdam"
    (d / "imgs").mkdir(parents=True, exist_ok=True)
    (d / "gt").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = POTSDAM_SIZE
    values = np.array([0, 1, 2, 3, 4, 5, 255], dtype=np.uint8)
    for tile in POTSDAM_TRAIN + POTSDAM_TEST + POTSDAM_UNLABELLED:
        gt = _blocks(h, w, values, rng)
        savemat(d / "imgs" / f"{tile}.mat", {"img": _image(gt, rng, channels=4)})
        if tile not in POTSDAM_UNLABELLED:
            savemat(d / "gt" / f"{tile}.mat", {"gt": gt})
    lists = {"labelled_train.txt": POTSDAM_TRAIN, "labelled_test.txt": POTSDAM_TEST,
             "unlabelled_train.txt": POTSDAM_UNLABELLED,
             "all.txt": POTSDAM_TRAIN + POTSDAM_TEST + POTSDAM_UNLABELLED}
    for name, tiles in lists.items():
        (d / name).write_text("".join(f"{t}\n" for t in tiles))
    return {"train": len(POTSDAM_TRAIN), "val": len(POTSDAM_TEST)}


def write_all(root: str | Path) -> dict:
    """All three datasets under ``root``: ``{dataset name: images per split}``."""
    return {"cocostuff27": write_cocostuff(root), "cityscapes27": write_cityscapes(root),
            "potsdam3": write_potsdam(root)}


def write_state_dict(path: str | Path, arch: str, seed: int = 0, dtype=None) -> Path:
    """A timm ViT ``arch`` with random weights (timm's init) saved as a plain state dict
    (``num_classes=0``: no classifier keys, as DINO's backbone files)."""
    import timm
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vit = timm.create_model(arch, pretrained=False, num_classes=0)
    sd = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v) for k, v in vit.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return path


def write_dino_release(weights_dir: str | Path, seed: int = 0) -> Path:
    """``dino_deitsmall8_300ep_pretrain.pth`` in DINO's release format (a plain float32 state
    dict, DINO ViT key names: cls_token, pos_embed, patch_embed.proj.*, blocks.N.*, norm.*)
    with random weights, where ``dino_vits8`` looks for it (``$EQUSS_CACHE/weights/``)."""
    return write_state_dict(Path(weights_dir) / "dino_deitsmall8_300ep_pretrain.pth", "vit_small_patch8_224", seed)
