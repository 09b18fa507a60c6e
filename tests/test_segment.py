"""``equss segment`` on real CamVid images of many modes and sizes (through the CLI).

The model is a freshly initialised smoke-config EQUSS (random head, PQ and probes) on the
offline DINOv2 backbone: the tests check the plumbing (sizes, modes, label ids, files,
summary, errors) and the prediction path against ``EQUSS.predict``, not accuracy.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import error_line
from equss import cli
from equss.config import load_config
from equss.model import EQUSS
from equss.pipeline.checkpoint import save_checkpoint

N_CLASSES = 11
CAMVID_TEST = ("0001TP_008550.jpg", "0001TP_008580.jpg")


def _state(model, cfg, **extra):
    state = {"version": 1, "model": model.state_dict(), "config": cfg.to_dict(), "config_key": cfg.key(),
             "in_dim": 384, "n_classes": N_CLASSES, "class_names": [f"class{i}" for i in range(N_CLASSES)],
             "step": 0}
    state.update(extra)
    return state


@pytest.fixture(scope="module")
def setup(tmp_path_factory, data_root):
    tmp = tmp_path_factory.mktemp("segment")
    cfg = load_config("camvid-equss", "smoke")
    torch.manual_seed(0)
    model = EQUSS(cfg, in_dim=384, n_classes=N_CLASSES).eval()
    ckpt = save_checkpoint(tmp / "plain.pt", _state(model, cfg))
    # cluster -> class: a permutation with cluster 3 unmatched (-1 -> 255 in the label PNG)
    assignment = [(7 * i + 2) % N_CLASSES for i in range(N_CLASSES)]
    assignment[3] = -1
    ckpt_assign = save_checkpoint(tmp / "assign.pt", _state(model, cfg, assignment=assignment))

    imgs = tmp / "images"
    (imgs / "sub").mkdir(parents=True)
    src = [data_root / "CamVid" / "test" / n for n in CAMVID_TEST]
    for p in src:
        if not p.is_file():
            pytest.skip(f"CamVid test image {p} missing")
        shutil.copy(p, imgs / p.name)
    base = Image.open(src[0]).convert("RGB")
    expected = {p.stem: Image.open(p).size for p in src}
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(imgs / "rgba.png")
    base.convert("L").save(imgs / "sub" / "gray.png")
    base.convert("P", palette=Image.Palette.ADAPTIVE).save(imgs / "palette.png")
    g16 = (np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(g16).save(imgs / "gray16.png")
    assert Image.open(imgs / "gray16.png").mode.startswith("I")
    base.resize((517, 301)).save(imgs / "odd.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    base.save(imgs / "exif.jpg", exif=exif, quality=92)
    (imgs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    (imgs / "notes.txt").write_text("not an image")
    w, h = base.size
    expected.update({"rgba": (w, h), "sub/gray": (w, h), "palette": (w, h), "gray16": (w, h),
                     "odd": (517, 301), "exif": (h, w)})
    return {"tmp": tmp, "cfg": cfg, "model": model, "ckpt": ckpt, "ckpt_assign": ckpt_assign,
            "assignment": assignment, "images": imgs, "expected": expected, "base": base}


def _read(path):
    with Image.open(path) as im:
        im.load()
        return im


def test_folder_all_modes(setup, capsys):
    out = setup["tmp"] / "out_folder"
    code = cli.main(["segment", str(setup["images"]), "--checkpoint", str(setup["ckpt"]), "--out", str(out),
                     "--resolution", "224", "--no-flip"])  # flip averaging: tile and API tests
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "broken.png" in captured.err and "skipping" in captured.err
    summary = json.loads((out / "segment.json").read_text())
    assert summary["probe"] == "cluster" and summary["mode"] == "resize" and summary["resolution"] == 224
    assert summary["labels"] == "clusters" and "raw cluster ids" in summary["label_meaning"]
    assert summary["class_names"] == [f"class{i}" for i in range(N_CLASSES)]
    assert summary["provenance"]["git_commit"]
    assert [s["input"].endswith("broken.png") for s in summary["skipped"]] == [True]
    names = {r["name"]: r for r in summary["images"]}
    assert set(names) == set(setup["expected"])
    for name, (w, h) in setup["expected"].items():
        rec = names[name]
        assert (rec["width"], rec["height"]) == (w, h), name
        labels = _read(out / f"{name}_labels.png")
        assert labels.mode == "L" and labels.size == (w, h), name
        ids = np.asarray(labels)
        assert ids.max() < N_CLASSES, name
        assert sorted(np.unique(ids).tolist()) == rec["labels_present"]
        color = _read(out / f"{name}_color.png")
        assert color.mode == "RGB" and color.size == (w, h)
        overlay = _read(out / f"{name}_overlay.jpg")
        assert overlay.mode == "RGB" and overlay.size == (w, h)
    # colour map = palette[label] for every pixel
    pal = np.asarray(summary["palette"], dtype=np.uint8)
    ids = np.asarray(_read(out / "odd_labels.png"))
    np.testing.assert_array_equal(np.asarray(_read(out / "odd_color.png")), pal[ids])


def test_tile_mode_with_stored_assignment(setup, capsys):
    out = setup["tmp"] / "out_tile"
    odd = setup["images"] / "odd.png"
    code = cli.main(["segment", str(odd), "--checkpoint", str(setup["ckpt_assign"]), "--out", str(out),
                     "--mode", "tile", "--resolution", "224", "--tile-size", "256", "--overlap", "0.25", "--crf"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads((out / "segment.json").read_text())
    assert summary["mode"] == "tile" and summary["tile_size"] == 256 and summary["crf"] is True
    assert summary["labels"] == "classes" and summary["assignment"] == setup["assignment"]
    ids = np.asarray(_read(out / "odd_labels.png"))
    assert ids.shape == (301, 517)
    allowed = {v for v in setup["assignment"] if v >= 0} | {255}
    assert set(np.unique(ids).tolist()) <= allowed
    assert _read(out / "odd_overlay.jpg").size == (517, 301)


def test_api_matches_predict_and_assignment(setup):
    from equss.pipeline.inputs import make_backbone
    from equss.pipeline.segment import segment_image
    from equss.data.base import preprocess_image

    model, cfg = setup["model"], setup["cfg"]
    # EQUSS.predict's fast probe path (no upsampled d_E channels) against the literal
    # official computation written out here: flip-average the quantised probe input,
    # upsample it bilinearly to the label size, then a cosine cluster probe (alpha 2) and a
    # 1x1 linear probe, each followed by log-softmax
    g = torch.Generator().manual_seed(1)
    feats, flipped = torch.randn(2, 384, 9, 13, generator=g), torch.randn(2, 384, 9, 13, generator=g)
    with torch.no_grad():
        x = (model(feats).probe_input + model(flipped).probe_input.flip(-1)) / 2
        for size in [(126, 182), (131, 200), (9, 13)]:
            got = model.predict(feats, size, feats_flipped=flipped)
            up = F.interpolate(x, size, mode="bilinear", align_corners=False)
            centroids = F.normalize(model.cluster_probe.clusters, dim=1)
            inner = torch.einsum("bchw,kc->bkhw", F.normalize(up, dim=1), centroids)
            torch.testing.assert_close(got["cluster"], F.log_softmax(2.0 * inner, dim=1), atol=1e-4, rtol=1e-4)
            lin = F.conv2d(up, model.linear_probe.conv.weight, model.linear_probe.conv.bias)
            torch.testing.assert_close(got["linear"], F.log_softmax(lin, dim=1), atol=1e-4, rtol=1e-4)

    # whole resize path on a real odd-size image against a direct computation with predict
    backbone = make_backbone(cfg)
    img = setup["base"].resize((517, 301))
    labels = segment_image(model, backbone, img, cfg, probe="linear", resolution=224)
    x = preprocess_image(img, 224, crop="none")[None]
    h, w = x.shape[-2:]
    hp, wp = -(-h // 14) * 14, -(-w // 14) * 14
    xp = F.pad(x, (0, wp - w, 0, hp - h), mode="reflect")
    ref = model.predict(backbone(xp), (hp, wp), feats_flipped=backbone(xp.flip(-1)))["linear"][..., :h, :w]
    ref = F.interpolate(ref, (301, 517), mode="bilinear", align_corners=False)[0].argmax(0).numpy()
    assert labels.shape == (301, 517)
    assert (labels == ref).mean() > 0.999

    # cluster ids through an assignment: a lookup of the raw clusters
    raw = segment_image(model, backbone, img, cfg, probe="cluster", resolution=112, flip=False)
    mapped = segment_image(model, backbone, img, cfg, probe="cluster", resolution=112, flip=False,
                           assignment=setup["assignment"])
    np.testing.assert_array_equal(mapped, np.asarray(setup["assignment"])[raw])

    # an EXIF-rotated JPEG is segmented as displayed: same as its pixels rotated by hand
    with Image.open(setup["images"] / "exif.jpg") as im:
        im.load()
        by_hand = Image.fromarray(np.asarray(im.convert("RGB")).copy()).transpose(Image.Transpose.ROTATE_270)
        assert by_hand.size == (360, 480)
        kw = dict(probe="linear", resolution=112, flip=False)
        np.testing.assert_array_equal(segment_image(model, backbone, im, cfg, **kw),
                                      segment_image(model, backbone, by_hand, cfg, **kw))


def test_bad_inputs(setup, capsys):
    tmp, ckpt = setup["tmp"], str(setup["ckpt"])
    out = str(tmp / "out_err")
    img = str(setup["images"] / "odd.png")
    assert "does not exist" in error_line(capsys, ["segment", str(tmp / "nope.png"), "--checkpoint", ckpt, "--out", out])
    empty = tmp / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    assert "no image files" in error_line(capsys, ["segment", str(empty), "--checkpoint", ckpt, "--out", out])
    broken = setup["images"] / "broken.png"
    assert "broken.png" in error_line(capsys, ["segment", str(broken), "--checkpoint", ckpt, "--out", out])
    for bad in ("abc", "0", "-3", "22.5"):
        assert "--resolution" in error_line(capsys, ["segment", img, "--checkpoint", ckpt, "--out", out,
                                                 "--resolution", bad])
    assert "not found" in error_line(capsys, ["segment", img, "--checkpoint", str(tmp / "missing.pt"), "--out", out])
    bad_ckpt = tmp / "corrupt.pt"
    bad_ckpt.write_bytes(b"garbage")
    assert "corrupt" in error_line(capsys, ["segment", img, "--checkpoint", str(bad_ckpt), "--out", out])
    only_broken = tmp / "only_broken"
    only_broken.mkdir()
    shutil.copy(broken, only_broken / "a.png")
    err = error_line(capsys, ["segment", str(only_broken), "--checkpoint", ckpt, "--out", out, "--resolution", "224"])
    assert "no image" in err and "a.png" in err
