"""The run cache the notebooks use: train and evaluate a config once, reuse it after.

Notebooks stay thin: they pick presets for their scale and call :func:`run` /
:func:`baseline`, which train and evaluate once per config and code and return the
evaluation dict with its provenance.

Run cache: ``$EQUSS_CACHE/runs/<dataset>-<config key>-<code fingerprint>/`` (train folder
+ ``eval*.json``).  The config key (:meth:`equss.config.Config.key`) makes Table 3's Q3 and
Table 1's EQUSS row one run; the code fingerprint
(:func:`equss.provenance.code_fingerprint`) makes a run trained by other code stale
instead of silently reused.  A run that is retrained starts from an empty folder (no
appended log, no stale ``best.pt``).

Run records: with ``records=DIR`` every run also writes ``DIR/<run name>/`` with its
resolved config, training log, evaluation JSON, per-image confusion counts
(``*.per_image.npz``, :mod:`equss.eval.per_image`) and provenance (no checkpoints): what the
results folder commits, so every number in a table traces to one record.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from equss.config import Config, load_config
from equss.locks import folder_lock
from equss.paths import cache_dir
from equss.progress import note
from equss.provenance import running_code_fingerprint

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


SEEDS = {"smoke": [0], "proxy": [0, 1, 2], "paper": [0, 1, 2]}


def seeds_for(scale: str, seeds=None, proxy: list[int] | None = None) -> list[int]:
    """The seeds a notebook runs: ``seeds`` when given, else ``[0]`` at smoke and ``[0, 1, 2]``
    at proxy and paper (``proxy``: another default at proxy scale, e.g. ``[0]`` for the
    large grids of Figs 2 and 6)."""
    if seeds is not None:
        return [int(s) for s in ([seeds] if isinstance(seeds, int) else seeds)]
    if scale == "proxy" and proxy is not None:
        return list(proxy)
    return list(SEEDS[scale])


def setup(scale: str, results: str | None = None, data_root: str | None = None, device: str | None = "auto",
          overrides: list[str] | None = None):
    """The shared start of every notebook: ``out, cfg = setup(scale, results_dir, data_root, device, overrides)``.

    ``out`` is the results folder (its ``runs/`` subfolder receives the run records);
    ``cfg(paper_preset, seed=0, **{"section.key": value})`` is the config of the paper preset at
    this scale (``preset_for``) with, in this order: at proxy scale the loss shifts the tuning
    notebook chose on validation for that preset (:func:`equss.paper.tuning.tuned_overrides`) and the
    step count chosen on validation by the learning-curve notebook (:func:`chosen_steps`), the keyword overrides,
    ``train.seed = seed``, and last the notebook's ``overrides`` (``["section.key=value", ...]``,
    applied to every config: e.g. a paper-scale dry run with ``train.steps=2``)."""
    out = results_dir(scale, results)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    if scale == "smoke" and data_root is None:  # no data given: the generated smoke set (equss.data.synthetic)
        from equss.data.synthetic import smoke_data_root

        data_root = str(smoke_data_root())
    common = list(overrides or [])
    steps, source = (chosen_steps(out), out / "learning_curves.json") if scale == "proxy" else (None, None)
    if scale == "proxy" and steps is None and COMMITTED.joinpath(scale).resolve() != out.resolve():
        # a user's results folder (results/local/proxy) without a choice of its own: the committed one
        source = COMMITTED / scale / "learning_curves.json"
        steps = chosen_steps(source.parent)
    first = [f"train.steps={steps}"] if steps else []  # before the notebook's own keywords: they win
    if scale == "proxy":
        note(f"proxy step count: {steps} (chosen on validation by the learning_curves notebook, "
             f"{_shown(source)})" if steps else
             "proxy step count: the preset's (no learning_curves.json yet: `equss reproduce learning-curves`)")
    from equss.paper import tuning

    shifts = tuning.source(out) if scale == "proxy" else None
    if scale == "proxy":
        note(f"proxy loss shifts: tuned on validation per preset by the tuning notebook ({_shown(shifts)}; "
             "a preset it did not tune keeps its own)" if shifts else
             "proxy loss shifts: the presets' (no tuning.json yet: `equss reproduce tuning`)")

    def cfg(paper_preset: str, seed: int = 0, **ov) -> Config:
        preset = preset_for(paper_preset, scale)
        tuned = tuning.tuned_overrides(shifts.parent, preset) if shifts else []  # before the keywords: they win
        items = tuned + first + [f"{k}={v}" for k, v in ov.items()] + [f"train.seed={int(seed)}"] + common
        return config(preset, scale, overrides=items, data_root=data_root, device=device)

    return out, cfg


COMMITTED = Path(__file__).resolve().parents[2] / "results"  # the committed results/<scale>/ of this checkout


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (no machine path in an executed notebook)."""
    try:
        return str(path.resolve().relative_to(COMMITTED.parent))
    except ValueError:
        return str(path)


