"""Inference on your own images: ``equss segment IMAGES_OR_FOLDERS... --model camvid-equss --out DIR``.

Model: ``--model NAME`` (a shipped model, ``models/NAME/``, loaded and checked by
:mod:`equss.pipeline.shipped`: no training, no network) or ``--checkpoint RUN/best.pt`` (a run of
``equss train``).

Input: image files and/or folders (searched recursively; extensions in
``equss.data.base.IMAGE_EXTENSIONS``).  Any size and mode: the EXIF orientation is applied
first (``PIL.ImageOps.exif_transpose``, so outputs match the image as viewers show it),
then RGBA/LA/palette (alpha dropped), grayscale, 16-bit and float images become 8-bit RGB
(:func:`equss.data.base.to_rgb8`).  All outputs have the (oriented) original size.

Two modes:

* ``resize`` (default, the evaluation protocol without the centre crop): the shorter side
  is resized to ``R`` (``--resolution``, default: the checkpoint's
  ``data.eval_resolution``) with the same interpolation as the datasets (``nearest``, as
  STEGO/EQUSS; ``--interp bilinear`` for antialiased downscaling of large photos), the
  image is padded (reflect) at the bottom/right to a multiple of the backbone patch size,
  backbone + head (+PQ) + probe run with flip averaging (the probe input is averaged with
  that of the horizontally flipped image, STEGO eval_segmentation.py), the log-probs are
  cropped back to the unpadded region and bilinearly upsampled to the original size.
  Note the probe input is upsampled to the resized size before the probes, as in
  evaluation: memory grows as ``d_E * R^2 * aspect`` (about 0.3 GB at R=224, 1.5 GB at
  R=448 for a 16:9 image with d_E=1024).
* ``tile`` (large images, e.g. aerial tiles): square windows of ``--tile-size T``
  original pixels (default ``T = R``) with ``--overlap`` (fraction of T, default 0.25)
  slide over the image (the last window in each direction is aligned with the border;
  images smaller than T are reflect-padded); each window is resized to ``R x R`` (no
  resize when ``T == R``), predicted as in ``resize`` mode, resized back to ``T x T``,
  and the log-probs of overlapping windows are averaged (uniform weights).  Checkpoints
  trained on ``dubai_aerial`` saw 250x250 crops resized to R: use ``--tile-size 250``.

Labels: ``--probe linear`` gives class ids.  ``--probe cluster`` (default) gives cluster
ids mapped to classes with the Hungarian assignment stored in the checkpoint
(``state["assignment"]``, cluster -> class, -1 unmatched) or given with
``--assignment eval.json`` (the ``cluster.assignment`` written by ``equss eval``); without
one the raw cluster ids are written and ``segment.json`` says so.  Unmatched clusters are
written as 255.  ``--crf``: STEGO's dense CRF (:func:`equss.eval.crf.dense_crf`) on the
full-size image before the argmax.

Outputs per image (``NAME`` = path relative to the input folder without extension;
sub-folders are mirrored; the extension is appended when two inputs share a name):
``NAME_labels.png`` (uint8 ids), ``NAME_color.png`` (the dataset palette for classes, the
PASCAL palette for raw clusters), ``NAME_overlay.jpg`` (colours alpha-blended over the
image), and ``segment.json`` (checkpoint, probe, mode, per-image sizes, class names,
skipped files, provenance).  A corrupt image in a folder, or one above Pillow's
decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``; downscale or tile it first), is
skipped with a warning; the run fails if no image succeeds.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from equss.errors import EqussError
from equss.progress import bar as progress_bar

PROBES = ("cluster", "linear")
MODES = ("resize", "tile")
INTERPS = ("nearest", "bilinear")
UNMATCHED = 255  # label value of clusters without a class in the assignment
MAX_RESOLUTION = 8192


# ---------------------------------------------------------------------------- reading
def load_image(path: str | os.PathLike) -> Image.Image:
    """Open ``path`` as 8-bit RGB with the EXIF orientation applied; EqussError if unreadable."""
    from equss.data.base import open_image, to_rgb8

    img = open_image(path)
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the image unusable
        pass
    try:
        return to_rgb8(img)
    except (OSError, ValueError) as exc:
        raise EqussError(f"cannot convert image file {path} (mode {img.mode}) to RGB ({exc}); "
                         "save it as an RGB PNG or JPEG") from None


def list_inputs(path: str | os.PathLike) -> tuple[Path, list[Path]]:
    """(root folder, image files) for a file or a folder; EqussError if missing or empty."""
    from equss.data.base import IMAGE_EXTENSIONS, list_images

    p = Path(path).expanduser()
    if p.is_file():
        return p.parent, [p]
    if p.is_dir():
        files = list_images(p)
        from equss.data.folder import CLASSES, LABELS

        if (p / CLASSES).is_file():  # a labelled image folder (equss.data.folder): its label PNGs are no inputs
            files = [f for f in files if f.relative_to(p).parts[0] != LABELS]
        if not files:
            raise EqussError(f"folder {p} has no image files ({' '.join(IMAGE_EXTENSIONS)}); "
                             "pass a folder with images or an image file")
        return p, files
    raise EqussError(f"input {str(p)!r} does not exist; pass an image file or a folder of images")


def output_names(root: Path, files: list[Path]) -> list[str]:
    """Output stem per file: relative path without extension, extension kept on clashes."""
    stems = [f.relative_to(root).with_suffix("").as_posix() for f in files]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s.lower()] = counts.get(s.lower(), 0) + 1
    return [s + "_" + f.suffix.lstrip(".").lower() if counts[s.lower()] > 1 else s
            for s, f in zip(stems, files)]


def check_resolution(value, patch_size: int | None = None, what: str = "--resolution") -> int:
    """A positive integer >= the patch size (and <= MAX_RESOLUTION); EqussError otherwise."""
    try:
        r = int(str(value).strip())
    except (TypeError, ValueError):
        raise EqussError(f"{what} must be a whole number of pixels (e.g. 224), got {value!r}") from None
    low = patch_size or 1
    if not low <= r <= MAX_RESOLUTION:
        raise EqussError(f"{what} {r} is out of range; use {low}..{MAX_RESOLUTION} pixels "
                         f"(at least the backbone patch size{'' if patch_size is None else f' {patch_size}'})")
    return r


def load_assignment(source, n_clusters: int, n_classes: int | None = None) -> list[int]:
    """Cluster -> class list from a list/dict or an ``eval.json`` file (``cluster.assignment``);
    every entry a class id below ``n_classes`` or -1 (unmatched)."""
    origin = "checkpoint"
    if isinstance(source, (str, os.PathLike)):
        origin = str(source)
        try:
            data = json.loads(Path(source).read_text())
        except FileNotFoundError:
            raise EqussError(f"assignment file {origin!r} not found; pass the eval.json written by `equss eval`") from None
        except (OSError, ValueError) as exc:
            raise EqussError(f"cannot read assignment file {origin!r} ({type(exc).__name__}); pass the eval.json "
                             "written by `equss eval`") from None
        if isinstance(data, dict):
            data = data.get("cluster", data)
            data = data.get("assignment") if isinstance(data, dict) else data
        source = data
    if isinstance(source, dict):
        source = [int(source.get(i, source.get(str(i), -1))) for i in range(n_clusters)]
    try:
        out = [int(v) for v in source]
    except (TypeError, ValueError):
        raise EqussError(f"assignment from {origin} is not a list of class ids") from None
    if len(out) != n_clusters:
        raise EqussError(f"assignment from {origin} has {len(out)} entries but the model has {n_clusters} clusters; "
                         "use the eval.json of this checkpoint")
    bad = [v for v in out if v < -1 or (n_classes is not None and v >= n_classes)]
    if bad:
        raise EqussError(f"assignment from {origin} maps clusters to class ids {sorted(set(bad))[:5]} outside "
                         f"-1..{(n_classes or 0) - 1}; use the eval.json of this checkpoint")
    return out


# ---------------------------------------------------------------------------- prediction
def _to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> ImageNet-normalised float32 (3, H, W)."""
    from equss.data.base import IMAGENET_MEAN, IMAGENET_STD

    t = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (t - mean) / std


