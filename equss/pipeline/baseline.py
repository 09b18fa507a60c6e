"""The raw-backbone baseline (the "DINO" row of Table 1): ``equss baseline``.

* Unsupervised: spherical k-means (cosine, k = number of classes + extra clusters) fitted
  on patch features of the training split, pixels of the evaluation split assigned to the
  nearest centroid after bilinear upsampling of the features to the label size, then
  Hungarian matching (:class:`equss.eval.metrics.UnsupervisedMetrics`).
* Linear: a 1x1 convolution trained with cross-entropy on the frozen training features
  (logits upsampled to the label size, as STEGO's linear probe), evaluated on the split.

``baseline.json`` and, beside it, ``baseline.per_image.npz`` (every image's counts before
matching: :mod:`equss.eval.per_image`).

The functions read features through a :class:`FeatureView`: a feature cache as it is (this row), or
mapped batch by batch through a trained model's frozen head and quantiser (the converged post-hoc
probes of :mod:`equss.pipeline.posthoc`), so that both rows are fitted and evaluated by one path
(:func:`fit_and_evaluate`) with one rule: the same k, patches, seed, optimiser, learning rate,
epochs, batch size and label size.
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


class FeatureView:
    """A feature cache (:class:`equss.data.features.FeatureCache`) seen through a frozen map ``fn``
    (features ``(B, C, h, w)`` -> ``(B, channels, h, w)``; None: the features themselves), computed
    batch by batch when read, never stored: what :func:`fit_and_evaluate` reads (``len``,
    :meth:`batch`, :meth:`batches`, ``channels``, :meth:`labelled_pixels`).

    Why not materialise the mapped features: at proxy size (CamVid, DINOv2 ViT-S/14, d_E = 1024)
    the 367 training images at 16x16 patches are 367 x 256 x 1024 x 4 B = 385 MB in float32 and the
    233 test images at 32x32 patches 233 x 1024 x 1024 x 4 B = 977 MB, twice that for an EQUSS model
    (the head output before and after quantisation): 2.7 GB beside a 2.5 GiB worker.  Streamed,
    a view holds one batch (16 x 256 x 1024 x 4 B = 17 MB); what k-means needs in memory is its
    sample of at most ``patches`` rows (here all 93,952 training patches: 385 MB) and its normalised
    copy (measured peak: :mod:`equss.pipeline.posthoc`).  The map is re-applied in each of the
    linear probe's epochs (a 1x1-conv head on 16x16 patches: seconds per epoch)."""

    def __init__(self, cache, fn=None, channels: int | None = None, device="cpu", batch_size: int = 16):
        self.cache, self.fn, self.device, self.batch_size = cache, fn, torch.device(device), int(batch_size)
        self.channels = int(channels if channels is not None else cache.feats.shape[1])

    def __len__(self) -> int:
        return len(self.cache)

    @torch.no_grad()
    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (float32, on the view's device) and labels of the images ``indices``."""
        feats, labels = self.cache.batch(indices)
        feats = feats.to(self.device)
        if self.fn is not None:
            feats = self.fn(feats).float()
        return feats, labels

    def batches(self, desc: str = "features", progress: bool = False):
        """``(indices, feats, labels)`` over every image in order, ``batch_size`` images at a time."""
        n = len(self)
        for start in progress_bar(range(0, n, self.batch_size), desc=desc, disable=not progress, dynamic_ncols=True):
            idx = list(range(start, min(n, start + self.batch_size)))
            yield (idx, *self.batch(idx))

    def labelled_pixels(self) -> int:
        return self.cache.labelled_pixels()


def _sample_patches(view: FeatureView, n_max: int, seed: int, progress: bool = False) -> torch.Tensor:
    """Up to ``n_max // images`` patch vectors of every image, drawn without replacement (numpy
    ``default_rng(seed)``, image by image in order), as rows ``(N, C)``."""
    rng = np.random.default_rng(seed)
    per_image = max(1, n_max // len(view))
    out, filled = None, 0
    for _, feats, _ in view.batches("k-means sample", progress):
        for f in feats.cpu().numpy():
            c, h, w = f.shape
            take = min(per_image, h * w)
            if out is None:  # every image of a cache has the same patch grid: the sample's size is known
                out = np.empty((len(view) * take, c), dtype=np.float32)
            out[filled:filled + take] = f.reshape(c, h * w).T[rng.choice(h * w, size=take, replace=False)]
            filled += take
    return torch.from_numpy(out[:filled])


def train_linear(cache: FeatureView, n_classes: int, epochs: int = 10, lr: float = 3e-3, batch_size: int = 16,
                 seed: int = 0, device="cpu", label_size: int = 64, progress: bool = True) -> torch.nn.Conv2d:
    """A 1x1-conv probe trained with Adam (``lr``) and cross-entropy for ``epochs`` epochs of shuffled
    batches of ``batch_size`` images (labels resized to ``label_size``, logits upsampled to them)."""
    torch.manual_seed(seed)
    c = cache.channels
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
def evaluate_baseline(centroids, probe, cache: FeatureView, n_classes: int, extra_clusters: int = 0, device="cpu",
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


PATCHES, LINEAR_EPOCHS = 100_000, 10  # k-means sample size; epochs of the linear probe


def check_rule(patches: int, linear_epochs: int) -> None:
    if int(linear_epochs) < 1 or int(patches) < 1:
        raise EqussError(f"linear_epochs ({linear_epochs}) and patches ({patches}) must be >= 1: "
                         "an untrained probe would be reported")


def fit_and_evaluate(train: FeatureView, test: FeatureView, n_classes: int, extra_clusters: int = 0, seed: int = 0,
                     device="cpu", label_size: int = 0, patches: int = PATCHES, linear_epochs: int = LINEAR_EPOCHS,
                     progress: bool = True, image_ids=None, sequences=None) -> dict:
    """The rule of this row for any features: spherical k-means (k = ``n_classes + extra_clusters``)
    on up to ``patches`` training patch vectors and a linear probe trained ``linear_epochs`` epochs
    (:func:`train_linear`'s Adam, lr, batch size; labels at ``label_size``), both seeded with
    ``seed``, then evaluated on ``test`` (:func:`evaluate_baseline`: ``cluster``, ``linear``,
    ``per_image``)."""
    check_rule(patches, linear_epochs)
    k = n_classes + extra_clusters
    centroids = spherical_kmeans(_sample_patches(train, patches, seed, progress), k, seed=seed)
    probe = train_linear(train, n_classes, epochs=linear_epochs, seed=seed, device=device, label_size=label_size,
                         progress=progress)
    return evaluate_baseline(centroids, probe, test, n_classes, extra_clusters, device=device, progress=progress,
                             image_ids=image_ids, sequences=sequences)


def run_baseline(cfg, out=None, device="auto", progress: bool = True, patches: int = PATCHES,
                 linear_epochs: int = LINEAR_EPOCHS) -> dict:
    from equss.data.features import get_or_build_features
    from equss.device import resolve_device
    from equss.pipeline.evaluate import dataset_ids, require_labels, write_evaluation
    from equss.pipeline.inputs import make_backbone, make_dataset

    check_rule(patches, linear_epochs)
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
    ids, seqs = dataset_ids(test_set)
    result = fit_and_evaluate(FeatureView(train_cache), FeatureView(test_cache), train_set.n_classes,
                              cfg.model.extra_clusters, seed=cfg.train.seed, device=dev,
                              label_size=cfg.data.probe_label_size, patches=patches, linear_epochs=linear_epochs,
                              progress=progress, image_ids=ids, sequences=seqs)
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
