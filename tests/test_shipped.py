"""Shipped models (``models/<name>/``): export -> load round trip, the checks that refuse a model
whose card or hash does not match (one error line each), ``equss segment --model`` and
``torch.hub.load`` on real CamVid test images without network access, and the median-seed choice
against an independent median of Table 1."""
from __future__ import annotations

import hashlib
import json
import shutil
import socket
import statistics
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import error_line
from equss import cli
from equss.config import load_config
from equss.data.camvid import CamVid
from equss.model import EQUSS
from equss.paper import ship
from equss.pipeline import shipped
from equss.pipeline.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parent.parent
N_CLASSES = 11
CAMVID_TEST = ("0001TP_008550", "0001TP_008580")


def _safetensors_header(path: Path) -> dict:
    """The format read by hand: 8-byte little-endian header length, then a JSON header; no pickle."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A randomly initialised smoke EQUSS exported as a model folder (the checks, not accuracy)."""
    tmp = tmp_path_factory.mktemp("shipped")
    cfg = load_config("camvid-equss", "smoke")
    torch.manual_seed(0)
    model = EQUSS(cfg, in_dim=384, n_classes=N_CLASSES).eval()
    assignment = [(3 * i + 1) % N_CLASSES for i in range(N_CLASSES)]
    from equss.backbones.vit import load_backbone

    weights_id = load_backbone(cfg.train.backbone).weights_id
    state = {"version": 1, "model": model.state_dict(), "config": cfg.to_dict(), "config_key": cfg.key(),
             "in_dim": 384, "n_classes": N_CLASSES, "class_names": [f"c{i}" for i in range(N_CLASSES)],
             "step": 4, "best": {"cluster_mIoU": 1.5, "step": 4}, "assignment": assignment,
             "provenance": {"backbone_weights": weights_id, "git_commit": "abc", "code_fingerprint": "def"}}
    ckpt = save_checkpoint(tmp / "best.pt", state)
    evaluation = {k: {"Accuracy": 50.0 + i, "mIoU": 20.0 + i, "per_class_iou": [float(j) for j in range(N_CLASSES)]}
                  for i, k in enumerate(("cluster", "linear", "cluster_crf", "linear_crf"))}
    card = shipped.export_model(ckpt, tmp / "models" / "tiny", "tiny", evaluation=evaluation,
                                limitations=["a test model"], intended_use="tests")
    return {"tmp": tmp, "cfg": cfg, "model": model, "ckpt": ckpt, "card": card, "dir": tmp / "models" / "tiny",
            "assignment": assignment}


