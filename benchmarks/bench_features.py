"""Feature extraction throughput: the cache-building pipeline vs the bare backbone forward.

    python benchmarks/bench_features.py [--quick] [--device cuda] [--n-images N]

* pipeline: ``equss.data.features.get_or_build_features`` on the first N CamVid test images
  into a fresh temporary cache (JPEG decode + resize/crop + normalise in the DataLoader,
  backbone forward, float16 conversion, memmap writes and flushes, progress files);
* bare: the same backbone on the same images already decoded into memory, same batch
  size, under ``torch.inference_mode``.

Overhead = pipeline time / bare time - 1.  Target: <= 15 %.  Random backbone weights
(``pretrained=False``): the speed is that of the real network.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import benchlib as bl

TARGET = 0.15


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    bl.add_common_args(p)
    p.add_argument("--n-images", type=int, default=32, help="first N CamVid test images")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--backbone", default="dinov2_vits14_offline")
    p.add_argument("--resolution", type=int, default=448)
    args = p.parse_args()
    bl.check_device(args.device)
    bl.need_data()
    if args.quick:
        args.n_images = 8
        args.repeats = args.repeats or 2
    args.repeats = args.repeats or 3

    import torch
    from equss.backbones.vit import load_backbone
    from equss.data import get_dataset
    from equss.data.features import get_or_build_features
    from equss.pipeline.inputs import FirstN

    dev = args.device
    ds = FirstN(get_dataset("camvid", "test", resolution=args.resolution), args.n_images)
    bb = load_backbone(args.backbone, pretrained=False, device=dev).eval()
    images = torch.stack([ds[i][0] for i in range(len(ds))])  # pre-loaded (decode not timed)
    if torch.device(dev).type == "cuda":
        images = images.pin_memory()

    def bare():
        with torch.inference_mode():
            for s in range(0, len(images), args.batch_size):
                bb(images[s:s + args.batch_size].to(dev, non_blocking=True)).float().cpu()

    tmp = Path(tempfile.mkdtemp(prefix="bench_feat_"))

    def pipeline():
        shutil.rmtree(tmp / "features", ignore_errors=True)  # a fresh cache every time
        get_or_build_features(bb, ds, batch_size=args.batch_size, device=dev, root=tmp / "features",
                              progress=False)

    try:
        print(f"{args.backbone} @ {args.resolution}, {len(ds)} images, batch {args.batch_size}, {dev}: "
              f"{args.warmup} warm-up + {args.repeats} repeats each ...", flush=True)
        # interleave so that a change in machine load hits both alike
        t_bare, t_pipe = [], []
        for _ in range(args.warmup):
            bare(), pipeline()
        for _ in range(args.repeats):
            t_bare.append(bl.time_it(bare, 1, 0, dev)["median_ms"])
            t_pipe.append(bl.time_it(pipeline, 1, 0, dev)["median_ms"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    import statistics

    mb, mp = statistics.median(t_bare), statistics.median(t_pipe)
    n = len(ds)
    overhead = mp / mb - 1
    rows = [{"what": "bare forward (pre-loaded tensors)", "total s": mb / 1e3, "images/s": n * 1e3 / mb, "overhead %": 0.0},
            {"what": "get_or_build_features (fresh cache)", "total s": mp / 1e3, "images/s": n * 1e3 / mp,
             "overhead %": 100 * overhead}]
    print()
    bl.table(rows, ["what", "total s", "images/s", "overhead %"],
             f"feature extraction, {args.backbone} @ {args.resolution}, {n} CamVid test images, {dev}, "
             f"median of {args.repeats}")
    heads = [bl.headline("feature cache build overhead vs bare forward", round(100 * overhead, 1), "%",
                         f"<= {100 * TARGET:.0f} %", overhead <= TARGET),
             bl.headline(f"feature extraction {args.backbone} @ {args.resolution}", round(n * 1e3 / mp, 2), "images/s")]
    bl.write_result("bench_features", {"quick": args.quick, "machine": bl.machine(dev),
                                       "args": {k: v for k, v in vars(args).items() if k != "child"},
                                       "headline": heads, "rows": rows,
                                       "samples_ms": {"bare": t_bare, "pipeline": t_pipe}}, args.out_dir)


if __name__ == "__main__":
    main()
