"""Choosing the correlation-loss shifts for a new backbone or dataset: ``equss tune``.

STEGO's shifts were tuned by its authors per dataset for DINO ViT-S/8 and ViT-B/8; they
do not transfer to other backbones (measured here, README "What the proxy is": with the
offline DINOv2 ViT-S/14 on CamVid, COCO's shifts make nearly every pair attractive and the
head collapses).  The procedure, reproducible and validation-only:

1. **Calibrate.** Draw training batches exactly as training does (kNN positives, STEGO's
   11x11 random coordinates, ``super_perm`` negatives) and measure the distribution of
   the pointwise-centred feature correlation ``fd`` for the three pair kinds (intra,
   kNN inter, negative).  Quantiles are written to the record.
2. **Candidates.** For each quantile level ``q`` in ``--levels``, shifts are the
   q-quantile of each term's own ``fd`` distribution (``b = Q_t(q)``: a fraction ``q`` of
   the pairs of that kind are pushed apart, ``1 - q`` pulled together).  The loss weights
   stay those of the preset.
3. **Select.** (Skipped with ``--tune-steps 0``: calibration only, the shifts at the
   first level, e.g. to carry a level chosen on one dataset to another.)  Train each
   candidate for ``--tune-steps`` steps on the training split and keep the one with the best cluster mIoU on the **validation** split (the official model
   selection metric).  The test split is never touched.

Output: ``OUT/tune.json`` (fd quantiles, every candidate with its validation numbers, the
choice, provenance) and ``OUT/tuned.yaml``, a config file to pass to ``equss train
--config``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import yaml
from equss.progress import bar as progress_bar

from equss.config import Config, replace
from equss.errors import EqussError
from equss.model.losses import feature_correlation, sample, sample_coords, super_perm
from equss.io import write_json
from equss.provenance import provenance

TERMS = ("pos_intra", "pos_inter", "neg_inter")
QUANTILES = (0.1, 0.25, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9)


@torch.no_grad()
def fd_samples(source, batches: int = 12, batch_size: int = 16, feature_samples: int = 11,
               neg_samples: int = 5, pointwise: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """Pointwise-centred feature correlations of the three pair kinds, as training sees them.

    ``source``: a :class:`equss.pipeline.inputs.BatchSource` (cache path).  Returns flat arrays.
    """
    gen = torch.Generator().manual_seed(seed)
    source.generator.manual_seed(seed)
    out = {t: [] for t in TERMS}
    for _ in range(batches):
        batch = source.next(batch_size)
        b = batch.feats.shape[0]
        c1, c2 = sample_coords(b, feature_samples, gen), sample_coords(b, feature_samples, gen)
        f1, f2 = sample(batch.feats, c1), sample(batch.feats_pos, c2)
        out["pos_intra"].append(feature_correlation(f1, f1, pointwise).flatten())
        out["pos_inter"].append(feature_correlation(f1, f2, pointwise).flatten())
        for _ in range(neg_samples):
            perm = super_perm(b, gen)
            out["neg_inter"].append(feature_correlation(f1, sample(batch.feats[perm], c2), pointwise).flatten())
    return {t: torch.cat(v).numpy() for t, v in out.items()}


def quantile_table(samples: dict[str, np.ndarray], levels=QUANTILES) -> dict[str, dict[str, float]]:
    return {t: {f"{q:g}": round(float(np.quantile(v, q)), 4) for q in levels} | {"mean": round(float(v.mean()), 4)}
            for t, v in samples.items()}


def parse_level(level) -> tuple[float, float, float]:
    """``0.6`` (all three terms) or ``"0.5,0.5,0.9"`` (intra, inter, negative); each in [0, 1]."""
    bad = EqussError(f"level {level!r} must be q or q_intra,q_inter,q_neg with each a number in [0, 1] (e.g. 0.8 or 0.5,0.5,0.9)")
    try:
        parts = [float(level)] if isinstance(level, (int, float)) else [float(p) for p in str(level).split(",")]
    except ValueError:
        raise bad from None
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or not all(0 <= p <= 1 for p in parts):
        raise bad
    return tuple(parts)


def candidate_shifts(samples: dict[str, np.ndarray], level) -> dict[str, float]:
    """Shift of each term = a quantile of its own fd distribution (one level, or one per term)."""
    levels = parse_level(level)
    return {f"{t}_shift": round(float(np.quantile(samples[t], q)), 3) for t, q in zip(TERMS, levels)}


def tune(cfg: Config, out: str | Path, levels=(0.5, 0.6, 0.7, 0.8), steps: int = 200,
         progress: bool = True) -> dict:
    from equss.pipeline.inputs import BatchSource
    from equss.pipeline.train import Trainer

    levels = list(levels)
    if not levels:
        raise EqussError("no candidate levels given; pass --levels 0.5 0.7 ...")
    for level in levels:
        parse_level(level)  # every level checked before anything is computed or written
    if steps < 0:
        raise EqussError(f"--tune-steps must be >= 0 (0 = calibration only), got {steps}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    # the Trainer builds (or opens) the feature caches and kNN of the training split
    probe = Trainer(replace(cfg, train={"val_every": 0}), out / "calibration", progress=progress)
    source = BatchSource(cfg, probe.train_set, probe.source.nns, cache=probe.source.cache)
    probe.close()  # only its data was needed
    samples = fd_samples(source, batch_size=cfg.train.batch_size, feature_samples=cfg.loss.feature_samples,
                         neg_samples=cfg.loss.neg_samples, pointwise=cfg.loss.pointwise, seed=cfg.train.seed)
    quantiles = quantile_table(samples)
    candidates = []
    if steps == 0:  # calibration only: shifts at the (first) given level, no selection
        chosen = candidate_shifts(samples, levels[0])
        record = {"procedure": "calibration only: shifts = per-term fd quantiles at the given level (equss/pipeline/tune.py)",
                  "fd_quantiles": quantiles, "levels": [str(levels[0])], "steps_per_candidate": 0,
                  "candidates": [], "chosen_level": str(levels[0]), "chosen": chosen,
                  "provenance": provenance(config=cfg.to_dict(), scale=cfg.scale, dataset=cfg.data.dataset,
                                           split=cfg.data.train_split, backbone=cfg.train.backbone,
                                           wall_s=round(time.time() - t0, 1))}
        write_json(out / "tune.json", record)
        (out / "tuned.yaml").write_text(yaml.safe_dump({"loss": chosen}, sort_keys=False))
        return record
    for level in progress_bar(levels, desc="tune candidates", disable=not progress):
        shifts = candidate_shifts(samples, level)
        cand_cfg = replace(cfg, loss=shifts, train={"steps": steps, "val_every": steps, "ckpt_every": steps})
        qs = parse_level(level)
        name = f"q{qs[0]:g}" if len(set(qs)) == 1 else "q" + "_".join(f"{q:g}" for q in qs)
        trainer = Trainer(cand_cfg, out / name, progress=progress, overwrite=True)  # tune reruns candidates
        summary = trainer.fit()
        candidates.append({"level": str(level), **shifts, "val": summary["best"], "last_losses": summary["last"]})
    if not candidates:
        raise EqussError("no candidate levels given; pass --levels 0.5 0.7 ...")
    best = max(candidates, key=lambda c: c["val"]["cluster_mIoU"])
    chosen = {k: best[k] for k in (f"{t}_shift" for t in TERMS)}
    record = {
        "procedure": "shifts = per-term fd quantile at level q; q chosen by validation cluster mIoU (equss/pipeline/tune.py)",
        "fd_quantiles": quantiles, "levels": list(levels), "steps_per_candidate": steps,
        "candidates": candidates, "chosen_level": best["level"], "chosen": chosen,
        "provenance": provenance(config=cfg.to_dict(), scale=cfg.scale, dataset=cfg.data.dataset,
                                 split=cfg.data.val_split, backbone=cfg.train.backbone,
                                 wall_s=round(time.time() - t0, 1)),
    }
    write_json(out / "tune.json", record)
    (out / "tuned.yaml").write_text(yaml.safe_dump({"loss": chosen}, sort_keys=False))
    return record


def _cmd_tune(args):
    from equss.pipeline.args import config_from_args

    cfg = config_from_args(args)
    out = args.out or f"runs/tune-{cfg.name}-{cfg.scale}"
    record = tune(cfg, out, levels=args.levels, steps=args.tune_steps)
    print("fd quantiles (train split):")
    for t, q in record["fd_quantiles"].items():
        print(f"  {t:<10} " + "  ".join(f"{k}:{v:.2f}" for k, v in q.items()))
    for c in record["candidates"]:
        print(f"  q={c['level']:<12} shifts {c['pos_intra_shift']:.3f}/{c['pos_inter_shift']:.3f}/{c['neg_inter_shift']:.3f}"
              f"  val cluster mIoU {c['val']['cluster_mIoU']:.2f}  acc {c['val']['cluster_Accuracy']:.2f}")
    print(f"chosen q={record['chosen_level']}: {record['chosen']}; wrote {Path(out) / 'tuned.yaml'}")
    return 0


def register(sub):
    from equss.pipeline.args import add_config_args, nonnegative_int

    p = sub.add_parser("tune", help="calibrate the correlation-loss shifts to a backbone/dataset (validation only)",
                       description=__doc__.split("\n\n")[0])
    add_config_args(p)
    p.add_argument("--out", help="output folder (default: runs/tune-<preset>-<scale>)")
    p.add_argument("--levels", nargs="+", default=["0.5", "0.6", "0.7", "0.8"],
                   help="fd quantile levels to try as shifts: q (all terms) or q_intra,q_inter,q_neg "
                        "(default: 0.5 0.6 0.7 0.8)")
    p.add_argument("--tune-steps", type=nonnegative_int, default=200,
                   help="training steps per candidate (default: 200); 0 = calibration only, shifts at the first level")
    p.set_defaults(func=_cmd_tune)
