"""Evaluation: ``equss eval --checkpoint RUN/best.pt --out RUN/eval``.

The STEGO/EQUSS protocol (STEGO @eb4d6b5 src/eval_segmentation.py): center crop at the
evaluation resolution (320 at paper scale), probe input (averaged with that of the
horizontally flipped image with ``eval.flip``: STEGO's script; the official EQUSS evaluator
does not) upsampled (bilinear) to the label size; cluster probe ->
Hungarian matching -> unsupervised Accuracy / mIoU; linear probe -> Accuracy / mIoU;
each with and without the dense CRF (STEGO's parameters, :mod:`equss.eval.crf`, run in worker
processes).  Features come from the feature cache (the backbone is frozen), so
evaluating several checkpoints never recomputes the backbone.

Output: ``eval.json`` with every number, per-class IoU, the confusion matrices, the
cluster->class assignment and the provenance (commit, config, checkpoint, data, backbone
weights, device), and beside it ``eval.per_image.npz``: every image's confusion counts before
matching, with image ids and sequences (:mod:`equss.eval.per_image`), from which every number
of the JSON is recomputed exactly.  A checkpoint is only evaluated with the backbone weights it
was trained on.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from equss.config import Config
from equss.errors import EqussError
from equss.eval.metrics import UnsupervisedMetrics
from equss.eval.per_image import PerImageConfusions, per_image_path
from equss.device import device_description
from equss.io import write_json
from equss.progress import bar as progress_bar
from equss.provenance import provenance


def require_labels(cache, what: str, fix: str) -> int:
    """The number of labelled pixels of ``cache``; EqussError when there are none (every metric
    would be 0/0: "Acc nan mIoU nan")."""
    n = cache.labelled_pixels()
    if n == 0:
        raise EqussError(f"{what} has no labelled pixels (every label is ignore), so there is nothing to evaluate; {fix}")
    return n


def write_evaluation(path: str | os.PathLike, result: dict) -> Path:
    """Write an evaluation: its per-image counts (``result["per_image"]``, a
    :class:`~equss.eval.per_image.PerImageConfusions`) to ``<name>.per_image.npz`` first, then the
    JSON (without them, naming the archive in ``per_image_file``): a finished JSON implies its
    archive.  A result without per-image counts is written as JSON alone."""
    path = Path(path)
    doc = dict(result)
    per_image = doc.pop("per_image", None)
    if per_image is not None:
        doc["per_image_file"] = per_image.save(per_image_path(path)).name
    return write_json(path, doc)


def dataset_ids(dataset) -> tuple[list[str], list[str | None]]:
    """Sample ids and sequences (None where the dataset names none) of every item of ``dataset``."""
    from equss.pipeline.inputs import sample_id_of, sequence_of

    n = len(dataset)
    return [sample_id_of(dataset, i) for i in range(n)], [sequence_of(dataset, i) for i in range(n)]


def summarize(metric: UnsupervisedMetrics, class_names=None) -> dict:
    res = metric.compute()
    out = {"mIoU": float(res["mIoU"]), "Accuracy": float(res["Accuracy"])}
    for key in ("per_class_iou", "assignment", "confusion"):
        if key in res:
            val = res[key]
            out[key] = val.tolist() if hasattr(val, "tolist") else val
    if class_names is not None:
        out["class_names"] = list(class_names)
    return out


@torch.no_grad()
def evaluate_cached(model, cache, n_classes: int, cfg: Config, device="cpu", flip_cache=None,
                    crf: bool = False, images=None, batch_size: int = 2, workers: int = 1,
                    progress: bool = True, class_names=None, collect: bool = False, image_ids=None,
                    sequences=None) -> dict:
    """Evaluate ``model`` on cached features; with ``crf`` also on CRF-refined predictions.

    ``images``: the dataset (for the CRF's RGB input).  ``collect``: also return the
    predictions (uint8 arrays) for figures.  ``result["per_image"]``: every image's counts
    (:class:`~equss.eval.per_image.PerImageConfusions`, ids ``image_ids`` (default: the
    indices) and ``sequences``); :func:`write_evaluation` writes them beside the JSON.
    """
    model.eval()
    device = torch.device(device)
    extra = cfg.model.extra_clusters
    metrics = {"cluster": UnsupervisedMetrics(n_classes, extra_clusters=extra, compute_hungarian=True, per_image=True),
               "linear": UnsupervisedMetrics(n_classes, compute_hungarian=False, per_image=True)}
    pool = None
    if crf:
        from equss.eval.crf import crf_batch, worker_pool

        metrics["cluster_crf"] = UnsupervisedMetrics(n_classes, extra_clusters=extra, compute_hungarian=True,
                                                     per_image=True)
        metrics["linear_crf"] = UnsupervisedMetrics(n_classes, compute_hungarian=False, per_image=True)
        if images is None:
            raise ValueError("CRF evaluation needs the image dataset")
        if workers > 1:  # one pool for the whole evaluation, not one per batch (seconds each)
            pool = worker_pool(workers)
    pending = []  # (image, cluster scores, linear scores, label) for the CRF, in groups of >= `workers`

    def crf_flush():
        if not pending:
            return
        imgs, labels = [p[0] for p in pending], torch.stack([p[3] for p in pending])
        for j, key in enumerate(("cluster", "linear")):
            refined = crf_batch(imgs, torch.stack([p[1 + j] for p in pending]), workers=workers, pool=pool)
            metrics[f"{key}_crf"].update(torch.as_tensor(np.asarray(refined)).argmax(1), labels)
        pending.clear()

    preds_out = {"cluster": [], "linear": []}
    n = len(cache)
    try:
        for start in progress_bar(range(0, n, batch_size), desc="eval", disable=not progress, dynamic_ncols=True):
            idx = list(range(start, min(n, start + batch_size)))
            feats, labels = cache.batch(idx)
            feats = feats.to(device)
            flipped = flip_cache.batch(idx)[0].to(device) if flip_cache is not None else None
            if crf:  # the CRF refines the log-probabilities
                out = model.predict(feats, labels.shape[-2:], feats_flipped=flipped)
                preds = {key: out[key].argmax(1) for key in ("cluster", "linear")}
            else:  # labels only: one fused pass (same argmax, no log-probabilities)
                preds = model.predict_labels(feats, labels.shape[-2:], feats_flipped=flipped)
            for key in ("cluster", "linear"):
                pred = preds[key].cpu()
                metrics[key].update(pred, labels)
                if collect:
                    preds_out[key].extend(pred.numpy().astype(np.int16))
            if crf:  # the metrics are sums over images: grouping them for the workers changes nothing
                pending.extend(zip([images[i][0] for i in idx], out["cluster"].cpu(), out["linear"].cpu(), labels))
                if len(pending) >= workers:
                    crf_flush()
        crf_flush()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    result = {k: summarize(m, class_names) for k, m in metrics.items()}
    result["per_image"] = PerImageConfusions.from_metrics(
        metrics, image_ids if image_ids is not None else [str(i) for i in range(n)], sequences)
    if collect:
        result["predictions"] = preds_out
    return result


def checked_resolution(resolution) -> int:
    """An evaluation resolution (crop side in pixels) as an int; one EqussError line otherwise."""
    from equss.config import MAX_RESOLUTION

    try:
        value = int(resolution)
    except (TypeError, ValueError):
        value = None
    if value is None or isinstance(resolution, bool) or value != resolution or not 1 <= value <= MAX_RESOLUTION:
        raise EqussError(f"evaluation resolution must be an integer in [1, {MAX_RESOLUTION}] (pixels), got {resolution!r}")
    return value


def checkpoint_policy(checkpoint: str | os.PathLike) -> str:
    """What a checkpoint file is, by its name: ``best`` (best.pt), ``last`` (last.pt), ``step``
    (a kept ``step_<N>.pt``) or ``file`` (any other)."""
    name = Path(checkpoint).name
    return {"best.pt": "best", "last.pt": "last"}.get(name, "step" if name.startswith("step_") else "file")


def evaluate_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike | None = None, split: str | None = None,
                        crf: bool = False, flip: bool | None = None, device: str = "auto", workers: int = 1,
                        data_root: str | None = None, progress: bool = True, resolution: int | None = None) -> dict:
    """Load a checkpoint, evaluate it on ``split`` (default: the config's test split), write eval.json
    (and eval.per_image.npz) to ``out``; the result keeps the per-image counts in ``per_image``
    (write it with :func:`write_evaluation`).  ``resolution``: evaluate at this crop size instead of
    the config's ``data.eval_resolution`` (the same as a checkpoint whose config says so; the feature
    cache of that resolution is built as usual).  The provenance names the checkpoint, its policy
    (:func:`checkpoint_policy`) and step, and the resolution."""
    from equss.data.features import get_or_build_features
    from equss.device import keep_freed_memory, resolve_device
    from equss.pipeline.inputs import HFlip, make_backbone, make_dataset
    from equss.pipeline.checkpoint import load_checkpoint, model_from_checkpoint

    t0 = time.time()
    if resolution is not None:
        resolution = checked_resolution(resolution)
    state = load_checkpoint(checkpoint)
    dev = resolve_device(device)
    if dev.type == "cpu":
        keep_freed_memory()
    model, cfg = model_from_checkpoint(state, device=dev)
    if data_root:
        cfg.data.data_root = data_root
    key = cfg.key()  # the trained weights' key (the evaluation resolution is part of a run's key)
    if resolution is not None:
        cfg.data.eval_resolution = resolution
    split = split or cfg.data.test_split
    flip = cfg.eval.flip if flip is None else flip
    dataset = make_dataset(cfg, split)
    if dataset.n_classes != state["n_classes"]:
        raise EqussError(f"checkpoint has {state['n_classes']} classes but {cfg.data.dataset} has {dataset.n_classes}")
    backbone = make_backbone(cfg, device=dev)
    weights_id = backbone.weights_id
    trained_on = (state.get("provenance") or {}).get("backbone_weights")
    if trained_on and trained_on != weights_id:  # older checkpoints do not record it
        raise EqussError(f"{checkpoint} was trained on {cfg.train.backbone} features from weights {trained_on}, but "
                         f"{cfg.train.backbone} now loads {weights_id}; put the same weights file back "
                         f"(train.weights or the DINO file in the cache folder) or retrain")
    cache = get_or_build_features(backbone, dataset, device=dev, progress=progress)
    require_labels(cache, f"{cfg.data.dataset} split {split!r}", "pass a labelled --split")
    flip_cache = get_or_build_features(backbone, HFlip(dataset), device=dev, progress=progress) if flip else None
    del backbone
    ids, seqs = dataset_ids(dataset)
    result = evaluate_cached(model, cache, dataset.n_classes, cfg, device=dev, flip_cache=flip_cache, crf=crf,
                             images=dataset, workers=workers, progress=progress,
                             class_names=dataset.class_names, image_ids=ids, sequences=seqs)
    result["provenance"] = provenance(
        checkpoint=str(checkpoint), checkpoint_policy=checkpoint_policy(checkpoint), checkpoint_step=state.get("step"),
        config=cfg.to_dict(), config_key=key, resolution=cfg.data.eval_resolution,
        scale=cfg.scale, dataset=cfg.data.dataset, split=split, n_images=len(dataset),
        backbone=cfg.train.backbone, weights=cfg.train.weights, backbone_weights=weights_id, flip=flip, crf=crf,
        device=device_description(dev), wall_s=round(time.time() - t0, 2),
        train_provenance=state.get("provenance"))
    if out:
        write_evaluation(Path(out) / "eval.json", result)
    return result


def format_result(result: dict) -> str:
    lines = []
    for key in ("cluster", "linear", "cluster_crf", "linear_crf"):
        if key in result:
            name = {"cluster": "unsupervised", "linear": "linear"}[key.split("_")[0]]
            suffix = " + CRF" if key.endswith("crf") else ""
            lines.append(f"{name + suffix:<20} Acc {result[key]['Accuracy']:6.2f}  mIoU {result[key]['mIoU']:6.2f}")
    return "\n".join(lines)


def _cmd_eval(args):
    out = args.out or str(Path(args.checkpoint).parent / "eval")
    result = evaluate_checkpoint(args.checkpoint, out=out, split=args.split, crf=args.crf, flip=args.flip,
                                 device=args.device, workers=args.workers, data_root=args.data_root,
                                 resolution=args.resolution)
    print(format_result(result))
    print(f"wrote {Path(out) / 'eval.json'}")
    return 0


def register(sub):
    p = sub.add_parser("eval", help="evaluate a checkpoint (unsupervised + linear Acc/mIoU, optional CRF)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by `equss train`: best.pt (selected on "
                                                       "validation) or last.pt (the end of training)")
    p.add_argument("--out", help="folder for eval.json (default: CHECKPOINT_DIR/eval)")
    p.add_argument("--split", help="dataset split (default: the config's test split)")
    p.add_argument("--crf", action="store_true", help="also evaluate with the dense CRF")
    p.add_argument("--resolution", type=int, help="evaluation crop size in pixels (default: the checkpoint's "
                                                  "data.eval_resolution)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="average with the horizontally flipped image (default: the checkpoint's eval.flip; "
                        "official EQUSS: no, STEGO's eval script: yes)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1), help="CRF worker processes")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--data-root", help="folder with the datasets (default: the config's, $EQUSS_DATA)")
    p.set_defaults(func=_cmd_eval)
