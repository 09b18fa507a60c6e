"""The tuning stage of a proxy reproduction: every compared arm's loss shifts chosen on validation by
one rule and one budget (issue 26, "Tuning").

Why.  STEGO's correlation-loss shifts (``loss.*_shift``, Eq. 5's ``L_head``) were tuned by its
authors per dataset for DINO ViT-S/8 and do not transfer to the proxy's DINOv2 ViT-S/14
(:mod:`equss.pipeline.tune`).  Before this stage only EQUSS had its shifts tuned on the proxy
(``camvid-equss``: 5 candidates x 150 steps, validation cluster mIoU 10.1 .. 24.6, ten times the
effect under test) and every other arm ran on EQUSS's shifts: a comparison between a tuned and an
untuned arm.  Here every arm that a claim compares is tuned by :func:`equss.pipeline.tune.tune`
with the same rule:

* **levels** :data:`LEVELS`: the five per-term ``fd`` quantile levels EQUSS's own search tried on
  CamVid ({0.5, 0.65, 0.8}, then {0.9, (0.8, 0.8, 0.9)}; ``presets/proxy.yaml``), so the arm that had
  them keeps them and the others get the same candidates;
* **budget** :data:`STEPS` training steps per candidate: the budget EQUSS had;
* **seed** :data:`SEED`; calibration on the dataset's own training split, selection by validation
  cluster mIoU on its own validation split (the official model-selection metric; the test split is
  never looked at).  Dubai is tuned on Dubai (it used to carry CamVid's level over by calibration).

At smoke scale (CI) the rule is :data:`SMOKE_LEVELS` x :data:`SMOKE_STEPS` on :data:`SMOKE_ARMS` so that
the notebook runs in about a minute; proxy and paper keep the full rule.  At paper scale nothing is tuned: the paper presets
carry the official codes' shifts, the faithful choice there.

Cache and records.  :func:`tune_arm` runs ``tune()`` once per arm in
``$EQUSS_CACHE/tune/<dataset>-<config key>-<code fingerprint>-<rule hash>/`` (under
:func:`equss.locks.folder_lock`, like the run cache of :mod:`equss.paper.runs`) and copies its
``tune.json`` (fd quantiles, every candidate with its validation numbers, the choice, provenance; no
checkpoints) to ``<results>/tuning/<preset>/tune.json``.  The config key is that of the config the
candidates train (:func:`tuning_config`: the rule's seed and step count, the shifts blanked), so it
does not depend on the shifts or step count a results folder already chose.  A committed record
of the same code fingerprint, rule and config counts as done: a later session with an empty cache
trains nothing.  :func:`write` gathers the choices into ``<results>/tuning.json`` (and
``tuning.md``), which :func:`equss.paper.runs.setup` reads through :func:`tuned_overrides`.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from equss.config import Config, config_from_dict, replace
from equss.errors import EqussError
from equss.io import read_json, write_json
from equss.locks import folder_lock
from equss.paths import cache_dir
from equss.progress import note
from equss.provenance import running_code_fingerprint

# The rule (one place; the module docstring says why).
LEVELS = ("0.5", "0.65", "0.8", "0.9", "0.8,0.8,0.9")  # per-term fd quantile levels (intra, inter, negative)
STEPS = 150                                               # training steps per candidate
SEED = 0
SMOKE_LEVELS, SMOKE_STEPS = ("0.5", "0.9"), 2             # CI only: two candidates of two steps
SHIFTS = ("pos_intra_shift", "pos_inter_shift", "neg_inter_shift")
PROCEDURE = ("shifts = each term's own fd quantile at level q (calibrated on the training split); every level "
             "trained for the same number of steps from the same seed; the level with the highest validation "
             "cluster mIoU is kept (equss.pipeline.tune; the test split is never looked at)")

# The tuned proxy presets, each with the paper preset a notebook names for it (runs.preset_for).
ARMS = {
    "camvid-equss": "cocostuff27-equss",  # Table 3's Q3 too (SAME_AS)
    "camvid-stego": "cocostuff27-stego",
    "camvid-M1": "cocostuff27-M1",
    "camvid-M2": "cocostuff27-M2",
    "camvid-M3": "cocostuff27-M3",
    "camvid-Q2": "cocostuff27-Q2",
    "dubai-equss": "potsdam3-equss",
    "dubai-stego": "potsdam3-stego",
    "dubai-M1": "potsdam3-M1",  # STEGO's 70-d head without PQ on EQUSS's recipe, on Dubai
}
SAME_AS = {"camvid-Q3": "camvid-equss"}  # presets that resolve to a tuned arm's config (one run key)
# CI (smoke) tunes three arms that cover both datasets, both recipes and the new preset: seconds, not minutes
SMOKE_ARMS = ("camvid-equss", "camvid-stego", "dubai-M1")

COMMITTED = Path(__file__).resolve().parents[2] / "results"  # = runs.COMMITTED (runs imports this module)


def rule(scale: str) -> dict:
    """The tuning rule at ``scale``: ``{"levels", "steps_per_candidate", "seed"}``."""
    levels, steps = (SMOKE_LEVELS, SMOKE_STEPS) if scale == "smoke" else (LEVELS, STEPS)
    return {"levels": list(levels), "steps_per_candidate": steps, "seed": SEED}


def arms_for(scale: str) -> list[str]:
    """The presets a scale tunes: every arm at proxy, :data:`SMOKE_ARMS` at smoke, none at paper (the
    paper presets carry the official shifts)."""
    return {"paper": [], "smoke": list(SMOKE_ARMS)}.get(scale, list(ARMS))


def rule_hash(r: dict) -> str:
    """12 hex digits of the rule (levels, steps, seed): part of the cache key."""
    blob = json.dumps({k: r[k] for k in ("levels", "steps_per_candidate", "seed")}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def tuning_config(cfg: Config, r: dict) -> Config:
    """``cfg`` as the candidates train it: the rule's seed and step count (one validation at the end, no
    epoch count), the shifts blanked (every candidate sets its own).  Its key is the cache key, so the
    shifts or step count a results folder already chose (``runs.setup``) do not change it."""
    steps = r["steps_per_candidate"]
    return replace(cfg, loss={k: 0.0 for k in SHIFTS},
                   train={"seed": r["seed"], "steps": max(steps, 1), "epochs": 0.0, "val_every": max(steps, 1),
                          "ckpt_every": max(steps, 1), "keep_checkpoints": False})


def tune_dir(cfg: Config, r: dict) -> Path:
    """The cache folder of one arm: ``tune/<dataset>-<config key>-<code fingerprint>-<rule hash>``."""
    base = tuning_config(cfg, r)
    return cache_dir("tune") / f"{base.data.dataset}-{base.key()}-{running_code_fingerprint()}-{rule_hash(r)}"


def matches(record: dict | None, cfg: Config, r: dict) -> bool:
    """Whether a ``tune.json`` was made by this code, this rule and this arm's config."""
    if not isinstance(record, dict):
        return False
    prov = record.get("provenance") or {}
    try:
        key = config_from_dict(prov.get("config") or {}).key()
    except (EqussError, TypeError, ValueError, KeyError):
        return False
    return (prov.get("code_fingerprint") == running_code_fingerprint()
            and [str(x) for x in record.get("levels", [])] == [str(x) for x in r["levels"]]
            and record.get("steps_per_candidate") == r["steps_per_candidate"]
            and key == tuning_config(cfg, r).key())


