"""The run cache the notebooks use: train and evaluate a config once, reuse it after.

Notebooks stay thin: they pick presets for their scale and call :func:`run` /
:func:`baseline`, which train and evaluate once per config (the run cache is keyed by
:meth:`equss.config.Config.key`, so Table 3's Q3 and Table 1's EQUSS row are one run)
and return the evaluation dict with its provenance.

Run cache: ``$EQUSS_CACHE/runs/<dataset>-<key>/`` (train folder + ``eval.json``).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from equss.config import Config, load_config
from equss.locks import folder_lock
from equss.paths import cache_dir
from equss.io import write_json

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
    with folder_lock(folder, wait=True):  # `make -j`: two notebooks needing the same run train it once
        if done.is_file() and not retrain:
            return json.loads(done.read_text())
        return _train_and_evaluate(cfg, folder, done, crf, flip, progress, retrain)


def _train_and_evaluate(cfg: Config, folder: Path, done: Path, crf: bool, flip: bool, progress: bool,
                        retrain: bool) -> dict:
    from equss.pipeline.evaluate import evaluate_checkpoint
    from equss.pipeline.train import train

    if retrain or not (folder / "provenance.json").is_file():
        resume = (folder / "last.pt").is_file() and not retrain
        # a cache folder: anything there that is not resumable is ours to replace
        train(cfg, folder, resume=resume, overwrite=not resume, progress=progress)
    result = evaluate_checkpoint(folder / "best.pt", out=None, crf=crf, flip=flip, device=cfg.train.device,
                                 data_root=cfg.data.data_root, progress=progress)
    result["run_dir"] = str(folder)
    write_json(done, result)
    return result


def baseline(cfg: Config, progress: bool = True) -> dict:
    """The raw-backbone row (k-means + linear probe), cached like :func:`run`."""
    from equss.pipeline.baseline import run_baseline

    folder = cache_dir("runs") / f"baseline-{cfg.data.dataset}-{cfg.key()}"
    done = folder / "baseline.json"
    if done.is_file():
        return json.loads(done.read_text())
    return run_baseline(cfg, out=folder, device=cfg.train.device, progress=progress)
