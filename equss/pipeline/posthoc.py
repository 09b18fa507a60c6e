"""Converged post-hoc probes on a trained model's frozen output: ``equss posthoc --checkpoint RUN/last.pt``.

Why (issue 26): the official protocol's probes (STEGO/EQUSS) train online, 250 steps on a moving
representation, and the proxy's linear mIoU is still rising when training stops; the raw-feature
row of Table 1 instead gets probes fitted to convergence on fixed features.  To compare heads and
not probe schedules, every trained arm is also probed *post hoc*, with exactly the raw-feature
row's rule (:func:`equss.pipeline.baseline.fit_and_evaluate`: spherical k-means with the same k,
patch sample and seed; a 1x1-conv linear probe with the same Adam, learning rate, 10 epochs, batch
size and label size; the same test metrics and per-image counts), on:

* ``head``: the head output ``z`` (:class:`~equss.model.heads.ProjectionHead` in eval mode, no
  dropout), before quantisation: for a model without PQ (STEGO, M1) this is what its probes see;
* ``quantised`` (PQ models only): the product-quantised ``z`` (Eq. 1-2,
  :class:`~equss.model.quantize.ProductQuantizer`'s ``quantized``: the probe input of the official
  EQUSS evaluator).

The backbone feature caches (training split at ``data.resolution``, test split at
``data.eval_resolution``, the baseline's) are mapped through the frozen head (and quantiser) batch
by batch (:class:`~equss.pipeline.baseline.FeatureView`), never materialised.  Memory at proxy size
(CamVid, d_E = 1024, M = 32, K = 256): materialising the head output would take 385 MB (train,
367 x 16 x 16 patches) + 977 MB (test, 233 x 32 x 32) in float32, twice that with the quantised
vectors (2.7 GB beside a 2.5 GiB worker).  Streamed, the peak is the k-means sample (all 93,952
training patches x 1024 x 4 B = 385 MB) and its normalised copy.  Measured on random features of
that size (2-core CPU, 2 threads, ``VmHWM`` per stage): the process at 0.9 GB (torch, the feature
memmaps' pages) peaks at 1.64 GB during the head part's k-means and 1.90 GB during the quantised
part's (freed memory kept by the allocator between the parts); each part takes about 5 s for the
sample, 16 s for k-means, 3-6 s per linear-probe epoch and 36-44 s for the test evaluation at
448 px, so about 3.5 minutes for an EQUSS checkpoint with 10 epochs.

Output (``--out``, default the checkpoint's folder): ``posthoc.json`` = ``{"head": {"cluster",
"linear"}, "quantised": {...} (PQ models only), "provenance"}`` and beside it
``posthoc.per_image.npz`` (:mod:`equss.eval.per_image`) whose groups are named
``<part>_<probe>`` (:func:`group`: ``head_cluster``, ``head_linear``, ``quantised_cluster``,
``quantised_linear``).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from equss.errors import EqussError

PARTS = ("head", "quantised")
FILE = "posthoc.json"


def group(part: str, probe: str) -> str:
    """The per-image group of ``probe`` (cluster / linear) on ``part`` (head / quantised)."""
    return f"{part}_{probe}"


def feature_map(model, part: str):
    """The frozen map of ``part``: backbone features ``(B, C, h, w)`` -> the head output ``z``
    (``head``) or its product quantisation (``quantised``), the model in eval mode, no gradient."""
    model.eval()
    if part == "head":
        return lambda feats: model.head(feats)
    if part == "quantised":
        if model.quantizer is None:
            raise EqussError("this model has no product quantiser: post-hoc probes on quantised vectors need model.pq")
        return lambda feats: model.quantizer(model.head(feats)).quantized
    raise ValueError(f"unknown part {part!r}; valid: {', '.join(PARTS)}")


def posthoc_cached(model, train_cache, test_cache, n_classes: int, cfg, device="cpu", patches: int | None = None,
                   linear_epochs: int | None = None, progress: bool = True, image_ids=None, sequences=None) -> dict:
    """The post-hoc probes of ``model`` on feature caches: ``{part: {"cluster", "linear"}}`` for
    every part the model has, and ``per_image`` (one :class:`~equss.eval.per_image.PerImageConfusions`,
    groups :func:`group`)."""
    from equss.eval.per_image import PerImageConfusions
    from equss.pipeline.baseline import LINEAR_EPOCHS, PATCHES, FeatureView, fit_and_evaluate

    parts = [p for p in PARTS if p == "head" or model.quantizer is not None]
    out, groups, settings, ids, seqs = {}, {}, {}, None, None
    for part in parts:
        fn = feature_map(model, part)
        views = [FeatureView(c, fn, channels=cfg.model.head_dim, device=device) for c in (train_cache, test_cache)]
        res = fit_and_evaluate(*views, n_classes, cfg.model.extra_clusters, seed=cfg.train.seed, device=device,
                               label_size=cfg.data.probe_label_size, patches=PATCHES if patches is None else patches,
                               linear_epochs=LINEAR_EPOCHS if linear_epochs is None else linear_epochs,
                               progress=progress, image_ids=image_ids, sequences=sequences)
        pi = res.pop("per_image")
        ids, seqs = pi.image_ids, pi.sequences
        for g in ("cluster", "linear"):
            groups[group(part, g)], settings[group(part, g)] = pi.groups[g], pi.settings[g]
        out[part] = res
    out["per_image"] = PerImageConfusions(ids, seqs, groups, settings)
    return out


def run_posthoc(checkpoint: str | os.PathLike, out: str | os.PathLike | None = None, device: str = "auto",
                data_root: str | None = None, progress: bool = True, patches: int | None = None,
                linear_epochs: int | None = None) -> dict:
    """Post-hoc probes of a checkpoint (module docstring); ``out``: write ``posthoc.json`` (and its
    per-image file) there.  The result keeps the per-image counts in ``per_image`` (write it with
    :func:`equss.pipeline.evaluate.write_evaluation`)."""
    from equss.data.features import get_or_build_features
    from equss.device import device_description, keep_freed_memory, resolve_device
    from equss.pipeline.baseline import LINEAR_EPOCHS, PATCHES, check_rule
    from equss.pipeline.checkpoint import load_checkpoint, model_from_checkpoint
    from equss.pipeline.evaluate import checkpoint_policy, dataset_ids, require_labels, write_evaluation
    from equss.pipeline.inputs import make_backbone, make_dataset
    from equss.provenance import provenance

    patches = PATCHES if patches is None else int(patches)
    linear_epochs = LINEAR_EPOCHS if linear_epochs is None else int(linear_epochs)
    check_rule(patches, linear_epochs)
    t0 = time.time()
    state = load_checkpoint(checkpoint)
    dev = resolve_device(device)
    if dev.type == "cpu":
        keep_freed_memory()
    model, cfg = model_from_checkpoint(state, device=dev)
    if data_root:
        cfg.data.data_root = data_root
    train_set = make_dataset(cfg, cfg.data.train_split, resolution=cfg.data.resolution)
    test_set = make_dataset(cfg, cfg.data.test_split)
    if test_set.n_classes != state["n_classes"]:
        raise EqussError(f"checkpoint has {state['n_classes']} classes but {cfg.data.dataset} has {test_set.n_classes}")
    backbone = make_backbone(cfg, device=dev)
    weights_id = backbone.weights_id
    trained_on = (state.get("provenance") or {}).get("backbone_weights")
    if trained_on and trained_on != weights_id:
        raise EqussError(f"{checkpoint} was trained on {cfg.train.backbone} features from weights {trained_on}, but "
                         f"{cfg.train.backbone} now loads {weights_id}; put the same weights file back or retrain")
    train_cache = get_or_build_features(backbone, train_set, device=dev, progress=progress)
    test_cache = get_or_build_features(backbone, test_set, device=dev, progress=progress)
    del backbone
    require_labels(test_cache, f"{cfg.data.dataset} split {cfg.data.test_split!r}", "set data.test_split to a labelled split")
    require_labels(train_cache, f"{cfg.data.dataset} split {cfg.data.train_split!r}",
                   "the linear probe needs labels: set data.train_split to a labelled split")
    ids, seqs = dataset_ids(test_set)
    result = posthoc_cached(model, train_cache, test_cache, test_set.n_classes, cfg, device=dev, patches=patches,
                            linear_epochs=linear_epochs, progress=progress, image_ids=ids, sequences=seqs)
    result["provenance"] = provenance(
        what="post-hoc probes on the frozen head output: spherical k-means + linear probe (the raw-feature row's rule)",
        parts=[p for p in PARTS if p in result], checkpoint=str(checkpoint), checkpoint_policy=checkpoint_policy(checkpoint),
        checkpoint_step=state.get("step"), config=cfg.to_dict(), config_key=cfg.key(), scale=cfg.scale,
        dataset=cfg.data.dataset, train_split=cfg.data.train_split, eval_split=cfg.data.test_split,
        n_train=len(train_set), n_eval=len(test_set), backbone=cfg.train.backbone, backbone_weights=weights_id,
        resolution=cfg.data.eval_resolution, train_resolution=cfg.data.resolution,
        k=test_set.n_classes + cfg.model.extra_clusters, patches=patches, linear_epochs=linear_epochs,
        seed=cfg.train.seed, device=device_description(dev), wall_s=round(time.time() - t0, 2),
        train_provenance=state.get("provenance"))
    if out:
        write_evaluation(Path(out) / FILE, result)
    return result


def format_result(result: dict) -> str:
    lines = []
    for part in PARTS:
        for g in ("cluster", "linear"):
            if part in result:
                name = {"cluster": "unsupervised", "linear": "linear"}[g]
                lines.append(f"{part + ' ' + name:<24} Acc {result[part][g]['Accuracy']:6.2f}  "
                             f"mIoU {result[part][g]['mIoU']:6.2f}")
    return "\n".join(lines)


def _cmd_posthoc(args):
    out = args.out or str(Path(args.checkpoint).parent)
    result = run_posthoc(args.checkpoint, out=out, device=args.device, data_root=args.data_root,
                         linear_epochs=args.linear_epochs)
    print(format_result(result))
    print(f"wrote {Path(out) / FILE}")
    return 0


def register(sub):
    from equss.pipeline.args import positive_int

    p = sub.add_parser("posthoc", help="converged post-hoc probes (k-means + linear) on a checkpoint's frozen head output",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by `equss train` (last.pt or best.pt)")
    p.add_argument("--out", help="folder for posthoc.json (default: the checkpoint's folder)")
    p.add_argument("--linear-epochs", type=positive_int, default=10, help="epochs of linear-probe training "
                   "(10: the raw-feature row's)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--data-root", help="folder with the datasets (default: the checkpoint's, $EQUSS_DATA)")
    p.set_defaults(func=_cmd_posthoc)