def _pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pad (..., H, W) at the bottom/right to (h, w): reflect where possible, else replicate."""
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph <= 0 and pw <= 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    squeeze = x.ndim == 3
    y = F.pad(x[None] if squeeze else x, (0, max(pw, 0), 0, max(ph, 0)), mode=mode)
    return y[0] if squeeze else y


@torch.no_grad()
def predict_batch(model, backbone, images: torch.Tensor, probe: str = "cluster", flip: bool = True) -> torch.Tensor:
    """Log-probs (B, n, H, W) of normalised images (B, 3, H, W) of any size.

    The images are padded (reflect) to a multiple of the patch size and the predictions
    cropped back, so the output has exactly the input size.
    """
    p = backbone.patch_size
    H, W = images.shape[-2:]
    Hp, Wp = math.ceil(H / p) * p, math.ceil(W / p) * p
    x = _pad_to(images, Hp, Wp).to(backbone.device)
    feats = backbone(x).float()
    feats_flipped = backbone(x.flip(-1)).float() if flip else None
    out = model.predict(feats, (Hp, Wp), feats_flipped=feats_flipped)[probe]
    return out[..., :H, :W].float().cpu()


def _resize_tensor(x: torch.Tensor, size: tuple[int, int], interp: str) -> torch.Tensor:
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    if tuple(x.shape[-2:]) == tuple(size):
        return x
    mode = InterpolationMode.NEAREST if interp == "nearest" else InterpolationMode.BILINEAR
    return TF.resize(x, list(size), interpolation=mode, antialias=interp != "nearest")


def _window_starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


@torch.no_grad()
def segment_logprobs(model, backbone, image: Image.Image, cfg, probe: str = "cluster", mode: str = "resize",
                     resolution: int | None = None, tile_size: int | None = None, overlap: float = 0.25,
                     flip: bool = True, interp: str = "nearest", batch_size: int = 4) -> torch.Tensor:
    """Probe log-probabilities (n, H, W) at the size of ``image`` (PIL, converted to RGB)."""
    from equss.data.base import preprocess_image

    if probe not in PROBES:
        raise EqussError(f"unknown probe {probe!r}; choose cluster or linear")
    if interp not in INTERPS:
        raise EqussError(f"unknown interpolation {interp!r}; choose nearest or bilinear")
    img = image if image.mode == "RGB" else load_rgb_from_pil(image)
    W0, H0 = img.size
    R = check_resolution(resolution or cfg.data.eval_resolution, backbone.patch_size)
    if mode == "resize":
        x = preprocess_image(img, R, crop="none", interp=interp)[None]
        lp = predict_batch(model, backbone, x, probe=probe, flip=flip)
        return F.interpolate(lp, (H0, W0), mode="bilinear", align_corners=False)[0]
    if mode != "tile":
        raise EqussError(f"unknown mode {mode!r}; choose resize or tile")
    T = check_resolution(tile_size or R, 1, "--tile-size")
    if not 0.0 <= float(overlap) < 1.0:
        raise EqussError(f"--overlap must be a fraction in [0, 1), got {overlap}")
    stride = max(1, T - int(round(T * float(overlap))))
    full = _pad_to(_to_tensor(img), max(H0, T), max(W0, T))
    Hf, Wf = full.shape[-2:]
    boxes = [(t, l) for t in _window_starts(Hf, T, stride) for l in _window_starts(Wf, T, stride)]
    acc = None
    count = torch.zeros(Hf, Wf)
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i:i + batch_size]
        wins = torch.stack([full[:, t:t + T, l:l + T] for t, l in chunk])
        wins = _resize_tensor(wins, (R, R), interp)
        lp = predict_batch(model, backbone, wins, probe=probe, flip=flip)
        if T != R:
            lp = F.interpolate(lp, (T, T), mode="bilinear", align_corners=False)
        if acc is None:
            acc = torch.zeros(lp.shape[1], Hf, Wf)
        for (t, l), one in zip(chunk, lp):
            acc[:, t:t + T, l:l + T] += one
            count[t:t + T, l:l + T] += 1
    return (acc / count)[:, :H0, :W0]


def load_rgb_from_pil(image: Image.Image) -> Image.Image:
    """EXIF orientation + 8-bit RGB for an already opened PIL image."""
    from equss.data.base import to_rgb8

    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001
        pass
    return to_rgb8(image)


def segment_image(model, backbone, pil_image: Image.Image, cfg, probe: str = "cluster", mode: str = "resize",
                  resolution: int | None = None, crf: bool = False, assignment: list[int] | None = None,
                  tile_size: int | None = None, overlap: float = 0.25, flip: bool = True,
                  interp: str = "nearest", crf_backend: str = "auto") -> np.ndarray:
    """Segment one PIL image: int64 array (H, W) at the image's (EXIF-oriented) size.

    Values: class ids for ``probe="linear"``; for ``probe="cluster"`` class ids through
    ``assignment`` (cluster -> class, -1 unmatched -> -1 here) or raw cluster ids when
    ``assignment`` is None.
    """
    img = load_rgb_from_pil(pil_image)
    lp = segment_logprobs(model, backbone, img, cfg, probe=probe, mode=mode, resolution=resolution,
                          tile_size=tile_size, overlap=overlap, flip=flip, interp=interp)
    if crf:
        from equss.eval.crf import dense_crf

        lp = dense_crf(np.asarray(img, dtype=np.uint8), lp, backend=crf_backend, inputs="logits")
    pred = lp.argmax(0).numpy().astype(np.int64)
    if probe == "cluster" and assignment is not None:
        lut = np.asarray(assignment, dtype=np.int64)
        pred = lut[pred]
    return pred


# ---------------------------------------------------------------------------- outputs
def _palette(cfg, n_labels: int, classes: bool) -> np.ndarray:
    """256x3 uint8 colour table: the dataset palette for classes, else PASCAL; 255 black."""
    from equss.data import dataset_info
    from equss.data.base import pascal_palette

    lut = pascal_palette(256)
    if classes:
        try:
            pal = np.asarray(dataset_info(cfg.data.dataset).palette, dtype=np.uint8)
        except EqussError:
            pal = np.zeros((0, 3), np.uint8)
        if len(pal) >= n_labels:
            lut[:n_labels] = pal[:n_labels]
    lut[UNMATCHED] = 0
    return lut


def write_outputs(out_dir: Path, name: str, image: Image.Image, labels: np.ndarray, palette: np.ndarray,
                  alpha: float = 0.5) -> dict[str, str]:
    """Write NAME_labels.png / NAME_color.png / NAME_overlay.jpg; returns their relative paths."""
    ids = np.where((labels < 0) | (labels > 255), UNMATCHED, labels).astype(np.uint8)
    color = palette[ids]
    rgb = np.asarray(image, dtype=np.uint8)
    overlay = np.clip((1 - alpha) * rgb.astype(np.float32) + alpha * color.astype(np.float32) + 0.5, 0, 255)
    files = {"labels": f"{name}_labels.png", "color": f"{name}_color.png", "overlay": f"{name}_overlay.jpg"}
    (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids, mode="L").save(out_dir / files["labels"])
    Image.fromarray(color, mode="RGB").save(out_dir / files["color"])
    Image.fromarray(overlay.astype(np.uint8), mode="RGB").save(out_dir / files["overlay"], quality=90)
    return files


def _gather_inputs(inputs, out_dir: Path) -> tuple[list[Path], list[str], bool]:
    """(image files, output names, strict) of one or several inputs (files or folders).

    Names are relative paths within each folder input (a file input: its stem), made unique
    over all inputs (``_2``, ``_3`` ... appended).  ``strict``: a single file was given, so an
    unreadable one is an error rather than a skipped file."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise EqussError("no input given; pass image files or folders of images")
    files, names = [], []
    inside = out_dir.resolve()
    for item in items:
        root, found = list_inputs(item)
        if Path(item).expanduser().is_dir():  # never segment our own outputs when --out lies inside the input folder
            found = [f for f in found if inside not in f.resolve().parents]
            if not found:
                raise EqussError(f"folder {root} has no image files outside the output folder {out_dir}; "
                                 "pass a folder with images")
        files += found
        names += output_names(root, found)
    seen: dict[str, int] = {}
    unique = []
    for n in names:
        key = n.lower()
        seen[key] = seen.get(key, 0) + 1
        unique.append(n if seen[key] == 1 else f"{n}_{seen[key]}")
    strict = len(items) == 1 and Path(items[0]).expanduser().is_file()
    return files, unique, strict


