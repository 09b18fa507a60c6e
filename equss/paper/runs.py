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

Which weights are evaluated: ``cfg.eval.checkpoint`` (``best.pt`` or ``last.pt``, see
:class:`equss.config.EvalConfig`; ``checkpoint=`` asks for the other policy, written as
``eval_<policy>...json``); every evaluation's provenance names the policy and the step.
``resolution=``: a test evaluation at another crop size than ``data.eval_resolution``
(``eval_r<N>.json``: the resolution check of issue 26).  :func:`posthoc`: the converged post-hoc
probes of a trained run (``posthoc.json``, :mod:`equss.pipeline.posthoc`).

Records are a cache across sessions: a study runs over several sessions, each with a fresh
checkout and an empty cache, and only the committed records survive.  With ``records=DIR``,
:func:`run`, :func:`step_evaluations`, :func:`posthoc` and :func:`baseline` take a requested
evaluation from the run's record when the record was made by this code (its provenance's code
fingerprint equals :func:`~equss.provenance.running_code_fingerprint`, and the evaluation file's
own) and holds that file with its per-image counts: the file is copied into the cache folder (with
the record's config, log and provenance when the folder has no training of its own) and returned
exactly as from the cache.  Only an evaluation missing from the record whose checkpoint is missing
too trains again (deterministic at a fixed thread count, :mod:`equss.paper.executor`).  A record
of other code is never used.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from equss.config import Config, load_config
from equss.io import read_json
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


CHECKPOINTS = {"best": "best.pt", "last": "last.pt"}  # eval.checkpoint -> the file it evaluates


def policy_of(cfg: Config, checkpoint: str | None = None) -> str:
    """The checkpoint policy of a request: ``checkpoint`` when given, else ``cfg.eval.checkpoint``."""
    from equss.errors import EqussError

    policy = cfg.eval.checkpoint if checkpoint is None else checkpoint
    if policy not in CHECKPOINTS:
        raise EqussError(f"checkpoint policy must be one of {', '.join(CHECKPOINTS)}, got {policy!r}")
    return policy


def _suffix(cfg: Config, policy: str | None) -> str:
    return "" if policy is None or policy == cfg.eval.checkpoint else f"_{policy}"


def eval_file(cfg: Config, crf: bool = False, flip: bool | None = None, resolution: int | None = None,
              checkpoint: str | None = None) -> str:
    """The name of a run's test evaluation in its folder: ``eval[_<policy>][_r<N>][_flip][_crf].json``
    (official protocol: ``eval.json``); ``_<policy>`` only for a policy other than ``cfg.eval.checkpoint``,
    ``_r<N>`` only for a resolution other than ``data.eval_resolution``."""
    flip = cfg.eval.flip if flip is None else flip
    res = "" if resolution is None or int(resolution) == cfg.data.eval_resolution else f"_r{int(resolution)}"
    return ("eval" + _suffix(cfg, checkpoint) + res + ("_flip" if flip else "") + ("_crf" if crf else "")
            + ".json")


def posthoc_file(cfg: Config, checkpoint: str | None = None) -> str:
    """The name of a run's post-hoc probes in its folder: ``posthoc[_<policy>].json``."""
    return "posthoc" + _suffix(cfg, checkpoint) + ".json"


def baseline_dir(cfg: Config) -> Path:
    return cache_dir("runs") / f"baseline-{cfg.data.dataset}-{cfg.key()}-{running_code_fingerprint()}"


def run(cfg: Config, crf: bool = False, flip: bool | None = None, progress: bool = True, retrain: bool = False,
        records: str | os.PathLike | None = None, resolution: int | None = None,
        checkpoint: str | None = None) -> dict:
    """Train ``cfg`` (unless its run is cached) and evaluate on the test split the checkpoint its policy
    names (``checkpoint``, default ``cfg.eval.checkpoint``: ``best.pt`` or ``last.pt``), at
    ``resolution`` (default ``data.eval_resolution``), with flip averaging ``flip`` (default
    ``cfg.eval.flip``).  ``records``: the run's record is written there, and read as a cache
    (module docstring)."""
    flip = cfg.eval.flip if flip is None else flip
    policy = policy_of(cfg, checkpoint)
    if resolution is not None:
        from equss.pipeline.evaluate import checked_resolution

        resolution = checked_resolution(resolution)
    folder = run_dir(cfg)
    name = eval_file(cfg, crf, flip, resolution, policy)
    done = folder / name
    if retrain or not _done(done, policy):
        with folder_lock(folder, wait=True):  # `make -j`: two notebooks needing the same run train it once
            seeded = bool(records) and not retrain and bool(_seed(cfg, folder, records, [name], policy))
            if retrain or not _done(done, policy):
                trained = _trained(folder, policy) and not retrain
                what = "evaluating" + (" with the dense CRF" if crf else "") + (
                    f" at {resolution} px" if resolution and resolution != cfg.data.eval_resolution else "")
                phase = what if trained else "training, then " + what
                note(f"run {describe(cfg)}: {phase} ({folder.name})")
                _train_and_evaluate(cfg, folder, done, crf, flip, progress, retrain, resolution, policy)
            elif seeded:
                note(f"run {describe(cfg)}: from its record ({folder.name})")
    else:
        note(f"run {describe(cfg)}: cached ({folder.name})")
    result = json.loads(done.read_text())
    result["run_dir"] = str(folder)
    result["run"] = run_name(cfg)
    result["eval_file"] = name
    if records:
        record(folder, Path(records) / result["run"])
    return result


RECORD_FILES = ("config.yaml", "log.jsonl", "provenance.json", "baseline.json")
EVALUATIONS = ("eval", "baseline", "posthoc")  # an evaluation's file name starts with one of these


def record(folder: Path, dest: Path) -> Path:
    """Copy a run's record (config, log, evaluations and their per-image counts, provenance; no
    checkpoints) to ``dest``."""
    from equss.eval.per_image import SUFFIX

    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(folder.iterdir()):
        if f.name in RECORD_FILES or (f.name.startswith(EVALUATIONS) and (f.suffix == ".json" or f.name.endswith(SUFFIX))):
            shutil.copyfile(f, dest / f.name)
    return dest


# ---------------------------------------------------------------------------- records as a cache
def _done(path: Path, policy: str | None = None) -> bool:
    """``path`` is a finished evaluation of the checkpoint ``policy`` names (an evaluation that
    records another policy is not)."""
    if not path.is_file():
        return False
    if policy is None:
        return True
    doc = read_json(path) or {}
    return (doc.get("provenance") or {}).get("checkpoint_policy", policy) == policy


def _trained(folder: Path, policy: str) -> bool:
    """A finished training whose checkpoint of ``policy`` is in ``folder``."""
    return (folder / "provenance.json").is_file() and (folder / CHECKPOINTS[policy]).is_file()


def record_of(cfg: Config, records: str | os.PathLike) -> Path | None:
    """The record in ``records`` of the training of ``cfg`` made by this code: ``<run name>``, or
    another preset's record of the same config key and seed (Table 3's Q3 is Table 1's EQUSS),
    whose ``provenance.json`` names the running code fingerprint and this config key; None if none."""
    root, key = Path(records), cfg.key()
    names = [run_name(cfg)] + sorted(p.name for p in root.glob(f"*-seed{int(cfg.train.seed)}-{key}")
                                     if not p.name.startswith("baseline-"))
    for n in dict.fromkeys(names):
        prov = read_json(root / n / "provenance.json")
        if (isinstance(prov, dict) and prov.get("code_fingerprint") == running_code_fingerprint()
                and prov.get("config_key", key) == key):
            return root / n
    return None


def _usable(src: Path, policy: str | None) -> dict | None:
    """The evaluation JSON ``src`` of a record when this code made it (its provenance's fingerprint),
    of the checkpoint ``policy`` names, with its per-image file beside it; else None."""
    doc = read_json(src)
    if not isinstance(doc, dict):
        return None
    prov = doc.get("provenance") or {}
    if prov.get("code_fingerprint") != running_code_fingerprint():
        return None
    if policy is not None and prov.get("checkpoint_policy", policy) != policy:
        return None
    archive = doc.get("per_image_file")
    return doc if not archive or (src.parent / archive).is_file() else None


def _seed(cfg: Config | None, folder: Path, records: str | os.PathLike, names: list[str], policy: str | None,
          record: Path | None = None) -> list[str]:
    """Copy the evaluations ``names`` that ``folder`` lacks from the run's record (:func:`record_of`, or
    ``record``) into ``folder`` when usable (:func:`_usable`): each per-image file first, then its JSON;
    with the record's config, log and provenance when ``folder`` holds no training (no provenance, no
    checkpoint).  Returns the names copied.  Call with the folder's lock held."""
    rec = record if record is not None else record_of(cfg, records)
    if rec is None:
        return []
    copied = []
    for n in names:
        if _done(folder / n, policy):
            continue
        doc = _usable(rec / n, policy)
        if doc is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        if record is None and not (folder / "provenance.json").is_file() and not any(folder.glob("*.pt")):
            for meta in ("config.yaml", "log.jsonl", "provenance.json"):  # provenance last: "finished"
                if (rec / meta).is_file():
                    shutil.copyfile(rec / meta, folder / meta)
        if doc.get("per_image_file"):
            shutil.copyfile(rec / doc["per_image_file"], folder / doc["per_image_file"])
        shutil.copyfile(rec / n, folder / n)
        copied.append(n)
    return copied


def cached_in_records(cfg: Config, records: str | os.PathLike | None, names: list[str],
                      policy: str | None = None, baseline: bool = False) -> bool:
    """Every evaluation ``names`` of ``cfg``'s run (``baseline``: of its raw-feature baseline) can be
    taken from ``records`` (what :func:`run` / :func:`baseline` would copy; the executor's plan)."""
    if not records:
        return False
    rec = Path(records) / ("baseline-" + run_name(cfg)) if baseline else record_of(cfg, records)
    return rec is not None and all(_usable(rec / n, policy) is not None for n in names)


def _ensure_trained(cfg: Config, folder: Path, checkpoint_file: str, progress: bool, retrain: bool = False) -> None:
    """A finished training of ``cfg`` in ``folder`` with ``checkpoint_file``: resumed from ``last.pt``
    when an unfinished one is there, else trained from an empty folder."""
    from equss.pipeline.train import train

    if not retrain and (folder / "provenance.json").is_file() and (folder / checkpoint_file).is_file():
        return
    resume = not retrain and not (folder / "provenance.json").is_file() and (folder / "last.pt").is_file()
    if not resume:  # a fresh start: nothing of an earlier attempt (or a record's copy) may leak into this run
        folder.mkdir(parents=True, exist_ok=True)
        for f in folder.iterdir():
            if f.name != ".lock":
                shutil.rmtree(f) if f.is_dir() else f.unlink()
    train(cfg, folder, resume=resume, overwrite=not resume, progress=progress)


def evaluated_checkpoint(result: dict, folder: str | os.PathLike | None = None, progress: bool = False,
                         train_missing: bool = True) -> Path:
    """The checkpoint an evaluation ``result`` evaluated (its provenance's ``checkpoint_policy``:
    ``last.pt`` at proxy scale, ``best.pt`` for the official protocol) in ``folder`` (default: the
    result's run-cache folder), so that a figure or a shipped model is the weights its table measured.
    A run taken from its record in a later session has no checkpoint: with ``train_missing`` it is
    trained again from the folder's config (the same numbers at the same thread count:
    ``tests/test_executor.py``)."""
    from equss.config import config_from_dict

    folder = Path(folder or result["run_dir"])
    policy = (result.get("provenance") or {}).get("checkpoint_policy") or "best"
    path = folder / CHECKPOINTS[policy]
    if train_missing and not path.is_file():
        with folder_lock(folder, wait=True):
            if not path.is_file():
                import yaml

                cfg = config_from_dict(yaml.safe_load((folder / "config.yaml").read_text()))
                note(f"run {describe(cfg)}: training again for its checkpoint (the record has none)")
                _ensure_trained(cfg, folder, CHECKPOINTS[policy], progress)
    return path


def describe(cfg: Config) -> str:
    """A short human name for a run's config (for progress lines)."""
    m, t = cfg.model, cfg.train
    pq = f", PQ M={m.num_codebooks} K={m.codebook_size}" if m.pq else ", no PQ"
    sup = ", supervised" if m.objective == "supervised" else ""
    steps = f"{t.epochs:g} epochs" if t.epochs > 0 else f"{t.steps} steps"
    return f"{cfg.name} [{cfg.data.dataset}, d={m.head_dim}{pq}{sup}, seed {t.seed}, {steps}]"


def _train_and_evaluate(cfg: Config, folder: Path, done: Path, crf: bool, flip: bool, progress: bool,
                        retrain: bool, resolution: int | None = None, policy: str | None = None) -> dict:
    from equss.pipeline.evaluate import evaluate_checkpoint, write_evaluation

    policy = policy_of(cfg, policy)
    _ensure_trained(cfg, folder, CHECKPOINTS[policy], progress, retrain)
    import torch

    # the CRF on as many worker processes as this run has intra-op threads (its numbers do not depend on
    # the count: the metrics are sums over images; tests/test_crf_workers.py)
    workers = max(1, torch.get_num_threads()) if crf else 1
    result = evaluate_checkpoint(folder / CHECKPOINTS[policy], out=None, crf=crf, flip=flip, device=cfg.train.device,
                                 data_root=cfg.data.data_root, progress=progress, resolution=resolution,
                                 workers=workers)
    write_evaluation(done, result)
    return result


def kept_steps(cfg: Config, folder: Path) -> list[int]:
    """The steps of a run's kept checkpoints: the ``step_<N>.pt`` in ``folder`` and, with
    ``train.keep_checkpoints``, every validation step of its ``log.jsonl`` (a checkpoint is kept at
    each validation; a folder seeded from a record has the log, not the checkpoints)."""
    steps = {int(p.stem.split("_")[1]) for p in folder.glob("step_*.pt")}
    log = folder / "log.jsonl"
    if cfg.train.keep_checkpoints and log.is_file():
        steps |= {int(e["step"]) for e in map(json.loads, log.read_text().splitlines()) if "val" in e}
    return sorted(steps)


def step_evaluations(cfg: Config, result: dict, records: str | os.PathLike | None = None, progress: bool = True) -> dict[int, dict]:
    """Test evaluations of every kept checkpoint (``step_<N>.pt``, ``train.keep_checkpoints``) of a
    run of ``cfg`` returned by :func:`run`: ``{N: eval dict}``, cached as ``eval_step_<N>.json`` in the run
    folder (and so in its record; with ``records``, taken from the record as :func:`run` does)."""
    from equss.pipeline.evaluate import evaluate_checkpoint, write_evaluation

    folder = Path(result["run_dir"])
    out = {}
    for step in kept_steps(cfg, folder):
        done = folder / f"eval_step_{step}.json"
        if not done.is_file():
            with folder_lock(folder, wait=True):
                if records:
                    _seed(cfg, folder, records, [done.name], None)
                if not done.is_file():
                    ckpt = folder / f"step_{step}.pt"
                    _ensure_trained(cfg, folder, ckpt.name, progress)
                    if not ckpt.is_file():
                        from equss.errors import EqussError

                        raise EqussError(f"run {folder.name} kept no checkpoint of step {step} (train.keep_checkpoints)")
                    write_evaluation(done, evaluate_checkpoint(ckpt, out=None, crf=False, flip=cfg.eval.flip,
                                                               device=cfg.train.device, data_root=cfg.data.data_root,
                                                               progress=progress))
        out[step] = {**json.loads(done.read_text()), "run": result["run"], "eval_file": done.name}
    if records:
        record(folder, Path(records) / result["run"])
    return out


def posthoc(cfg: Config, progress: bool = True, records: str | os.PathLike | None = None,
            checkpoint: str | None = None) -> dict:
    """The converged post-hoc probes (:mod:`equss.pipeline.posthoc`) of the checkpoint the policy names
    (``checkpoint``, default ``cfg.eval.checkpoint``) of ``cfg``'s run, trained first unless cached:
    ``posthoc.json`` in the run folder (``{"head": {"cluster", "linear"}, "quantised": ... (PQ),
    "provenance"}``), returned with ``run_dir``, ``run`` and ``eval_file`` as :func:`run` does."""
    from equss.pipeline.evaluate import write_evaluation
    from equss.pipeline.posthoc import run_posthoc

    policy = policy_of(cfg, checkpoint)
    folder = run_dir(cfg)
    name = posthoc_file(cfg, policy)
    done = folder / name
    if not _done(done, policy):
        with folder_lock(folder, wait=True):
            if records:
                _seed(cfg, folder, records, [name], policy)
            if not _done(done, policy):
                trained = _trained(folder, policy)
                note(f"run {describe(cfg)}: " + ("" if trained else "training, then ")
                     + f"post-hoc probes on the frozen head output ({folder.name})")
                _ensure_trained(cfg, folder, CHECKPOINTS[policy], progress)
                write_evaluation(done, run_posthoc(folder / CHECKPOINTS[policy], out=None, device=cfg.train.device,
                                                   data_root=cfg.data.data_root, progress=progress))
    else:
        note(f"run {describe(cfg)}: post-hoc probes cached ({folder.name})")
    result = json.loads(done.read_text())
    result.update(run_dir=str(folder), run=run_name(cfg), eval_file=name)
    if records:
        record(folder, Path(records) / result["run"])
    return result


def validation_curve(result: dict) -> list[dict]:
    """The validations in a run's ``log.jsonl``: ``[{"step", "cluster_mIoU", "linear_mIoU", ...}]``."""
    rows = []
    for line in (Path(result["run_dir"]) / "log.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if "val" in entry:
            rows.append({"step": entry["step"], **entry["val"]})
    return rows


def baseline(cfg: Config, progress: bool = True, records: str | os.PathLike | None = None) -> dict:
    """The raw-backbone row (k-means + linear probe), cached like :func:`run` (``records``: written
    there, and read as a cache)."""
    from equss.pipeline.baseline import run_baseline

    folder = baseline_dir(cfg)
    done = folder / "baseline.json"
    if not done.is_file():
        with folder_lock(folder, wait=True):
            if records:  # this code's record of the same baseline: the cache of an earlier session
                _seed(None, folder, records, ["baseline.json"], None,
                      record=Path(records) / ("baseline-" + run_name(cfg)))
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
