"""Dubai aerial imagery (Humans in the Loop), the Potsdam-like proxy.

Layout under the data root::

    dubai-aerial/tile1 .. tile8/images/image_part_00N.jpg   RGB
    dubai-aerial/tile1 .. tile8/masks/image_part_00N.png    RGB (or palette) colour codes

Colour -> class (exact RGB match; ``classes.json`` of the source does NOT match the
masks, these are the colours that occur)::

    #8429F6 Land (unpaved) -> 0      #E2A929 Water      -> 1
    #3C1098 Building       -> 2      #FEDD3A Vegetation -> 3
    #6EC1E4 Road           -> 4
    #9B9B9B Unlabeled, #000000, and every other colour -> -1 (ignore)

``dubai_aerial`` (default) has these 5 classes.  ``dubai_aerial3`` is a Potsdam-3-style
grouping chosen by this project: 0 man-made = {Building, Road}; 1 natural ground =
{Land, Vegetation}; 2 water = {Water} (pixel shares about 23 / 63 / 14 %).

Tiles differ in size (509x544 .. 2149x1479) and ground resolution, so every tile image is
cut into non-overlapping ``250x250`` crops on a grid centred in the image
(``n = floor(W / 250)`` columns, ``floor(H / 250)`` rows, the left-over margin split
evenly, left/top getting the smaller half); the rest is discarded (about 16 % of the
pixels).  250 keeps the smallest tile (509 wide) at 2x2 crops and is close to STEGO's
200x200 Potsdam tiles.  Splits are by tile: tiles 1-6 train (459 crops), tile 7 val
(504 crops), tile 8 test (360 crops).  The crop index is computed from the image headers
once and cached in ``cache_dir('datasets')``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from equss.errors import EqussError
from equss.data.base import (DatasetInfo, Sample, SegDataset, cached_index, check_same_size, image_size,
                   list_images, mtime_key, require_dir)

DUBAI_FOLDER = "dubai-aerial"
DUBAI_CROP = 250
DUBAI_SPLIT_TILES = {"train": (1, 2, 3, 4, 5, 6), "val": (7,), "test": (8,), "all": tuple(range(1, 9))}
DUBAI_COLOURS = {  # RGB hex -> (5-class id, name)
    "8429F6": (0, "Land"),
    "E2A929": (1, "Water"),
    "3C1098": (2, "Building"),
    "FEDD3A": (3, "Vegetation"),
    "6EC1E4": (4, "Road"),
}
DUBAI_IGNORE_COLOURS = ("9B9B9B", "000000")
DUBAI5_TO_3 = {0: 1, 1: 2, 2: 0, 3: 1, 4: 0}
DUBAI3_CLASSES = ("man-made (building, road)", "natural ground (land, vegetation)", "water")


def _hex_to_rgb(h: str) -> tuple[int, int, int]:
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


DUBAI_PALETTE5 = np.array([_hex_to_rgb(h) for h in DUBAI_COLOURS], dtype=np.uint8)
DUBAI_PALETTE3 = np.array([[60, 16, 152], [132, 41, 246], [226, 169, 41]], dtype=np.uint8)

_HINT = ("download the 'Semantic segmentation of aerial imagery' set (Humans in the Loop; "
         "e.g. github.com/Kaarti22/satellite-imagery) and unpack it as "
         "DATA_ROOT/dubai-aerial/tile1..tile8/{images,masks}")

INFO5 = DatasetInfo(
    name="dubai_aerial", n_classes=5, class_names=tuple(n for _, n in DUBAI_COLOURS.values()),
    default_resolution=448, palette=DUBAI_PALETTE5, splits=tuple(DUBAI_SPLIT_TILES),
    folder=DUBAI_FOLDER,
    description=f"Dubai aerial tiles cut into {DUBAI_CROP}x{DUBAI_CROP} crops; tiles 1-6 "
                "train, 7 val, 8 test",
    label_mapping="exact RGB: #8429F6 Land 0, #E2A929 Water 1, #3C1098 Building 2, "
                  "#FEDD3A Vegetation 3, #6EC1E4 Road 4; #9B9B9B, #000000, others -> -1",
    extra={"crop": DUBAI_CROP, "split_tiles": DUBAI_SPLIT_TILES, "colours": DUBAI_COLOURS},
)
INFO3 = DatasetInfo(
    name="dubai_aerial3", n_classes=3, class_names=DUBAI3_CLASSES, default_resolution=448,
    palette=DUBAI_PALETTE3, splits=tuple(DUBAI_SPLIT_TILES), folder=DUBAI_FOLDER,
    description="Dubai aerial, Potsdam-3-style grouping of the 5 classes",
    label_mapping="{Building, Road} -> 0 man-made; {Land, Vegetation} -> 1 natural ground; "
                  "{Water} -> 2; ignore colours as dubai_aerial",
    extra={"crop": DUBAI_CROP, "split_tiles": DUBAI_SPLIT_TILES, "from_5": DUBAI5_TO_3},
)


def colour_mask_to_classes(rgb: np.ndarray, grouping: dict[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 colour mask -> int64 (H, W) class ids by exact colour; else -1."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError("expected an (H, W, 3) RGB mask")
    code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    out = np.full(code.shape, -1, dtype=np.int64)
    for hexcol, (cid, _) in DUBAI_COLOURS.items():
        r, g, b = _hex_to_rgb(hexcol)
        out[code == ((r << 16) | (g << 8) | b)] = grouping[cid] if grouping else cid
    return out


def grid_boxes(width: int, height: int, size: int = DUBAI_CROP):
    """Non-overlapping size x size boxes (left, top, right, bottom) on a centred grid."""
    nx, ny = width // size, height // size
    ox, oy = (width - nx * size) // 2, (height - ny * size) // 2
    return [(ox + i * size, oy + j * size, ox + (i + 1) * size, oy + (j + 1) * size)
            for j in range(ny) for i in range(nx)]


class DubaiAerial(SegDataset):
    info = INFO5
    grouping: dict[int, int] | None = None

    def sequence(self, index: int) -> str:
        """The photo a crop is cut from (``tile8/image_part_003``): its crops are neighbours."""
        image = Path(self.samples[index // self._n_per].image)
        return f"{image.parent.parent.name}/{image.stem}"

    def _build_index(self):
        d = require_dir(self.root / DUBAI_FOLDER, self.info.name, _HINT)
        tiles = DUBAI_SPLIT_TILES[self.split]
        tile_dirs = []
        for t in tiles:
            td = d / f"tile{t}"
            if not (td / "images").is_dir() or not (td / "masks").is_dir():
                raise EqussError(f"folder {td}/images or {td}/masks is missing; {_HINT}")
            tile_dirs.append(td)
        key = [str(d.resolve()), f"crop{DUBAI_CROP}", "dubai-index-v1"]
        key += [mtime_key(td / "images", td / "masks") for td in tile_dirs]

        def build():
            from equss.progress import bar as progress_bar
            samples = []
            pairs = []
            for td in tile_dirs:
                imgs = list_images(td / "images", recursive=False)
                if not imgs:
                    raise EqussError(f"folder {td / 'images'} has no images; {_HINT}")
                pairs += [(td, p) for p in imgs]
            for td, img in progress_bar(pairs, desc=f"indexing dubai-aerial {self.split}", leave=False,
                                disable=len(pairs) < 20):
                mask = td / "masks" / (img.stem + ".png")
                w, h = image_size(img, "image")
                if not mask.is_file():
                    raise EqussError(f"mask {mask} for image {img} is missing; {_HINT}")
                check_same_size((w, h), image_size(mask, "label"), img, mask)
                for k, box in enumerate(grid_boxes(w, h)):
                    samples.append(Sample(f"{td.name}_{img.stem}_c{k:02d}", str(img), str(mask), box))
            return samples

        return cached_index(f"{self.info.name}-{self.split}", key, build)

    def _map_label(self, label_img: Image.Image, path: str) -> np.ndarray:
        if label_img.mode != "RGB":
            label_img = label_img.convert("RGB")
        rgb = np.asarray(label_img)
        out = colour_mask_to_classes(rgb, self.grouping)
        code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        void = np.isin(code, [int(c, 16) for c in DUBAI_IGNORE_COLOURS])
        self._note_unknown(path, (out < 0) & ~void, rgb[..., :3])  # class colours or the two void colours
        return out


class DubaiAerial3(DubaiAerial):
    info = INFO3
    grouping = DUBAI5_TO_3
