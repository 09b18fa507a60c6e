"""Experiment helpers the notebooks call: cached runs, tables, provenance.

Notebooks stay thin: they pick presets for their scale and call :func:`run` /
:func:`baseline`, which train and evaluate once per config (the run cache is keyed by
:meth:`equss.config.Config.key`, so Table 3's Q3 and Table 1's EQUSS row are one run)
and return the evaluation dict with its provenance.

Run cache: ``$EQUSS_CACHE/runs/<dataset>-<key>/`` (train folder + ``eval.json``).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path

from .config import Config, load_config
from .paths import cache_dir
from .provenance import provenance, write_json

# Which preset family a notebook uses at each scale (the proxy replaces the paper's datasets).
PROXY_FAMILY = {"cocostuff27": "camvid", "cityscapes27": "camvid", "potsdam3": "dubai"}


def preset_for(paper_preset: str, scale: str) -> str:
    """``cocostuff27-equss`` at paper scale; ``camvid-equss`` at proxy/smoke scale."""
    if scale == "paper":
        return paper_preset
    dataset, variant = paper_preset.split("-", 1)
    return f"{PROXY_FAMILY[dataset]}-{variant}"


def results_dir(scale: str, explicit: str | None = None) -> Path:
    """Where a notebook writes: ``explicit``, else ``$EQUSS_RESULTS/<scale>``, else
    ``results/<scale>`` for proxy/paper, a temporary folder for smoke (CI)."""
    if explicit:
        path = Path(explicit)
    elif os.environ.get("EQUSS_RESULTS"):
        path = Path(os.environ["EQUSS_RESULTS"]) / scale
    elif scale == "smoke":
        path = Path(tempfile.mkdtemp(prefix="equss-smoke-"))
    else:
        path = Path("results") / scale
    path.mkdir(parents=True, exist_ok=True)
    return path


def config(preset: str, scale: str, overrides: dict | list | None = None, data_root: str | None = None,
           device: str | None = None) -> Config:
    ov = list(overrides or []) if not isinstance(overrides, dict) else [
        f"{k}={v}" for k, v in overrides.items()]
    if data_root:
        ov.append(f"data.data_root={data_root}")
    if device:
        ov.append(f"train.device={device}")
    return load_config(preset, scale, overrides=ov)


def run_dir(cfg: Config) -> Path:
    return cache_dir("runs") / f"{cfg.data.dataset}-{cfg.key()}"


def run(cfg: Config, crf: bool = False, flip: bool = True, progress: bool = True, retrain: bool = False) -> dict:
    """Train ``cfg`` (unless its run is cached) and evaluate its best checkpoint on the test split."""
    folder = run_dir(cfg)
    name = "eval" + ("_crf" if crf else "") + ("" if flip else "_noflip") + ".json"
    done = folder / name
    if done.is_file() and not retrain:
        return json.loads(done.read_text())
    with _locked(folder):  # `make -j`: two notebooks needing the same run train it once
        if done.is_file() and not retrain:
            return json.loads(done.read_text())
        return _train_and_evaluate(cfg, folder, done, crf, flip, progress, retrain)


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on a run folder (released when the lock file closes)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _train_and_evaluate(cfg: Config, folder: Path, done: Path, crf: bool, flip: bool, progress: bool,
                        retrain: bool) -> dict:
    from .evaluate import evaluate_checkpoint
    from .train import train

    if retrain or not (folder / "provenance.json").is_file():
        train(cfg, folder, resume=(folder / "last.pt").is_file() and not retrain, progress=progress)
    result = evaluate_checkpoint(folder / "best.pt", out=None, crf=crf, flip=flip, device=cfg.train.device,
                                 data_root=cfg.data.data_root, progress=progress)
    result["run_dir"] = str(folder)
    write_json(done, result)
    return result


def baseline(cfg: Config, progress: bool = True) -> dict:
    """The raw-backbone row (k-means + linear probe), cached like :func:`run`."""
    from .kmeans_baseline import run_baseline

    folder = cache_dir("runs") / f"baseline-{cfg.data.dataset}-{cfg.key()}"
    done = folder / "baseline.json"
    if done.is_file():
        return json.loads(done.read_text())
    return run_baseline(cfg, out=folder, device=cfg.train.device, progress=progress)


def row(name: str, result: dict, source: str = "measured") -> dict:
    """One table row: unsupervised and linear Acc / mIoU."""
    return {
        "method": name, "source": source,
        "unsup_acc": round(result["cluster"]["Accuracy"], 1), "unsup_miou": round(result["cluster"]["mIoU"], 1),
        "linear_acc": round(result["linear"]["Accuracy"], 1), "linear_miou": round(result["linear"]["mIoU"], 1),
    }


def save_table(rows: list[dict], out_dir: Path, name: str, caption: str = "") -> Path:
    """Write ``name.csv`` and ``name.md`` (a Markdown table)."""
    import csv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = list(rows[0].keys())
    with open(out_dir / f"{name}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    fmt = lambda v: "" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ([caption, ""] if caption else []) + ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    (out_dir / f"{name}.md").write_text("\n".join(lines) + "\n")
    return out_dir / f"{name}.csv"


def save_provenance(out_dir: Path, name: str, scale: str, runs: dict, **extra) -> Path:
    """``name.provenance.json``: the environment plus each run's own provenance."""
    runs_prov = {k: (v.get("provenance") if isinstance(v, dict) else v) for k, v in runs.items()}
    return write_json(Path(out_dir) / f"{name}.provenance.json",
                      provenance(scale=scale, artefact=name, runs=runs_prov, **extra))