def test_export_load_round_trip(tiny):
    folder = tiny["dir"]
    weights = folder / shipped.WEIGHTS
    card = json.loads((folder / shipped.CARD).read_text())
    assert card["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert card["weights"]["bytes"] == weights.stat().st_size
    header = _safetensors_header(weights)
    assert header["__metadata__"] == {"format": shipped.FORMAT, "name": "tiny", "config_key": tiny["cfg"].key()}
    own = tiny["model"].state_dict()
    assert set(header) - {"__metadata__"} == set(own)
    net, cfg, info = shipped.load_model(folder)
    assert cfg.key() == tiny["cfg"].key() == card["config_key"]
    for k, v in net.state_dict().items():
        assert torch.equal(v, own[k]), k
    assert info["assignment"] == tiny["assignment"] and info["class_names"] == [f"c{i}" for i in range(N_CLASSES)]
    assert card["metrics"]["cluster_crf"]["mIoU"] == 22.0 and card["metrics"]["cluster"]["per_class_iou"]["c3"] == 3.0
    md = (folder / shipped.CARD_MD).read_text()
    assert card["weights"]["sha256"] in md and "a test model" in md and card["config_key"] in md


def _copy(tiny, name):
    dst = tiny["tmp"] / "bad" / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(tiny["dir"], dst)
    return dst


def _edit_card(folder, fn):
    card = json.loads((folder / shipped.CARD).read_text())
    fn(card)
    (folder / shipped.CARD).write_text(json.dumps(card))


@pytest.mark.parametrize("case, message", [
    ("flipped byte", "does not match its card"),
    ("card sha256", "does not match its card"),
    ("config edited", "the card's config has key"),
    ("config key edited", "belongs to another card"),
    ("other model's weights", "does not fit the card's model"),
    ("not json", "not valid JSON"),
    ("no weights", "is missing"),
    ("other format", "not an equss model card"),
    ("lacks keys", "lacks"),
])
def test_mismatched_model_is_one_error_line(tiny, capsys, tmp_path, case, message):
    folder = _copy(tiny, case.replace(" ", "_").replace("'", ""))
    weights = folder / shipped.WEIGHTS
    if case == "flipped byte":
        raw = bytearray(weights.read_bytes())
        raw[-5] ^= 0x01  # one bit of one weight
        weights.write_bytes(bytes(raw))
    elif case == "card sha256":
        _edit_card(folder, lambda c: c["weights"].update(sha256="0" * 64))
    elif case == "config edited":
        _edit_card(folder, lambda c: c["config"]["model"].update(codebook_size=128))
    elif case == "config key edited":
        def rekey(c):  # a consistent card for another config, beside these weights
            c["config"]["model"]["codebook_size"] = 128
            from equss.config import config_from_dict
            c["config_key"] = config_from_dict(c["config"]).key()
        _edit_card(folder, rekey)
    elif case == "other model's weights":
        from safetensors.torch import save_file

        cfg = tiny["cfg"]
        other = EQUSS(load_config("camvid-equss", "smoke", overrides=["model.codebook_size=128"]), 384, N_CLASSES)
        save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(weights),
                  metadata={"format": shipped.FORMAT, "name": "tiny", "config_key": cfg.key()})
        _edit_card(folder, lambda c: c["weights"].update(sha256=hashlib.sha256(weights.read_bytes()).hexdigest()))
    elif case == "not json":
        (folder / shipped.CARD).write_text("{not json")
    elif case == "no weights":
        weights.unlink()
    elif case == "other format":
        _edit_card(folder, lambda c: c.update(format="something/2"))
    elif case == "lacks keys":
        _edit_card(folder, lambda c: c.pop("class_names"))
    img = tmp_path / "x.png"
    Image.new("RGB", (64, 48), (120, 130, 140)).save(img)
    line = error_line(capsys, ["segment", str(img), "--model", str(folder), "--out", str(tmp_path / "o")])
    assert message in line, line
    with pytest.raises(Exception) as exc:
        shipped.load_model(folder)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_unknown_name_and_other_backbone_weights(tiny, capsys, tmp_path):
    img = tmp_path / "x.png"
    Image.new("RGB", (64, 48), (120, 130, 140)).save(img)
    line = error_line(capsys, ["segment", str(img), "--model", "no-such-model", "--out", str(tmp_path / "o")])
    assert "unknown model 'no-such-model'" in line
    for name in shipped.list_models():
        assert name in line
    folder = _copy(tiny, "other_backbone")
    _edit_card(folder, lambda c: c["backbone"].update(weights_id="imgfocus-0.1.1:000000000000"))
    line = error_line(capsys, ["segment", str(img), "--model", str(folder), "--out", str(tmp_path / "o")])
    assert "was trained on" in line and "000000000000" in line


def test_model_folder_segments_like_its_checkpoint(tiny, data_root, tmp_path, capsys):
    imgs = [data_root / "CamVid" / "test" / f"{n}.png" for n in CAMVID_TEST]
    imgs = [p if p.is_file() else p.with_suffix(".jpg") for p in imgs]
    a, b = tmp_path / "by_model", tmp_path / "by_ckpt"
    assert cli.main(["segment", *map(str, imgs), "--model", str(tiny["dir"]), "--out", str(a), "--resolution", "112"]) == 0
    assert cli.main(["segment", *map(str, imgs), "--checkpoint", str(tiny["ckpt"]), "--out", str(b),
                     "--resolution", "112"]) == 0
    capsys.readouterr()
    for p in imgs:
        la, lb = (np.asarray(Image.open(d / f"{p.stem}_labels.png")) for d in (a, b))
        np.testing.assert_array_equal(la, lb)
    summary = json.loads((a / "segment.json").read_text())
    assert summary["model"]["sha256"] == tiny["card"]["weights"]["sha256"] and summary["labels"] == "classes"


# ------------------------------------------------------------------------------ the committed models
def _shipped_or_skip(name):
    folder = ROOT / "models" / name
    if not (folder / shipped.CARD).is_file():
        pytest.skip(f"models/{name} is not committed yet (python -m equss.paper.ship)")
    return folder


def _camvid_test(data_root, stem):
    for ext in (".png", ".jpg"):
        p = data_root / "CamVid" / "test" / f"{stem}{ext}"
        if p.is_file():
            return p, data_root / "CamVid" / "testannot" / f"{stem}.png"
    pytest.skip(f"CamVid test image {stem} missing")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*a, **k):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("name", ["camvid-equss", "camvid-stego"])