def record_path(out, preset: str) -> Path:
    return Path(out) / "tuning" / preset / "tune.json"


def tune_arm(cfg: Config, out, r: dict | None = None, progress: bool = True) -> dict:
    """Tune the shifts of ``cfg``'s preset by the rule ``r`` (default: :func:`rule` of ``cfg.scale``) unless
    done; returns its ``tune.json`` and keeps it as ``out/tuning/<preset>/tune.json``.

    Done means: a record in ``out`` of the same code fingerprint, rule and config (e.g. committed by an
    earlier session), or a finished cache folder.  Otherwise ``tune()`` trains every candidate in the
    cache folder under its lock (two notebooks needing one arm tune it once)."""
    from equss.pipeline import tune as tune_module

    r = r or rule(cfg.scale)
    dest = record_path(out, cfg.name)
    kept = read_json(dest) if dest.is_file() else None
    if matches(kept, cfg, r):
        note(f"tuning {cfg.name}: recorded ({dest.parent.name}/tune.json)")
        return kept
    folder = tune_dir(cfg, r)
    done = folder / "tune.json"
    if not done.is_file():
        with folder_lock(folder, wait=True):
            if not done.is_file():
                note(f"tuning {cfg.name}: {len(r['levels'])} candidates x {r['steps_per_candidate']} steps "
                     f"({folder.name})")
                shutil.rmtree(folder / "work", ignore_errors=True)  # an interrupted attempt: start afresh
                tune_module.tune(tuning_config(cfg, r), folder / "work", levels=r["levels"],
                                 steps=r["steps_per_candidate"], progress=progress)
                shutil.copyfile(folder / "work" / "tune.json", done)  # last: its presence means finished
    else:
        note(f"tuning {cfg.name}: cached ({folder.name})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(done, dest)
    return read_json(dest)


def tune_all(cfg, out, arms, r: dict, progress: bool = True) -> dict[str, dict]:
    """``{preset: tune.json}`` for ``arms`` (proxy presets of :data:`ARMS`), each by :func:`tune_arm`, one
    after the other; ``cfg`` is a notebook's ``cfg(paper_preset, seed)`` from
    :func:`equss.paper.runs.setup`.  :func:`equss.paper.executor.tune_arms` fans the arms still to tune
    out over the local pool first (the notebook calls that)."""
    return {arm: tune_arm(c, out, r, progress) for arm, c in arm_configs(cfg, arms, r).items()}


def arm_configs(cfg, arms, r: dict) -> dict[str, Config]:
    """``{preset: config}`` of ``arms`` at the rule's seed; one line for a preset not in :data:`ARMS`."""
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise EqussError(f"not a tuned arm: {', '.join(unknown)}; valid: {', '.join(ARMS)}")
    return {arm: cfg(ARMS[arm], r["seed"]) for arm in arms}


def done(cfg: Config, out, r: dict) -> bool:
    """Whether the arm of ``cfg`` needs no training: recorded in ``out`` or finished in the cache."""
    dest = record_path(out, cfg.name)
    return matches(read_json(dest) if dest.is_file() else None, cfg, r) or (tune_dir(cfg, r) / "tune.json").is_file()


def tune_job(item) -> dict:
    """One arm's tuning in a pool worker (:func:`equss.paper.executor.tune_arms`)."""
    c, out, r = item
    tune_arm(c, out, r, progress=False)
    return {"name": c.name}


def chosen(record: dict) -> dict:
    """``{"level", "shifts", "val_cluster_mIoU"}`` of one ``tune.json``."""
    best = next(c for c in record["candidates"] if str(c["level"]) == str(record["chosen_level"]))
    return {"level": str(record["chosen_level"]), "shifts": {k: record["chosen"][k] for k in SHIFTS},
            "val_cluster_mIoU": best["val"]["cluster_mIoU"]}


def common_rule(records: dict[str, dict]) -> dict | None:
    """The one rule every record was tuned by (levels, steps, seed); an EqussError when they differ."""
    seen = {}
    for preset, rec in records.items():
        seed = ((rec.get("provenance") or {}).get("config") or {}).get("train", {}).get("seed")
        r = {"levels": [str(x) for x in rec["levels"]], "steps_per_candidate": rec["steps_per_candidate"], "seed": seed}
        seen.setdefault(json.dumps(r, sort_keys=True), []).append(preset)
    if len(seen) > 1:
        raise EqussError("the arms were tuned by different rules: " + "; ".join(
            f"{', '.join(p)}: {k}" for k, p in seen.items()))
    return json.loads(next(iter(seen))) if seen else None


def candidates(records: dict[str, dict]):
    """Validation cluster mIoU of every candidate: a DataFrame, one row per level, one column per arm."""
    import pandas as pd

    table = {preset: {str(c["level"]): c["val"]["cluster_mIoU"] for c in rec["candidates"]}
             for preset, rec in records.items()}
    frame = pd.DataFrame(table)
    frame.index.name = "level"
    return frame


def write(out, records: dict[str, dict], note_text: str | None = None) -> dict:
    """``out/tuning.json`` (the rule, each arm's chosen level, shifts, validation cluster mIoU and record)
    and ``out/tuning.md``; ``records``: ``{preset: tune.json}`` from :func:`tune_arm`."""
    from equss.provenance import provenance

    out = Path(out)
    r = common_rule(records)
    arms = {p: {**chosen(rec), "record": str(record_path(".", p))} for p, rec in records.items()}
    # presets that are a tuned arm under another name (camvid-Q3) are listed with its choice, so that a reader
    # of this file (runs.setup, equss.paper.claims_arms) finds every preset a table runs
    arms |= {alias: {**arms[p], "same_as": p} for alias, p in SAME_AS.items() if p in arms}
    doc = {"rule": ({**r, "hash": rule_hash(r), "procedure": PROCEDURE} if r else None), "arms": arms,
           **({"note": note_text} if note_text else {}),
           "provenance": provenance(arms=list(records))}
    write_json(out / "tuning.json", doc)
    lines = ["# Loss shifts tuned on validation", ""]
    if note_text:
        lines += [note_text, ""]
    if r:
        lines += [f"Rule: {PROCEDURE}. Levels {', '.join(r['levels'])}; {r['steps_per_candidate']} steps per "
                  f"candidate; seed {r['seed']}.", "",
                  "Validation cluster mIoU (%) of every candidate (rows) for every arm (columns); **bold**: chosen.", ""]
        frame = candidates(records)
        lines += ["| level | " + " | ".join(frame.columns) + " |", "|---|" + "---|" * len(frame.columns)]
        for level, row in frame.iterrows():
            cells = [("**{:.2f}**" if doc["arms"][p]["level"] == level else "{:.2f}").format(v) if v == v else ""
                     for p, v in row.items()]
            lines.append(f"| {level} | " + " | ".join(cells) + " |")
        lines += ["", "| arm | chosen level | pos_intra_shift | pos_inter_shift | neg_inter_shift | val cluster mIoU |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {p} | {a['level']} | " + " | ".join(f"{a['shifts'][k]:.3f}" for k in SHIFTS)
                  + f" | {a['val_cluster_mIoU']:.2f} |" for p, a in doc["arms"].items() if p in records]
    (out / "tuning.md").write_text("\n".join(lines) + "\n")
    return doc


def source(out, committed: bool = True) -> Path | None:
    """The ``tuning.json`` a results folder takes its shifts from: its own, else (a user's folder, e.g.
    ``results/local/proxy``) the committed ``results/proxy/tuning.json``; None while neither exists."""
    own = Path(out) / "tuning.json"
    if own.is_file():
        return own
    fallback = COMMITTED / "proxy" / "tuning.json"
    if committed and fallback.is_file() and fallback.resolve() != own.resolve():
        return fallback
    return None


def tuned_overrides(out, preset: str, committed: bool = True) -> list[str]:
    """``["loss.pos_intra_shift=...", "loss.pos_inter_shift=...", "loss.neg_inter_shift=..."]`` for a proxy
    preset from :func:`source` (``[]`` where the preset is not tuned or there is no file yet).

    ``camvid-Q3`` is ``camvid-equss`` (:data:`SAME_AS`).  A config derived from a tuned preset by keyword
    overrides takes that preset's shifts although they were tuned for the preset's own model: Fig. 2's
    head widths and Fig. 6's M x K grid (``camvid-equss`` with another ``head_dim`` / ``num_codebooks`` /
    ``codebook_size``) run on ``camvid-equss``'s shifts, a mismatch their notebooks name."""
    path = source(out, committed)
    doc = read_json(path) if path else None
    arm = ((doc or {}).get("arms") or {}).get(SAME_AS.get(preset, preset))
    if not arm:
        return []
    return [f"loss.{k}={float(arm['shifts'][k])!r}" for k in SHIFTS]


def reference(preset: str) -> str:
    """The EQUSS arm of a preset's dataset (``camvid-M1`` -> ``camvid-equss``): the level the other arms used to
    run on."""
    return preset.split("-", 1)[0] + "-equss"


def chosen_table(records: dict[str, dict]):
    """One row per arm: the chosen level, its shifts and validation cluster mIoU, and the arm's validation
    cluster mIoU at the level its dataset's EQUSS arm chose (what it ran on before this stage; on one dataset a
    level gives every arm the same shifts, the fd calibration does not depend on the model) with the difference."""
    import pandas as pd

    rows = []
    for preset, rec in records.items():
        c = chosen(rec)
        ref = records.get(reference(preset))
        at_ref = None
        if ref is not None:
            level = str(ref["chosen_level"])
            at_ref = next((x["val"]["cluster_mIoU"] for x in rec["candidates"] if str(x["level"]) == level), None)
        rows.append({"arm": preset, "chosen level": c["level"], **c["shifts"], "val cluster mIoU": c["val_cluster_mIoU"],
                     "EQUSS's level": str(ref["chosen_level"]) if ref else None, "val cluster mIoU there": at_ref,
                     "gain of tuning": (c["val_cluster_mIoU"] - at_ref) if at_ref is not None else None})
    return pd.DataFrame(rows)


def plot(records: dict[str, dict], title: str = ""):
    """Validation cluster mIoU against the candidate level, one line per arm, one panel per dataset; a star on
    each arm's chosen level."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from equss.paper.plots import THEME

    sns.set_theme(**THEME)
    frame = candidates(records)
    levels = list(frame.index)
    long = frame.reset_index().melt(id_vars="level", var_name="arm", value_name="val cluster mIoU")
    long["dataset"] = long["arm"].str.split("-").str[0]
    datasets = list(dict.fromkeys(long["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.6 * len(datasets) + 2.4, 4.2), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        d = long[long["dataset"] == ds]
        arms = list(dict.fromkeys(d["arm"]))
        palette = dict(zip(arms, sns.color_palette(n_colors=len(arms))))
        sns.pointplot(data=d, x="level", y="val cluster mIoU", hue="arm", order=levels, palette=palette, ax=ax,
                      markers="o", linestyles="-")
        for arm in arms:
            c = chosen(records[arm])
            ax.plot(levels.index(c["level"]), c["val_cluster_mIoU"], marker="*", markersize=17, linestyle="",
                    color=palette[arm], markeredgecolor="black", zorder=5)
        ax.set(xlabel="per-term fd quantile level q (intra,inter,negative)", ylabel="validation cluster mIoU (%)",
               title=ds)
        ax.ticklabel_format(axis="y", useOffset=False)
        if ax.get_legend():
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False,
                      title="arm (star: chosen)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
