"""One full EQUSS training step on the cache path vs the online path.

    python benchmarks/bench_train_step.py [--quick] [--device cuda] [--steps N]

A step is what ``equss.pipeline.train.Trainer.train_step`` does: draw a batch (kNN positives) from
``equss.pipeline.inputs.BatchSource``, ``model.training_losses`` (STEGO correlation loss with
``--neg-samples`` negatives, PQ losses, probe losses), backward, gradient clipping on the
model parameters, three Adam steps (AMP + GradScaler on CUDA, as the Trainer).

* cache path: the batch's features are read from a float16 memmap on disk (a real
  ``equss.data.features`` cache built beforehand, not timed);
* online path: the batch's 2 x B images are decoded and run through the backbone.

Backbones use random weights (``pretrained=False``: same speed, no conversion), on real
CamVid train images.  Each (backbone, path) runs in its own subprocess, so its peak
memory is that process's ``ru_maxrss`` growth over the after-import baseline (CPU) or
``torch.cuda.max_memory_allocated`` (CUDA).  The first (warm-up) step of both paths sees
the same batch and the same RNG state; its losses must agree (features are float16 in
both).  Target: cache/online steps/s ratio >= 10x for dinov2_vits14_offline at 448.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import benchlib as bl

TARGET = 10.0
CONFIGS = {"dinov2_vits14_offline": 448, "dino_vits8": 224}


def make_cfg(a: dict):
    from equss.config import load_config

    return load_config("camvid-equss", "proxy", overrides={
        "train": {"backbone": a["backbone"], "batch_size": a["batch"], "device": a["device"]},
        "data": {"resolution": a["res"], "max_images": a["n_images"], "data_root": a["data_root"]},
        "loss": {"neg_samples": a["neg_samples"]},
    })


# ---------------------------------------------------------------------------- parent: caches
def prepare(backbone: str, res: int, args, root: Path) -> dict:
    """Feature cache + kNN table for the first ``n_images`` training images (not timed)."""
    import numpy as np
    from equss.backbones.vit import load_backbone
    from equss.data.features import get_or_build_features, pooled_features
    from equss.pipeline.inputs import make_dataset
    from equss.data.knn import compute_knn
    from equss.paths import data_root

    a = {"backbone": backbone, "res": res, "batch": args.batch_size, "n_images": args.n_images,
         "neg_samples": args.neg_samples, "device": args.device, "data_root": str(data_root())}
    cfg = make_cfg(a)
    ds = make_dataset(cfg, "train", train=True)
    bb = load_backbone(backbone, pretrained=False, device=args.device)
    cache = get_or_build_features(bb, ds, device=args.device, root=root / "features", progress=True)
    nns = compute_knn(pooled_features(cache), k=min(cfg.data.knn_k, len(ds)))
    nns_path = root / f"{backbone}_nns.npy"
    np.save(nns_path, nns)
    return {**a, "cache": str(cache.path), "nns": str(nns_path), "steps": args.steps, "warmup": args.warmup}


# ---------------------------------------------------------------------------- child: one path
def child(a: dict) -> dict:
    import numpy as np
    import torch

    from equss.backbones.vit import load_backbone
    from equss.data.features import FeatureCache
    from equss.pipeline.inputs import BatchSource, make_dataset
    from equss.model import EQUSS

    base_rss = bl.max_rss_bytes()
    dev = torch.device(a["device"])
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    cfg = make_cfg(a)
    ds = make_dataset(cfg, "train", train=True)
    nns = np.load(a["nns"])
    if a["path"] == "cache":
        source = BatchSource(cfg, ds, nns, cache=FeatureCache(a["cache"]), device=dev)
    else:
        bb = load_backbone(a["backbone"], pretrained=False, device=dev)
        source = BatchSource(cfg, ds, nns, backbone=bb, device=dev)
    torch.manual_seed(0)
    model = EQUSS(cfg, 384, ds.n_classes).to(dev)
    tc = cfg.train
    opts = [torch.optim.Adam(model.model_parameters(), lr=tc.lr),
            torch.optim.Adam(model.cluster_probe.parameters(), lr=tc.probe_lr),
            torch.optim.Adam(model.linear_probe.parameters(), lr=tc.probe_lr)]
    use_amp = bool(tc.amp and dev.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    def step(seed=None):
        batch = source.next(tc.batch_size)
        if seed is not None:
            torch.manual_seed(seed)
        model.train()
        for o in opts:
            o.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, enabled=use_amp):
            losses = model.training_losses(batch.feats, batch.feats_pos, batch.labels)
        scaler.scale(losses["total"]).backward()
        scaler.unscale_(opts[0])
        torch.nn.utils.clip_grad_norm_(model.model_parameters(), tc.clip_grad)
        for o in opts:
            scaler.step(o)
        scaler.update()
        return {k: float(v.detach()) for k, v in losses.items()}, batch

    first, batch = step(seed=1)  # warm-up: the batch and loss compared across paths
    feats_sum = float(batch.feats.double().sum())
    for _ in range(a["warmup"] - 1):
        step()
    t = bl.time_it(step, a["steps"], 0, dev)
    out = {"first_losses": first, "first_index": batch.index.tolist(), "first_pos": batch.index_pos.tolist(),
           "feats_sum": feats_sum, "step_ms": t["median_ms"], "samples_ms": t["samples_ms"],
           "peak_rss_bytes": bl.max_rss_bytes(), "rss_growth_bytes": bl.max_rss_bytes() - base_rss}
    if dev.type == "cuda":
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(dev)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    bl.add_common_args(p)
    p.add_argument("--steps", type=int, default=None, help="timed steps per path (default: 3 on CPU, 30 on CUDA)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--neg-samples", type=int, default=5)
    p.add_argument("--n-images", type=int, default=32, help="training images in the cache / dataset (first N)")
    p.add_argument("--backbones", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = p.parse_args()
    if args.child:
        bl.child_result(child(json.loads(args.child)))
        return
    bl.check_device(args.device)
    bl.need_data()
    cuda = args.device.startswith("cuda")
    if args.quick:
        args.batch_size, args.n_images = 4, 8
        args.steps = args.steps or 1
    args.steps = args.steps or args.repeats or (30 if cuda else 3)
    args.warmup = max(1, args.warmup)

    rows, heads, checks = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        for backbone in args.backbones:
            res = CONFIGS[backbone]
            print(f"{backbone} @ {res}: building the feature cache of {args.n_images} images (not timed) ...", flush=True)
            a = prepare(backbone, res, args, Path(tmp))
            got = {}
            for path in ("cache", "online"):
                print(f"  {path} path: {args.warmup} warm-up + {args.steps} timed steps ...", flush=True)
                got[path] = r = bl.run_child(__file__, {**a, "path": path})
                mem = r.get("cuda_peak_bytes", r["rss_growth_bytes"])
                rows.append({"backbone": backbone, "res": res, "path": path, "batch": args.batch_size,
                             "ms/step": r["step_ms"], "steps/s": 1e3 / r["step_ms"],
                             "images/s": args.batch_size * 1e3 / r["step_ms"],
                             "peak MiB": mem / 2**20, "peak RSS MiB": r["peak_rss_bytes"] / 2**20})
            c, o = got["cache"], got["online"]
            same_batch = c["first_index"] == o["first_index"] and c["first_pos"] == o["first_pos"]
            diffs = {k: abs(c["first_losses"][k] - o["first_losses"][k]) for k in c["first_losses"]}
            worst = max(diffs, key=diffs.get)
            ok = same_batch and all(d <= 1e-5 * max(1.0, abs(c["first_losses"][k])) for k, d in diffs.items())
            ratio = o["step_ms"] / c["step_ms"]
            checks.append({"backbone": backbone, "same batch": same_batch, "total cache": c["first_losses"]["total"],
                           "total online": o["first_losses"]["total"], "max |diff|": diffs[worst],
                           "worst term": worst, "feature sum diff": abs(c["feats_sum"] - o["feats_sum"]),
                           "losses agree": ok, "cache/online": ratio})
            is_target = backbone == "dinov2_vits14_offline"
            heads.append(bl.headline(f"train step cache/online speed-up, {backbone} @ {res}, batch {args.batch_size}",
                                     round(ratio, 1), "x", f">= {TARGET}x" if is_target else None,
                                     (ratio >= TARGET) if is_target else None))
            heads.append(bl.headline(f"train step (cache path) {backbone} @ {res}", round(1e3 / c["step_ms"], 2), "steps/s"))
            heads.append(bl.headline(f"same loss on the same batch, cache vs online, {backbone}", ok, "",
                                     "identical (<= 1e-5)", ok))

    print()
    bl.table(rows, ["backbone", "res", "path", "batch", "ms/step", "steps/s", "images/s", "peak MiB", "peak RSS MiB"],
             f"EQUSS training step ({args.device}; median of {args.steps}; peak = "
             + ("torch.cuda.max_memory_allocated)" if cuda else "ru_maxrss growth over the import baseline)"))
    print()
    bl.table(checks, ["backbone", "cache/online", "same batch", "total cache", "total online", "max |diff|",
                      "worst term", "losses agree"], "cache vs online on the first batch")
    bl.write_result("bench_train_step", {"quick": args.quick, "machine": bl.machine(args.device),
                                         "args": {k: v for k, v in vars(args).items() if k != "child"},
                                         "headline": heads, "rows": rows, "checks": checks}, args.out_dir)


if __name__ == "__main__":
    main()
