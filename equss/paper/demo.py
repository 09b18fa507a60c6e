"""What ``notebooks/demo.ipynb`` calls: segment a folder of images with a shipped model, overlays
with a class legend (with and without the dense CRF), and the codeword explorer (Eq. 8-9 made
visible: which pixels share a picked pixel's code in at least k of the M codebooks).

Images: a folder or a list of files, else the first CamVid test images under the data root.
Ground truth is used where there is one (CamVid's ``testannot/``; an image folder's
``labels/<path>.png`` with ``classes.txt``, see :mod:`equss.data.folder`); everything works
without it (the explorer then compares with the model's own classes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from equss.errors import EqussError
from equss.eval.codewords import cell_of, shared_codebooks, shared_region, sharing_by_class, upsample_nearest


# ---------------------------------------------------------------------------- inputs
@dataclass
class Item:
    path: Path
    labels: Path | None = None  # ground truth (class ids, other values ignore), if any
    n_label_classes: int = 0


def find_images(images=None, data_root=None, n_images: int = 2, scale: str | None = None) -> list[Item]:
    """The images to segment: ``images`` (a folder, a file, or a list of them), else the first
    ``n_images`` CamVid test images of the data root (``data_root``, else ``$EQUSS_DATA``, else
    ``./data``; at ``scale="smoke"`` with none of them, the generated smoke set, as the other notebooks:
    a fresh clone's ``make test`` needs no data).  Stops with one line (an
    :class:`~equss.errors.EqussError`, which a notebook shows as one line) when there are none."""
    from equss.data.base import list_images
    from equss.data.folder import CLASSES, LABELS, read_classes

    if images is None:
        from equss import paths
        from equss.data.synthetic import smoke_data_root

        try:
            root = smoke_data_root(data_root) if scale == "smoke" else paths.data_root(data_root)
        except EqussError as exc:
            raise EqussError(f"no images to segment: {exc}; set the `images` parameter to a folder of images, "
                               "or EQUSS_DATA to a data root with CamVid") from None
        test = root / "CamVid" / "test"
        files = list_images(test, recursive=False)[: max(1, int(n_images))] if test.is_dir() else []
        if not files:
            raise EqussError(f"no CamVid test images under {root} (CamVid/test); set the `images` parameter to "
                               "a folder of images, or EQUSS_DATA to a data root with CamVid (`equss prepare camvid "
                               "--download`)")
        annot = root / "CamVid" / "testannot"
        return [Item(f, annot / f"{f.stem}.png" if (annot / f"{f.stem}.png").is_file() else None, 11) for f in files]
    items: list[Item] = []
    for entry in [images] if isinstance(images, (str, os.PathLike)) else list(images):
        p = Path(entry).expanduser()
        if p.is_file():
            items.append(Item(p))
        elif p.is_dir():
            names = read_classes(p)
            for f in list_images(p):
                rel = f.relative_to(p)
                if rel.parts[0] == LABELS and names is not None:
                    continue
                lab = p / LABELS / rel.with_suffix(".png")
                items.append(Item(f, lab if names is not None and lab.is_file() else None, len(names or [])))
        else:
            raise EqussError(f"images {str(p)!r} not found; set `images` to an image file or a folder of images")
    if not items:
        raise EqussError(f"no image files in {images!r}; set `images` to a folder of images ({CLASSES} and "
                           f"{LABELS}/ optional)")
    return items[: max(1, int(n_images))] if n_images else items


def load(model: str = "camvid-equss", device: str = "auto"):
    """The shipped model with its backbone (:class:`equss.pipeline.segmenter.Segmenter`)."""
    from equss.pipeline.segmenter import Segmenter

    return Segmenter.load(model, device=device)


def read_labels(item: Item, size: tuple[int, int]) -> np.ndarray | None:
    """Ground truth (H, W) int64 for an image of ``size`` (W, H); values outside the classes -> -1
    (None without labels, or when the label file has another size)."""
    if item.labels is None:
        return None
    from PIL import Image

    with Image.open(item.labels) as im:
        lab = np.asarray(im).astype(np.int64)
    if lab.ndim != 2 or (lab.shape[1], lab.shape[0]) != tuple(size):
        return None
    return np.where((lab >= 0) & (lab < item.n_label_classes), lab, -1)


def load_item(seg, item: Item, shorter_side: int | None = None):
    """``(RGB PIL image, ground truth or None)``, both resized so that the shorter side is
    ``shorter_side`` (image: bilinear, antialiased; labels: nearest) when given."""
    from PIL import Image

    img = seg.to_rgb(item.path)
    truth = read_labels(item, img.size)
    if shorter_side and min(img.size) != int(shorter_side):
        w, h = img.size
        scale = int(shorter_side) / min(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = img.resize(size, Image.BILINEAR, reducing_gap=None)
        if truth is not None:
            truth = np.asarray(Image.fromarray(truth.astype(np.int32), mode="I").resize(size, Image.NEAREST))
            truth = truth.astype(np.int64)
    return img, truth


# ---------------------------------------------------------------------------- segmentations
def segment_all(seg, items: list[Item], crf: bool = True, resolution: int | None = None,
                shorter_side: int | None = None) -> list[dict]:
    """Per image: the RGB array, class ids without (and with) the CRF, and the ground truth;
    ``shorter_side``: work on the images downscaled to that size (quick runs)."""
    from equss.progress import bar

    out = []
    for item in bar(items, desc="segment", unit="img"):
        img, truth = load_item(seg, item, shorter_side)
        lp = seg.logprobs(img, resolution=resolution)  # one pass of the backbone for both decisions
        labels = seg.decide(lp, img)
        refined = seg.decide(lp, img, crf=True) if crf else None
        out.append({"name": item.path.name, "image": np.asarray(img), "labels": labels, "labels_crf": refined,
                    "truth": truth})
    return out


def overlay(image: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Class colours alpha-blended over the image (pixels without a class keep the image)."""
    lab = np.asarray(labels)
    pal = np.asarray(palette, dtype=np.float32)
    ok = (lab >= 0) & (lab < len(pal))
    out = image.astype(np.float32).copy()
    out[ok] = (1 - alpha) * out[ok] + alpha * pal[lab[ok]]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def legend_entries(seg) -> list[tuple[str, np.ndarray]]:
    """``(text, colour)`` per class: the class name and the clusters the Hungarian match gave it."""
    names = seg.class_names
    by_class: dict[int, list[int]] = {}
    for cluster, cls in enumerate(seg.assignment or []):
        by_class.setdefault(int(cls), []).append(cluster)
    entries = []
    for c, name in enumerate(names):
        clusters = by_class.get(c, [])
        text = f"{name} (cluster {', '.join(map(str, clusters))})" if clusters else f"{name} (no cluster)"
        entries.append((text, np.asarray(seg.palette[c], dtype=np.float32) / 255))
    if by_class.get(-1):
        entries.append((f"no class (cluster {', '.join(map(str, by_class[-1]))})", np.zeros(3)))
    return entries


