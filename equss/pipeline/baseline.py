"""The raw-backbone baseline (the "DINO" row of Table 1): ``equss baseline``.

* Unsupervised: spherical k-means (cosine, k = number of classes + extra clusters) fitted
  on patch features of the training split, pixels of the evaluation split assigned to the
  nearest centroid after bilinear upsampling of the features to the label size, then
  Hungarian matching (:class:`equss.eval.metrics.UnsupervisedMetrics`).
* Linear: a 1x1 convolution trained with cross-entropy on the frozen training features
  (logits upsampled to the label size, as STEGO's linear probe), evaluated on the split.

``baseline.json`` and, beside it, ``baseline.per_image.npz`` (every image's counts before
matching: :mod:`equss.eval.per_image`).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from equss.progress import bar as progress_bar

from equss.errors import EqussError
from equss.pipeline.inputs import resize_labels
from equss.eval.metrics import UnsupervisedMetrics
from equss.device import device_description
from equss.provenance import provenance


def spherical_kmeans(x: torch.Tensor, k: int, iters: int = 50, seed: int = 0, restarts: int = 3) -> torch.Tensor:
    """Cosine k-means on rows of ``x`` (N, C) with k-means++ seeding; returns unit centroids (k, C)."""
    x = F.normalize(x.float(), dim=1)
    gen = torch.Generator().manual_seed(seed)
    best, best_score = None, -float("inf")
    for _ in range(restarts):
        first = torch.randint(len(x), (1,), generator=gen)
        cent = [x[first]]
        dist = 1 - (x @ cent[0].T).squeeze(1)
        for _ in range(1, k):
            probs = dist.clamp_min(0)
            probs = probs / probs.sum() if probs.sum() > 0 else torch.full_like(probs, 1 / len(probs))
            nxt = torch.multinomial(probs, 1, generator=gen)
            cent.append(x[nxt])
            dist = torch.minimum(dist, 1 - (x @ x[nxt].T).squeeze(1))
        c = torch.cat(cent)
        for _ in range(iters):
            assign = (x @ c.T).argmax(1)
            new = torch.zeros_like(c).index_add_(0, assign, x)
            empty = new.norm(dim=1) == 0
            new[empty] = c[empty]
            new = F.normalize(new, dim=1)
            if torch.allclose(new, c, atol=1e-6):
                c = new
                break
            c = new
        score = (x @ c.T).max(1).values.sum().item()
        if score > best_score:
            best, best_score = c, score
    return best


def _sample_patches(cache, n_max: int, seed: int) -> torch.Tensor:
    n, c, h, w = cache.feats.shape
    rng = np.random.default_rng(seed)
    per_image = max(1, n_max // n)
    rows = []
    for i in range(n):
        f = np.asarray(cache.feats[i]).reshape(c, h * w).T
        rows.append(f[rng.choice(h * w, size=min(per_image, h * w), replace=False)])
    return torch.from_numpy(np.concatenate(rows)).float()


def train_linear(cache, n_classes: int, epochs: int = 10, lr: float = 3e-3, batch_size: int = 16, seed: int = 0,
                 device="cpu", label_size: int = 64, progress: bool = True) -> torch.nn.Conv2d:
    torch.manual_seed(seed)
    c = cache.feats.shape[1]
    probe = torch.nn.Conv2d(c, n_classes, 1).to(device)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    n = len(cache)
    gen = torch.Generator().manual_seed(seed)
    for _ in progress_bar(range(epochs), desc="linear probe", disable=not progress, dynamic_ncols=True):
        order = torch.randperm(n, generator=gen).tolist()
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            feats, labels = cache.batch(idx)
            feats = feats.to(device)
            if label_size:
                labels = resize_labels(labels, label_size)
            logits = F.interpolate(probe(feats), labels.shape[-2:], mode="bilinear", align_corners=False)
            loss = F.cross_entropy(logits, labels.to(device), ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return probe


@torch.no_grad()
def evaluate_baseline(centroids, probe, cache, n_classes: int, extra_clusters: int = 0, device="cpu",
                      progress: bool = True, image_ids=None, sequences=None) -> dict:
    """Cluster (k-means, Hungarian) and linear numbers; ``result["per_image"]`` the per-image counts."""
    from equss.eval.per_image import PerImageConfusions
    from equss.pipeline.evaluate import summarize
    from equss.model.upsample import cluster_inner_products

    km = UnsupervisedMetrics(n_classes, extra_clusters=extra_clusters, compute_hungarian=True, per_image=True)
    lin = UnsupervisedMetrics(n_classes, compute_hungarian=False, per_image=True)
    cent = centroids.to(device)
    for i in progress_bar(range(len(cache)), desc="eval baseline", disable=not progress, dynamic_ncols=True):
        feats, label = cache.batch([i])
        feats = feats.to(device)
        # cosine to the centroids of the bilinearly upsampled features, computed exactly
        # without materialising them (equss/model/upsample.py)
        km.update(cluster_inner_products(feats, cent, label.shape[-2:]).argmax(1).cpu(), label)
        lin.update(F.interpolate(probe(feats), label.shape[-2:], mode="bilinear", align_corners=False).argmax(1).cpu(), label)
    ids = image_ids if image_ids is not None else [str(i) for i in range(len(cache))]
    return {"cluster": summarize(km), "linear": summarize(lin),
            "per_image": PerImageConfusions.from_metrics({"cluster": km, "linear": lin}, ids, sequences)}


def run_baseline(cfg, out=None, device="auto", progress: bool = True, patches: int = 100_000,
                 linear_epochs: int = 10) -> dict:
    from equss.data.features import get_or_build_features
    from equss.device import resolve_device
    from equss.pipeline.evaluate import dataset_ids, require_labels, write_evaluation
    from equss.pipeline.inputs import make_backbone, make_dataset

    if int(linear_epochs) < 1 or int(patches) < 1:
        raise EqussError(f"linear_epochs ({linear_epochs}) and patches ({patches}) must be >= 1: "
                         "an untrained probe would be reported")
    t0 = time.time()
    dev = resolve_device(device)
    train_set = make_dataset(cfg, cfg.data.train_split, resolution=cfg.data.resolution)
    test_set = make_dataset(cfg, cfg.data.test_split)
    backbone = make_backbone(cfg, device=dev)
    train_cache = get_or_build_features(backbone, train_set, device=dev, progress=progress)
    test_cache = get_or_build_features(backbone, test_set, device=dev, progress=progress)
    require_labels(test_cache, f"{cfg.data.dataset} split {cfg.data.test_split!r}", "set data.test_split to a labelled split")
    require_labels(train_cache, f"{cfg.data.dataset} split {cfg.data.train_split!r}",
                   "the linear probe needs labels: set data.train_split to a labelled split")
    k = train_set.n_classes + cfg.model.extra_clusters
    centroids = spherical_kmeans(_sample_patches(train_cache, patches, cfg.train.seed), k, seed=cfg.train.seed)
    probe = train_linear(train_cache, train_set.n_classes, epochs=linear_epochs, seed=cfg.train.seed, device=dev,
                         label_size=cfg.data.probe_label_size, progress=progress)
    ids, seqs = dataset_ids(test_set)
    result = evaluate_baseline(centroids, probe, test_cache, train_set.n_classes, cfg.model.extra_clusters,
                               device=dev, progress=progress, image_ids=ids, sequences=seqs)
    result["provenance"] = provenance(
        what="raw backbone baseline: spherical k-means + linear probe", scale=cfg.scale, dataset=cfg.data.dataset,
        train_split=cfg.data.train_split, eval_split=cfg.data.test_split, n_train=len(train_set), n_eval=len(test_set),
        backbone=cfg.train.backbone, weights_id=backbone.weights_id, resolution=cfg.data.resolution,
        eval_resolution=cfg.data.eval_resolution, k=k, patches=patches, linear_epochs=linear_epochs,
        seed=cfg.train.seed, device=device_description(dev), wall_s=round(time.time() - t0, 2))
    if out:
        write_evaluation(Path(out) / "baseline.json", result)
    return result


def _cmd_baseline(args):
    from equss.pipeline.evaluate import format_result
    from equss.pipeline.args import config_from_args

    cfg = config_from_args(args)
    out = args.out or f"runs/baseline-{cfg.data.dataset}-{cfg.scale}"
    result = run_baseline(cfg, out=out, device=cfg.train.device, linear_epochs=args.linear_epochs)
    print(format_result(result))
    print(f"wrote {Path(out) / 'baseline.json'}")
    return 0


def register(sub):
    from equss.pipeline.args import add_config_args, positive_int

    p = sub.add_parser("baseline", help="raw-backbone baseline: k-means and linear probe on frozen features",
                       description=__doc__.split("\n\n")[0])
    add_config_args(p)
    p.add_argument("--out", help="output folder (default: runs/baseline-<dataset>-<scale>)")
    p.add_argument("--linear-epochs", type=positive_int, default=10, help="epochs of linear-probe training")
    p.set_defaults(func=_cmd_baseline, preset="camvid-equss")