def test_committed_model_card(name):
    folder = _shipped_or_skip(name)
    card = json.loads((folder / shipped.CARD).read_text())
    weights = folder / shipped.WEIGHTS
    assert weights.stat().st_size < 8_000_000  # small enough for the repository
    assert card["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    # the safetensors header holds tensors and the metadata only
    assert all(v.get("dtype") == "F32" or k == "__metadata__" or v.get("dtype") in ("BOOL", "I64")
               for k, v in _safetensors_header(weights).items())
    for key in ("cluster", "cluster_crf", "linear", "linear_crf"):
        assert 0 < card["metrics"][key]["mIoU"] < 100
    assert card["provenance"]["git_commit"] and card["provenance"]["code_fingerprint"]
    assert card["backbone"]["weights_id"].startswith("imgfocus-")
    assert card["intended_use"] and card["limitations"]
    # the seed is the median of Table 1's rows for this method (unsupervised mIoU, no CRF), counted here
    sel = card["selection"]
    rows = ship.table_rows(ROOT / "results" / "proxy" / "table1.csv")
    values = {int(r["seed"]): float(r["unsup_miou"]) for r in rows
              if r["method"] == ship.MODELS[name] and r["dataset"] == "camvid" and r["crf"] == "False"}
    median = statistics.median_low(values.values())
    if sel["table"].endswith("table1.csv") and {int(k): v for k, v in sel["values"].items()} == values:
        assert values[sel["seed"]] == median
        assert card["config"]["train"]["seed"] == sel["seed"]


def test_segment_two_camvid_images_offline(data_root, tmp_path, capsys, no_network):
    """The done-when: `equss segment --model camvid-equss` on two CamVid test images writes label maps,
    offline, without training; they agree with the ground truth far above chance."""
    folder = _shipped_or_skip("camvid-equss")
    card = json.loads((folder / shipped.CARD).read_text())
    pairs = [_camvid_test(data_root, s) for s in CAMVID_TEST]
    out = tmp_path / "seg"
    assert cli.main(["segment", "--model", "camvid-equss", *(str(p) for p, _ in pairs), "--out", str(out)]) == 0
    capsys.readouterr()
    summary = json.loads((out / "segment.json").read_text())
    assert summary["labels"] == "classes" and summary["class_names"] == card["class_names"]
    for img, annot in pairs:
        labels = np.asarray(Image.open(out / f"{img.stem}_labels.png"))
        assert labels.shape == np.asarray(Image.open(img)).shape[:2]
        gt = np.asarray(Image.open(annot)).astype(np.int64)
        gt = np.where(gt < N_CLASSES, gt, -1)  # CamVid: 11 = void
        valid = gt >= 0
        acc = float((labels[valid] == gt[valid]).mean())
        # chance: the best constant prediction (the most frequent true class), computed on this image
        chance = np.bincount(gt[valid], minlength=N_CLASSES).max() / valid.sum()
        assert acc > chance, (img.name, acc, chance)
        assert len(set(np.unique(labels).tolist()) - {255}) >= 3
    assert CamVid.info.n_classes == N_CLASSES


def test_torch_hub_local(data_root, tmp_path, capsys, no_network):
    _shipped_or_skip("camvid-equss")
    img, _ = _camvid_test(data_root, CAMVID_TEST[0])
    seg = torch.hub.load(str(ROOT), "equss_camvid", source="local")
    assert isinstance(seg, torch.nn.Module) and seg.class_names == list(CamVid.info.class_names)
    labels = seg.segment(str(img))
    out = tmp_path / "cli"
    assert cli.main(["segment", "--model", "camvid-equss", str(img), "--out", str(out)]) == 0
    capsys.readouterr()
    png = np.asarray(Image.open(out / f"{img.stem}_labels.png")).astype(np.int64)
    np.testing.assert_array_equal(np.where(labels < 0, 255, labels), png)
    codes, resized = seg.codes(str(img))
    m = seg.cfg.model.num_codebooks
    assert codes.shape == (m, -(-resized.size[1] // 14), -(-resized.size[0] // 14))
    assert codes.min() >= 0 and codes.max() < seg.cfg.model.codebook_size


def test_median_seed_against_statistics():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 5):
        values = rng.normal(20, 2, size=n)
        rows = [{"method": "EQUSS", "dataset": "camvid", "crf": "False", "seed": str(s), "run": f"r{s}",
                 "unsup_miou": repr(float(v)), "source": "measured"} for s, v in enumerate(values)]
        rows += [{"method": "EQUSS", "dataset": "camvid", "crf": "True", "seed": "9", "run": "crf",
                  "unsup_miou": "99", "source": "measured"},
                 {"method": "STEGO", "dataset": "camvid", "crf": "False", "seed": "8", "run": "s",
                  "unsup_miou": "1", "source": "measured"}]
        got = ship.median_seed(rows, "EQUSS")
        median = statistics.median_low(values.tolist())
        assert got["value"] == median and values[got["seed"]] == median and got["run"] == f"r{got['seed']}"