# ---------------------------------------------------------------------------- analyses
def _load_run(result: dict, device: str = "cpu"):
    from .features import get_or_build_features
    from .inputs import make_backbone, make_dataset
    from .train import load_checkpoint, model_from_checkpoint

    state = load_checkpoint(Path(result["run_dir"]) / "best.pt")
    model, cfg = model_from_checkpoint(state, device=device)
    dataset = make_dataset(cfg, cfg.data.test_split)
    cache = get_or_build_features(make_backbone(cfg, device=device), dataset, device=device, progress=False)
    return model, cfg, dataset, cache


def collect_codes(result: dict, max_images: int | None = None, device: str = "cpu") -> dict:
    """Codes of the test split's patches for Fig. 4: PQ codes (N, M) when the run has PQ,
    else the continuous head output (N, d) for the histogram entropy, and labels (N,)."""
    import numpy as np
    import torch

    from .inputs import resize_labels

    model, cfg, dataset, cache = _load_run(result, device)
    n = len(cache) if not max_images else min(max_images, len(cache))
    codes, feats, labels = [], [], []
    with torch.no_grad():
        for i in range(n):
            f, lab = cache.batch([i])
            f = f.to(device)
            out = model(f)
            lab = resize_labels(lab, f.shape[-2:]).flatten()  # labels on the patch grid
            keep = lab >= 0
            labels.append(lab[keep].numpy())
            if out.codes is not None:
                codes.append(out.codes[0].flatten(1).T[keep].cpu().numpy())
            else:
                feats.append(out.code[0].flatten(1).T[keep].cpu().numpy())
    res = {"labels": np.concatenate(labels), "class_names": list(dataset.class_names), "n_images": n,
           "codebook_size": cfg.model.codebook_size if cfg.model.pq else None}
    if codes:
        res["codes"] = np.concatenate(codes)
    else:
        res["features"] = np.concatenate(feats)
    return res


def predictions(result: dict, indices: list[int], device: str = "cpu") -> dict:
    """Cluster predictions mapped to classes (Hungarian assignment of the full test split),
    with images and ground truth, for Fig. 5."""
    import numpy as np
    import torch

    from .data import IMAGENET_MEAN, IMAGENET_STD

    model, cfg, dataset, cache = _load_run(result, device)
    assignment = np.asarray(result["cluster"]["assignment"])
    out = {"image": [], "label": [], "pred": []}
    mean, std = np.asarray(IMAGENET_MEAN)[:, None, None], np.asarray(IMAGENET_STD)[:, None, None]
    with torch.no_grad():
        for i in indices:
            img, label = dataset[i][:2]
            f = cache.batch([i])[0].to(device)
            logp = model.predict(f, tuple(label.shape[-2:]))["cluster"]
            cl = logp.argmax(1)[0].cpu().numpy()
            out["pred"].append(np.where(cl < len(assignment), assignment[np.minimum(cl, len(assignment) - 1)], -1))
            out["label"].append(np.asarray(label))
            out["image"].append(np.clip(img.numpy() * std + mean, 0, 1).transpose(1, 2, 0))
    return out


def colorize(labels, palette):
    import numpy as np

    pal = np.asarray(palette, dtype=np.uint8)
    lab = np.asarray(labels)
    rgb = np.zeros(lab.shape + (3,), dtype=np.uint8)
    valid = (lab >= 0) & (lab < len(pal))
    rgb[valid] = pal[lab[valid]]
    return rgb


def show(rows: list[dict]):
    """A pandas DataFrame of table rows (for notebook display)."""
    import pandas as pd

    return pd.DataFrame(rows)