def chosen_steps(out: str | os.PathLike) -> int | None:
    """The proxy step count the ``learning_curves`` notebook chose on validation
    (``out/learning_curves.json``): the largest of the methods' chosen steps, so that one count
    serves every run of a table or figure and no method is stopped before its rule says it has
    converged.  None while that file does not exist (the preset's count is used)."""
    path = Path(out) / "learning_curves.json"
    if not path.is_file():
        return None
    chosen = json.loads(path.read_text()).get("chosen") or {}
    steps = [int(c["step"]) for c in chosen.values()]
    return max(steps) if steps else None


def config(preset: str, scale: str, overrides: dict | list | None = None, data_root: str | None = None,
           device: str | None = None) -> Config:
    ov = list(overrides or []) if not isinstance(overrides, dict) else [
        f"{k}={v}" for k, v in overrides.items()]
    if data_root:
        ov.append(f"data.data_root={data_root}")
    if device:
        ov.append(f"train.device={device}")
    return load_config(preset, scale, overrides=ov)


def run_name(cfg: Config) -> str:
    """Readable and unique: ``<preset>-seed<seed>-<config key>``."""
    return f"{cfg.name}-seed{cfg.train.seed}-{cfg.key()}"


def run_dir(cfg: Config) -> Path:
    return cache_dir("runs") / f"{cfg.data.dataset}-{cfg.key()}-{running_code_fingerprint()}"


def eval_file(cfg: Config, crf: bool = False, flip: bool | None = None) -> str:
    """The name of a run's test evaluation in its folder: ``eval[_flip][_crf].json`` (official protocol:
    ``eval.json``)."""
    flip = cfg.eval.flip if flip is None else flip
    return "eval" + ("_flip" if flip else "") + ("_crf" if crf else "") + ".json"


def baseline_dir(cfg: Config) -> Path:
    return cache_dir("runs") / f"baseline-{cfg.data.dataset}-{cfg.key()}-{running_code_fingerprint()}"


def run(cfg: Config, crf: bool = False, flip: bool | None = None, progress: bool = True, retrain: bool = False,
        records: str | os.PathLike | None = None) -> dict:
    """Train ``cfg`` (unless its run is cached) and evaluate its best checkpoint on the test split
    (flip averaging: ``cfg.eval.flip`` unless given)."""
    flip = cfg.eval.flip if flip is None else flip
    folder = run_dir(cfg)
    name = eval_file(cfg, crf, flip)
    done = folder / name
    if not (done.is_file() and not retrain):
        with folder_lock(folder, wait=True):  # `make -j`: two notebooks needing the same run train it once
            if not (done.is_file() and not retrain):
                trained = (folder / "provenance.json").is_file() and not retrain
                phase = ("evaluating with the dense CRF" if crf else "evaluating") if trained else (
                    "training, then evaluating" + (" with the dense CRF" if crf else ""))
                note(f"run {describe(cfg)}: {phase} ({folder.name})")
                _train_and_evaluate(cfg, folder, done, crf, flip, progress, retrain)
    else:
        note(f"run {describe(cfg)}: cached ({folder.name})")
    result = json.loads(done.read_text())
    result["run_dir"] = str(folder)
    result["run"] = run_name(cfg)
    result["eval_file"] = name
    if records:
        record(folder, Path(records) / result["run"])
    return result