def overlay_figure(seg, results: list[dict], alpha: float = 0.55):
    """One row per image: the image, the overlay without CRF, with CRF, the ground truth; a legend
    of the classes and the clusters mapped to them."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    cols = [("image", None), ("EQUSS" if seg.model.quantizer is not None else "STEGO", "labels")]
    if any(r["labels_crf"] is not None for r in results):
        cols.append((cols[1][0] + " + CRF", "labels_crf"))
    if any(r["truth"] is not None for r in results):
        cols.append(("ground truth", "truth"))
    h, w = results[0]["image"].shape[:2]
    fig, axes = plt.subplots(len(results), len(cols), figsize=(3.2 * len(cols), (3.2 * h / w + 0.4) * len(results) + 0.9),
                             squeeze=False)
    for row, r in zip(axes, results):
        for ax, (title, key) in zip(row, cols):
            shown = r["image"] if key is None else (overlay(r["image"], r[key], seg.palette, alpha)
                                                    if r.get(key) is not None else np.full_like(r["image"], 255))
            ax.imshow(shown)
            ax.set_title(title if key is None or r.get(key) is not None else f"{title}: none", fontsize=9)
            ax.set_axis_off()
        row[0].set_title(r["name"], fontsize=9)
    handles = [Patch(facecolor=c, edgecolor="0.3", label=t) for t, c in legend_entries(seg)]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12 if len(handles) > 4 else 0.06, 1, 1))
    return fig


# ---------------------------------------------------------------------------- codeword explorer
class CodewordExplorer:
    """Which pixels share a picked pixel's code, for one image.

    ``codes`` are the PQ indices (M, h, w) of the image resized as the model sees it (shorter
    side ``resolution``); pixels are picked in that resized image, and every map is computed on the
    feature grid (one cell per 14 x 14 patch) and shown over the image.  Classes: the ground truth
    when given, else the model's own segmentation (it works without labels).
    """

    def __init__(self, seg, image, resolution: int | None = None, truth: np.ndarray | None = None,
                 classes: np.ndarray | None = None):
        from PIL import Image

        self.seg = seg
        self.codes, resized = seg.codes(image, resolution=resolution)
        self.image = np.asarray(resized)
        self.M, self.h, self.w = self.codes.shape
        H, W = self.image.shape[:2]
        self.size = (H, W)

        def resize(labels):
            return np.asarray(Image.fromarray(np.asarray(labels, dtype=np.int32), mode="I").resize(
                (W, H), Image.NEAREST)).astype(np.int64)

        # the model's classes (``classes``: already computed for ``image``), and the ground truth if any
        self.class_maps = {"model": resize(classes) if classes is not None else
                           seg.segment(resized, resolution=min(H, W))}
        if truth is not None:
            self.class_maps["ground truth"] = resize(truth)

    def cell(self, y: int, x: int) -> tuple[int, int]:
        return cell_of((y, x), self.size, (self.h, self.w))

    def cell_classes(self, source: str = "model") -> np.ndarray:
        """The class of each feature cell: the most frequent class among its pixels (-1 if none)."""
        cmap = self.class_maps[source]
        n = len(self.seg.class_names)
        H, W = self.size
        rows = (np.arange(H) * self.h) // H
        cols = (np.arange(W) * self.w) // W
        cell_id = (rows[:, None] * self.w + cols[None, :]).ravel()
        lab = cmap.ravel()
        ok = (lab >= 0) & (lab < n)
        counts = np.zeros((self.h * self.w, n + 1), dtype=np.int64)
        np.add.at(counts, (cell_id, np.where(ok, lab, n)), 1)
        out = counts[:, :n].argmax(1)
        out[counts[:, :n].sum(1) == 0] = -1
        return out.reshape(self.h, self.w)

    def maps(self, y: int, x: int, k: int, codebook: int = 0, source: str = "model") -> dict:
        """Everything the figure shows, on the feature grid: shared counts, the >= k region, the code
        map of one codebook, the class statistics (:func:`equss.eval.codewords.sharing_by_class`)."""
        if not 0 <= int(codebook) < self.M:
            raise EqussError(f"codebook must be between 0 and {self.M - 1}, got {codebook}")
        cy, cx = self.cell(y, x)
        classes = self.cell_classes(source)
        return {"cell": (cy, cx), "shared": shared_codebooks(self.codes, cy, cx),
                "region": shared_region(self.codes, cy, cx, k), "code_map": self.codes[int(codebook)],
                "classes": classes, "picked_class": int(classes[cy, cx]),
                "by_class": sharing_by_class(self.codes, cy, cx, k, classes, len(self.seg.class_names))}

    def figure(self, y: int, x: int, k: int, codebook: int = 0, source: str = "model"):
        """Image with the picked pixel | codebooks shared with it (0..M) | the region sharing >= k |
        the code map of one codebook | per class: mean shared codebooks and share of the region."""
        import matplotlib.pyplot as plt

        m = self.maps(y, x, k, codebook, source)
        H, W = self.size
        names = self.seg.class_names
        fig = plt.figure(figsize=(15, 6.4))
        grid = fig.add_gridspec(2, 4, height_ratios=[1, 0.8])
        ax = [fig.add_subplot(grid[0, i]) for i in range(4)]
        ax[0].imshow(self.image)
        ax[0].set_title(f"picked pixel (row {y}, col {x})\nclass: "
                        f"{names[m['picked_class']] if m['picked_class'] >= 0 else 'none'} ({source})", fontsize=9)
        im = ax[1].imshow(upsample_nearest(m["shared"], (H, W)), cmap="magma", vmin=0, vmax=self.M)
        ax[1].set_title(f"codebooks shared with it (of M={self.M})", fontsize=9)
        fig.colorbar(im, ax=ax[1], fraction=0.035)
        region = upsample_nearest(m["region"], (H, W))[..., None]
        img = self.image.astype(np.float32)
        shown = np.where(region, 0.45 * img + 0.55 * np.float32([255, 220, 0]), 0.4 * img)
        ax[2].imshow(np.clip(shown, 0, 255).astype(np.uint8))
        ax[2].set_title(f"sharing its code in >= {k} of {self.M} codebooks (yellow)\n({int(m['region'].sum())} of "
                        f"{self.h * self.w} cells)", fontsize=9)
        tab = plt.get_cmap("tab20")(np.arange(20))[:, :3]
        ax[3].imshow(tab[(upsample_nearest(m["code_map"], (H, W)) * 7) % 20], interpolation="nearest")
        ax[3].set_title(f"code map of codebook {codebook}\n({len(np.unique(m['code_map']))} of its "
                        f"K={self.seg.cfg.model.codebook_size} codewords here)", fontsize=9)
        for a in ax:
            a.plot([x], [y], marker="x", color="cyan", markersize=10, mew=2)
            a.set_axis_off()
        bc = m["by_class"]
        present = [c for c in range(len(names)) if bc["pixels"][c] > 0]
        b1, b2 = fig.add_subplot(grid[1, :2]), fig.add_subplot(grid[1, 2:])
        colours = [np.asarray(self.seg.palette[c], dtype=np.float32) / 255 for c in present]
        b1.bar(range(len(present)), [bc["mean_shared"][c] for c in present], color=colours, edgecolor="0.3")
        b1.axhline(k, color="0.4", ls="--", lw=1)
        b1.set_ylabel("mean codebooks shared")
        b1.set_title(f"per class ({source}): codebooks its cells share with the picked one (Eq. 9: M - distance)",
                     fontsize=9)
        b2.bar(range(len(present)), [100 * bc["region_share"][c] for c in present], color=colours, edgecolor="0.3")
        b2.set_ylabel("% of the shared region")
        b2.set_title(f"which classes the region sharing >= {k} codebooks is made of", fontsize=9)
        for b in (b1, b2):
            b.set_xticks(range(len(present)), [names[c] for c in present], rotation=30, ha="right", fontsize=8)
        fig.tight_layout()
        return fig

    def widget(self, y: int | None = None, x: int | None = None, k: int | None = None):
        """Sliders for the pixel, k and the codebook, a class source; the figure redraws."""
        import ipywidgets as widgets
        import matplotlib.pyplot as plt
        from IPython.display import display

        H, W = self.size
        controls = {
            "y": widgets.IntSlider(value=H // 2 if y is None else y, min=0, max=H - 1, description="row"),
            "x": widgets.IntSlider(value=W // 2 if x is None else x, min=0, max=W - 1, description="column"),
            "k": widgets.IntSlider(value=max(1, self.M * 3 // 4) if k is None else k, min=1, max=self.M,
                                   description="k (of M)"),
            "codebook": widgets.IntSlider(value=0, min=0, max=self.M - 1, description="codebook"),
            "source": widgets.Dropdown(options=list(self.class_maps), value="model", description="classes"),
        }
        def draw(**kw):  # interactive_output runs it inside its Output widget, cleared before each redraw
            fig = self.figure(**kw)
            display(fig)
            plt.close(fig)

        out = widgets.interactive_output(draw, controls)
        box = widgets.VBox([widgets.HBox([controls["y"], controls["x"]]),
                            widgets.HBox([controls["k"], controls["codebook"], controls["source"]]), out])
        return box