def segment_paths(inputs, checkpoint: str | os.PathLike | None = None, out: str | os.PathLike = "segmentation",
                  probe: str = "cluster", mode: str = "resize", resolution=None, crf: bool = False,
                  tile_size=None, overlap: float = 0.25, flip: bool = True, interp: str = "nearest",
                  device: str = "auto", assignment: str | os.PathLike | None = None, alpha: float = 0.5,
                  progress: bool = True, model: str | os.PathLike | None = None) -> dict:
    """Segment image files and/or every image in folders with a checkpoint (``equss train``) or a
    shipped model (``model``: a name under ``models/`` or a model folder, checked by
    :func:`equss.pipeline.shipped.load_model`); writes the outputs and ``segment.json``."""
    from equss.device import device_description, resolve_device
    from equss.io import write_json
    from equss.pipeline.inputs import make_backbone
    from equss.provenance import provenance
    from equss.pipeline.checkpoint import load_checkpoint, model_from_checkpoint
    from equss.pipeline.shipped import check_backbone, load_model

    t0 = time.time()
    if (checkpoint is None) == (model is None):
        raise EqussError("give exactly one of --checkpoint (a run's best.pt) and --model (a shipped model, e.g. "
                         "camvid-equss)")
    if probe not in PROBES:
        raise EqussError(f"unknown probe {probe!r}; choose cluster or linear")
    if mode not in MODES:
        raise EqussError(f"unknown mode {mode!r}; choose resize or tile")
    if resolution is not None:
        resolution = check_resolution(resolution)
    if tile_size is not None:
        tile_size = check_resolution(tile_size, what="--tile-size")
    if not 0.0 <= float(overlap) < 1.0:
        raise EqussError(f"--overlap must be a fraction in [0, 1), got {overlap}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise EqussError(f"--alpha must be in [0, 1], got {alpha}")
    out_dir = Path(out).expanduser()
    files, names, single = _gather_inputs(inputs, out_dir)
    first = load_image(files[0]) if single else None  # a single broken file fails before any model work
    dev = resolve_device(device)
    if model is not None:
        net, cfg, state = load_model(model, device=dev)
        source = f"model {state['card']['name']!r}"
    else:
        state = load_checkpoint(checkpoint)
        net, cfg = model_from_checkpoint(state, device=dev)
        source = f"checkpoint {str(checkpoint)!r}"
    n_classes = int(state["n_classes"])
    class_names = list(state.get("class_names") or [str(i) for i in range(n_classes)])
    n_clusters = n_classes + cfg.model.extra_clusters
    if probe == "linear" and n_classes == 0:
        raise EqussError(f"{source} has no classes (trained without labels), so no linear probe; use --probe cluster")
    assign = None
    if probe == "cluster":
        if assignment is not None:
            assign = load_assignment(assignment, n_clusters, n_classes)
        elif state.get("assignment") is not None:
            assign = load_assignment(state["assignment"], n_clusters, n_classes)
    classes = probe == "linear" or assign is not None
    R = resolution or cfg.data.eval_resolution
    backbone = make_backbone(cfg, device=dev)
    check_backbone(backbone, state, source)
    R = check_resolution(R, backbone.patch_size)
    palette = _palette(cfg, n_classes if classes else n_clusters, classes)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, skipped = [], []
    bar = progress_bar(list(zip(files, names)), desc="segment", unit="img", disable=not progress, dynamic_ncols=True)
    for path, name in bar:
        try:
            img = first if first is not None else load_image(path)
            first = None
        except EqussError as exc:
            if single:
                raise
            tqdm.write(f"equss: warning: skipping {path}: {exc}", file=sys.stderr)
            skipped.append({"input": str(path), "error": str(exc)})
            continue
        labels = segment_image(net, backbone, img, cfg, probe=probe, mode=mode, resolution=R, crf=crf,
                               assignment=assign, tile_size=tile_size, overlap=overlap, flip=flip, interp=interp)
        written = write_outputs(out_dir, name, img, labels, palette, alpha=alpha)
        present = np.unique(labels)
        records.append({"input": str(path), "name": name, "width": img.size[0], "height": img.size[1],
                        "outputs": written, "labels_present": [int(v) if v >= 0 else UNMATCHED for v in present]})
    bar.close()
    if not records:
        raise EqussError(f"no image could be read ({len(skipped)} skipped, first: {skipped[0]['input']}); "
                         "replace the broken files")
    if probe == "linear":
        meaning = "class ids of the linear probe (0..n_classes-1)"
    elif assign is not None:
        meaning = (f"class ids (cluster probe mapped with the Hungarian assignment from "
                   f"{'--assignment ' + str(assignment) if assignment is not None else 'the ' + source.split()[0]}); "
                   f"{UNMATCHED} = cluster without a class")
    else:
        meaning = ("raw cluster ids (0..n_clusters-1): the checkpoint stores no Hungarian assignment, so clusters "
                   "are not matched to classes; pass --assignment RUN/eval/eval.json from `equss eval`")
    summary = {
        "checkpoint": None if checkpoint is None else str(checkpoint), "checkpoint_step": state.get("step"),
        "model": None if model is None else {"name": state["card"]["name"], "folder": state["model_dir"],
                                             "sha256": state["weights_sha256"]},
        "config_key": state.get("config_key"),
        "dataset": cfg.data.dataset, "backbone": cfg.train.backbone, "probe": probe, "mode": mode,
        "resolution": R, "tile_size": (tile_size or R) if mode == "tile" else None,
        "overlap": float(overlap) if mode == "tile" else None, "interp": interp, "flip": flip, "crf": crf,
        "labels": "classes" if classes else "clusters", "label_meaning": meaning,
        "assignment": assign, "n_classes": n_classes, "n_clusters": n_clusters, "class_names": class_names,
        "palette": palette[: (n_classes if classes else n_clusters)].tolist(),
        "images": records, "skipped": skipped,
        "provenance": provenance(device=device_description(dev), wall_s=round(time.time() - t0, 2),
                                 train_provenance=state.get("provenance")),
    }
    write_json(out_dir / "segment.json", summary)
    return summary


# ---------------------------------------------------------------------------- CLI
def _cmd_segment(args):
    if args.list_models:
        from equss.pipeline.shipped import list_models, models_dir

        names = list_models()
        print("\n".join(names) if names else f"no shipped models in {models_dir()}")
        return 0
    if not args.input:
        raise EqussError("give the images to segment: image files and/or folders (e.g. equss segment --model "
                         "camvid-equss photo.jpg)")
    if args.checkpoint is None and args.model is None:
        raise EqussError("give --model NAME (a shipped model: `equss segment --list-models`) or --checkpoint RUN/best.pt")
    summary = segment_paths(args.input, args.checkpoint, args.out, probe=args.probe, mode=args.mode,
                            resolution=args.resolution, crf=args.crf, tile_size=args.tile_size, overlap=args.overlap,
                            flip=not args.no_flip, interp=args.interp, device=args.device,
                            assignment=args.assignment, alpha=args.alpha, model=args.model)
    n, k = len(summary["images"]), len(summary["skipped"])
    print(f"segmented {n} image(s){f', skipped {k}' if k else ''}; labels: {summary['labels']}; "
          f"wrote {Path(args.out) / 'segment.json'}")
    if summary["labels"] == "clusters":
        print("note: no Hungarian assignment in the checkpoint: *_labels.png hold raw cluster ids "
              "(pass --assignment EVAL_JSON from `equss eval` to map them to classes)")
    return 0


def register(sub):
    p = sub.add_parser("segment", help="segment your own images with a shipped model or a trained checkpoint",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("input", nargs="*", help="image files and/or folders of images (searched recursively)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", help="a shipped model (models/NAME: camvid-equss, camvid-stego) or a model folder")
    which.add_argument("--checkpoint", help="a checkpoint written by `equss train` (best.pt)")
    p.add_argument("--list-models", action="store_true", help="list the shipped models and exit")
    p.add_argument("--out", default="segmentation", help="output folder (default: ./segmentation)")
    p.add_argument("--probe", choices=PROBES, default="cluster",
                   help="cluster (unsupervised, mapped to classes if an assignment is known) or linear")
    p.add_argument("--mode", choices=MODES, default="resize",
                   help="resize: shorter side to R; tile: sliding T x T windows (large aerial images)")
    p.add_argument("--resolution", default=None,
                   help="R: shorter side (resize) or window size given to the model (tile); default: the "
                        "checkpoint's eval_resolution")
    p.add_argument("--tile-size", default=None, help="tile mode: window size in original pixels (default R)")
    p.add_argument("--overlap", type=float, default=0.25, help="tile mode: window overlap as a fraction of T (0.25)")
    p.add_argument("--crf", action="store_true", help="refine with STEGO's dense CRF at full size")
    p.add_argument("--assignment", help="eval.json from `equss eval` with the cluster->class assignment")
    p.add_argument("--interp", choices=INTERPS, default="nearest",
                   help="image resize interpolation (nearest as the datasets; bilinear antialiased)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the colours (0.5)")
    p.add_argument("--no-flip", action="store_true", help="do not average with the flipped image")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.set_defaults(func=_cmd_segment)
