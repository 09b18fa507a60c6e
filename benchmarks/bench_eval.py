"""Evaluation throughput with and without the dense CRF, and the two CRF backends.

    python benchmarks/bench_eval.py [--quick] [--device cuda] [--n-images N]

1. ``equss.pipeline.evaluate.evaluate_cached`` with a randomly initialised EQUSS model (proxy
   preset ``camvid-equss``: d_E 1024, M 32, K 256) on the cached features of the first N
   CamVid test images (random-weight backbone, cache built beforehand, not timed), with
   flip averaging; images/s without CRF and with CRF (cluster + linear predictions
   refined, as ``equss eval --crf``, backend "auto").
2. One dense CRF on a real CamVid image at 27 x 320 x 320: ``backend="torch"`` vs
   ``backend="pydensecrf"`` (pydensecrf2), seconds per image and the fraction of pixels
   whose argmax agrees.  Scores are smooth random logits (a 27 x 20 x 20 map upsampled
   bilinearly, as the probes' outputs are).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import benchlib as bl


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    bl.add_common_args(p)
    p.add_argument("--n-images", type=int, default=16, help="first N CamVid test images")
    p.add_argument("--resolution", type=int, default=448, help="evaluation crop (proxy preset: 448)")
    p.add_argument("--workers", type=int, default=1, help="CRF worker processes (equss eval --workers)")
    p.add_argument("--crf-size", type=int, default=320)
    p.add_argument("--crf-classes", type=int, default=27)
    args = p.parse_args()
    bl.check_device(args.device)
    bl.need_data()
    if args.quick:
        args.n_images = 4
        args.repeats = args.repeats or 1
    args.repeats = args.repeats or 3

    import torch
    import torch.nn.functional as F
    from equss.backbones.vit import load_backbone
    from equss.config import load_config
    from equss.eval.crf import dense_crf, have_pydensecrf
    from equss.data import get_dataset
    from equss.pipeline.evaluate import evaluate_cached
    from equss.data.features import get_or_build_features
    from equss.pipeline.inputs import FirstN, HFlip
    from equss.model import EQUSS

    dev = args.device
    cfg = load_config("camvid-equss", "proxy")
    ds = FirstN(get_dataset("camvid", "test", resolution=args.resolution), args.n_images)
    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    rows, heads = [], []
    try:
        print(f"building feature caches of {len(ds)} images (+ flipped; not timed) ...", flush=True)
        bb = load_backbone(cfg.train.backbone, pretrained=False, device=dev)
        cache = get_or_build_features(bb, ds, device=dev, root=tmp, progress=False)
        flip = get_or_build_features(bb, HFlip(ds), device=dev, root=tmp, progress=False)
        del bb
        torch.manual_seed(0)
        model = EQUSS(cfg, 384, ds.n_classes).to(dev).eval()
        n = len(ds)
        for crf in (False, True):
            reps = args.repeats if not crf else max(1, args.repeats // 2)
            t = bl.time_it(lambda: evaluate_cached(model, cache, ds.n_classes, cfg, device=dev, flip_cache=flip,
                                                   crf=crf, images=ds, workers=args.workers, progress=False),
                           reps, args.warmup if not crf else 0, dev)
            rows.append({"what": f"evaluate_cached, {'with' if crf else 'no'} CRF", "images": n,
                         "total s": t["median_ms"] / 1e3, "images/s": n * 1e3 / t["median_ms"],
                         "s/image": t["median_ms"] / 1e3 / n})
            heads.append(bl.headline(f"eval {'with CRF (cluster+linear)' if crf else 'without CRF'} @ {args.resolution}",
                                     round(n * 1e3 / t["median_ms"], 2), "images/s"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- CRF backends on one real image
    img = get_dataset("camvid", "test", resolution=args.crf_size)[0][0]
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(args.crf_classes, 20, 20, generator=g)
    logits = F.interpolate(logits[None], (args.crf_size, args.crf_size), mode="bilinear", align_corners=False)[0]
    backends = ["torch"] + (["pydensecrf"] if have_pydensecrf() else [])
    probs, crf_rows = {}, []
    for be in backends:
        t = bl.time_it(lambda: probs.__setitem__(be, dense_crf(img, logits, backend=be)), args.repeats, args.warmup)
        crf_rows.append({"backend": be, "size": f"{args.crf_classes}x{args.crf_size}x{args.crf_size}",
                         "s/image": t["median_ms"] / 1e3})
    agree = None
    if len(probs) == 2:
        agree = float((probs["torch"].argmax(0) == probs["pydensecrf"].argmax(0)).float().mean())
        for r in crf_rows:
            r["agreement %"] = 100 * agree
        heads.append(bl.headline("CRF torch / pydensecrf time ratio",
                                 round(crf_rows[0]["s/image"] / crf_rows[1]["s/image"], 2), "x"))
        heads.append(bl.headline(f"CRF torch vs pydensecrf pixel agreement ({args.crf_classes}x{args.crf_size}^2)",
                                 round(100 * agree, 2), "%"))
    for r in crf_rows:
        heads.append(bl.headline(f"dense CRF {r['backend']} {r['size']}", round(r["s/image"], 3), "s/image"))

    print()
    bl.table(rows, ["what", "images", "total s", "images/s", "s/image"],
             f"evaluation ({dev}, flip-averaged, {args.resolution}px, median of {args.repeats}; CRF: backend auto, "
             f"{args.workers} worker(s))")
    print()
    bl.table(crf_rows, ["backend", "size", "s/image", "agreement %"], "dense CRF per image (CPU)")
    bl.write_result("bench_eval", {"quick": args.quick, "machine": bl.machine(dev),
                                   "args": {k: v for k, v in vars(args).items() if k != "child"},
                                   "headline": heads, "rows": rows, "crf": crf_rows, "crf_agreement": agree},
                    args.out_dir)


if __name__ == "__main__":
    main()