def record(folder: Path, dest: Path) -> Path:
    """Copy a run's record (config, log, evaluations and their per-image counts, provenance; no
    checkpoints) to ``dest``."""
    from equss.eval.per_image import SUFFIX

    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(folder.iterdir()):
        if f.name in ("config.yaml", "log.jsonl", "provenance.json", "baseline.json") or (
                f.name.startswith("eval") and f.suffix == ".json") or (
                f.name.startswith(("eval", "baseline")) and f.name.endswith(SUFFIX)):
            shutil.copyfile(f, dest / f.name)
    return dest


def describe(cfg: Config) -> str:
    """A short human name for a run's config (for progress lines)."""
    m, t = cfg.model, cfg.train
    pq = f", PQ M={m.num_codebooks} K={m.codebook_size}" if m.pq else ", no PQ"
    sup = ", supervised" if m.objective == "supervised" else ""
    steps = f"{t.epochs:g} epochs" if t.epochs > 0 else f"{t.steps} steps"
    return f"{cfg.name} [{cfg.data.dataset}, d={m.head_dim}{pq}{sup}, seed {t.seed}, {steps}]"


def _train_and_evaluate(cfg: Config, folder: Path, done: Path, crf: bool, flip: bool, progress: bool,
                        retrain: bool) -> dict:
    from equss.pipeline.evaluate import evaluate_checkpoint, write_evaluation
    from equss.pipeline.train import train

    if retrain or not (folder / "provenance.json").is_file():
        resume = (folder / "last.pt").is_file() and not retrain
        if not resume:  # a fresh start: nothing of an earlier attempt may leak into this run
            for f in folder.iterdir():
                if f.name != ".lock":
                    shutil.rmtree(f) if f.is_dir() else f.unlink()
        train(cfg, folder, resume=resume, overwrite=not resume, progress=progress)
    result = evaluate_checkpoint(folder / "best.pt", out=None, crf=crf, flip=flip, device=cfg.train.device,
                                 data_root=cfg.data.data_root, progress=progress)
    write_evaluation(done, result)
    return result


def step_evaluations(cfg: Config, result: dict, records: str | os.PathLike | None = None, progress: bool = True) -> dict[int, dict]:
    """Test evaluations of every kept checkpoint (``step_<N>.pt``, ``train.keep_checkpoints``) of a
    run of ``cfg`` returned by :func:`run`: ``{N: eval dict}``, cached as ``eval_step_<N>.json`` in the run
    folder (and so in its record)."""
    from equss.pipeline.evaluate import evaluate_checkpoint, write_evaluation

    folder = Path(result["run_dir"])
    out = {}
    for ckpt in sorted(folder.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1])):
        step = int(ckpt.stem.split("_")[1])
        done = folder / f"eval_step_{step}.json"
        if not done.is_file():
            with folder_lock(folder, wait=True):
                if not done.is_file():
                    write_evaluation(done, evaluate_checkpoint(ckpt, out=None, crf=False, flip=cfg.eval.flip,
                                                               device=cfg.train.device, data_root=cfg.data.data_root,
                                                               progress=progress))
        out[step] = {**json.loads(done.read_text()), "run": result["run"], "eval_file": done.name}
    if records:
        record(folder, Path(records) / result["run"])
    return out


def validation_curve(result: dict) -> list[dict]:
    """The validations in a run's ``log.jsonl``: ``[{"step", "cluster_mIoU", "linear_mIoU", ...}]``."""
    rows = []
    for line in (Path(result["run_dir"]) / "log.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if "val" in entry:
            rows.append({"step": entry["step"], **entry["val"]})
    return rows


def baseline(cfg: Config, progress: bool = True, records: str | os.PathLike | None = None) -> dict:
    """The raw-backbone row (k-means + linear probe), cached like :func:`run`."""
    from equss.pipeline.baseline import run_baseline

    folder = baseline_dir(cfg)
    done = folder / "baseline.json"
    if not done.is_file():
        with folder_lock(folder, wait=True):
            if not done.is_file():
                note(f"baseline {cfg.data.dataset}: k-means and linear probe on the raw features ({folder.name})")
                run_baseline(cfg, out=folder, device=cfg.train.device, progress=progress)
    else:
        note(f"baseline {cfg.data.dataset}: cached ({folder.name})")
    result = json.loads(done.read_text())
    result["run"] = "baseline-" + run_name(cfg)
    result["eval_file"] = "baseline.json"
    if records:
        record(folder, Path(records) / result["run"])
    return result
