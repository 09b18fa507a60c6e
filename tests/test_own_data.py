"""Your own data, the README's path: a folder of images -> `equss prepare folder` -> `equss train
--preset folder-equss` -> `equss segment`; with labels (labels/*.png + classes.txt) also `equss eval`.
The folder is made here from a few real CamVid images (sub-folders, one RGBA PNG), through the CLI."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from scipy.optimize import linear_sum_assignment

from equss import cli
from equss.data import get_dataset
from equss.data.camvid import CAMVID_CLASSES
from equss.data.folder import split_of
from equss.pipeline.checkpoint import load_checkpoint

N_IMAGES = 10


def _run(capsys, argv):
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    return captured.out


def _error(capsys, argv):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("equss: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def camvid_files(data_root):
    names = sorted(p.name for p in (data_root / "CamVid" / "train").iterdir())[:N_IMAGES]
    if len(names) < N_IMAGES:
        pytest.skip("CamVid train images missing")
    return [(data_root / "CamVid" / "train" / n, data_root / "CamVid" / "trainannot" / (n.rsplit(".", 1)[0] + ".png"))
            for n in names]


def _make_folder(root, camvid_files, labels: bool):
    """Images in two sub-folders (one saved as RGBA); with labels: CamVid's ids, void 11 -> 255."""
    rels = []
    for i, (img, annot) in enumerate(camvid_files):
        rel = f"{'street' if i % 2 else 'park/day'}/img{i:02d}"
        dst = root / (rel + (".png" if i == 3 else img.suffix))
        dst.parent.mkdir(parents=True, exist_ok=True)
        if i == 3:
            Image.open(img).convert("RGBA").save(dst)
        else:
            shutil.copy(img, dst)
        rels.append(rel)
        if labels:
            lab = np.asarray(Image.open(annot)).astype(np.uint8)
            lab = np.where(lab < len(CAMVID_CLASSES), lab, 255).astype(np.uint8)
            out = root / "labels" / (rel + ".png")
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(lab, mode="L").save(out)
    if labels:
        (root / "classes.txt").write_text("\n".join(CAMVID_CLASSES) + "\n")
    return sorted(rels)


def test_unlabelled_folder_to_segmentations(camvid_files, tmp_path, capsys):
    root = tmp_path / "my photos"
    rels = _make_folder(root, camvid_files, labels=False)
    out = _run(capsys, ["prepare", "folder", "--data-root", str(root)])
    n_val = sum(split_of(i) == "val" for i in range(N_IMAGES))
    assert n_val == N_IMAGES // 5
    assert f"{N_IMAGES} images (splits: all {N_IMAGES}, train {N_IMAGES - n_val}, val {n_val})" in out
    assert "unlabelled" in out and "equss train --preset folder-equss" in out
    # the splits: every fifth image of the sorted relative paths is 'val'
    assert [get_dataset("folder", "all", data_root=root).sample_id(i) for i in range(N_IMAGES)] == rels
    val = get_dataset("folder", "val", data_root=root)
    assert [val.sample_id(i) for i in range(len(val))] == [r for i, r in enumerate(rels) if i % 5 == 4]

    run = tmp_path / "run"
    _run(capsys, ["train", "--preset", "folder-equss", "--scale", "smoke", "--data-root", str(root), "--out", str(run)])
    state = load_checkpoint(run / "best.pt")
    assert state["n_classes"] == 0 and state["class_names"] == [] and state["assignment"] is None
    clusters = state["config"]["model"]["extra_clusters"]
    assert clusters == 8

    seg = tmp_path / "seg"
    _run(capsys, ["segment", str(root), "--checkpoint", str(run / "best.pt"), "--out", str(seg), "--resolution", "112"])
    summary = json.loads((seg / "segment.json").read_text())
    assert summary["labels"] == "clusters" and summary["n_clusters"] == clusters
    assert sorted(r["name"] for r in summary["images"]) == rels
    for rel in rels:
        lab = np.asarray(Image.open(seg / f"{rel}_labels.png"))
        src = next(root.glob(rel + ".*"))
        assert lab.shape == np.asarray(Image.open(src)).shape[:2]
        assert lab.max() < clusters
    # no classes, no linear probe: one line, not a crash
    assert "no classes" in _error(capsys, ["segment", str(root), "--checkpoint", str(run / "best.pt"), "--out",
                                           str(tmp_path / "lin"), "--probe", "linear"])
    # no classes and no clusters asked for: one line before anything is trained
    line = _error(capsys, ["train", "--preset", "folder-equss", "--scale", "smoke", "--data-root", str(root),
                           "--out", str(tmp_path / "none"), "--set", "model.extra_clusters=0"])
    assert "model.extra_clusters" in line


def test_labelled_folder_train_eval_segment(camvid_files, tmp_path, capsys):
    root = tmp_path / "labelled"
    rels = _make_folder(root, camvid_files, labels=True)
    out = _run(capsys, ["prepare", "folder", "--data-root", str(root)])
    assert f"labels: {N_IMAGES} of {N_IMAGES} images" in out and f"{len(CAMVID_CLASSES)} classes" in out
    assert "equss eval" in out
    ds = get_dataset("folder", "all", data_root=root)
    assert ds.n_classes == len(CAMVID_CLASSES) and ds.class_names == list(CAMVID_CLASSES)
    assert len(ds) == N_IMAGES  # the label PNGs are no images

    run = tmp_path / "run"
    _run(capsys, ["train", "--preset", "folder-equss", "--scale", "smoke", "--data-root", str(root), "--out", str(run),
                  "--set", "model.extra_clusters=0"])
    ev = tmp_path / "ev"
    _run(capsys, ["eval", "--checkpoint", str(run / "best.pt"), "--data-root", str(root), "--out", str(ev)])
    result = json.loads((ev / "eval.json").read_text())
    cluster = result["cluster"]
    confusion = np.asarray(cluster["confusion"], dtype=np.int64)
    # independent count of the labelled pixels the evaluation saw: the first max_images label files,
    # resized (nearest, shorter side R) and centre-cropped as the dataset does
    from equss.config import load_config
    from equss.data.base import preprocess_label

    cfg = load_config("folder-equss", "smoke")
    R, n_eval = cfg.data.eval_resolution, min(cfg.data.max_images, N_IMAGES)
    labelled = 0
    for rel in rels[:n_eval]:
        lab = np.asarray(Image.open(root / "labels" / (rel + ".png"))).astype(np.int64)
        lab = np.where(lab < len(CAMVID_CLASSES), lab, -1)
        labelled += int((preprocess_label(lab, R).numpy() >= 0).sum())
    assert confusion.sum() == labelled
    # the Hungarian accuracy, recomputed from the confusion with scipy
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    assert cluster["Accuracy"] == pytest.approx(100.0 * confusion[rows, cols].sum() / labelled)

    seg = tmp_path / "seg"
    _run(capsys, ["segment", str(root), "--checkpoint", str(run / "best.pt"), "--out", str(seg), "--resolution", "112",
                  "--assignment", str(ev / "eval.json")])
    summary = json.loads((seg / "segment.json").read_text())
    assert summary["labels"] == "classes" and summary["class_names"] == list(CAMVID_CLASSES)
    assert sorted(r["name"] for r in summary["images"]) == rels  # labels/ was not segmented
    for rel in rels:
        lab = np.asarray(Image.open(seg / f"{rel}_labels.png"))
        assert set(np.unique(lab).tolist()) <= set(range(len(CAMVID_CLASSES))) | {255}


def test_folder_layout_errors(tmp_path, capsys):
    root = tmp_path / "f"
    (root / "labels").mkdir(parents=True)
    Image.new("RGB", (16, 12)).save(root / "a.png")
    Image.new("L", (16, 12)).save(root / "labels" / "a.png")
    assert "classes.txt is missing" in _error(capsys, ["prepare", "folder", "--data-root", str(root)])
    (root / "classes.txt").write_text("road\n\nsky\n")
    assert "without empty lines" in _error(capsys, ["prepare", "folder", "--data-root", str(root)])
    (root / "classes.txt").write_text("road\nroad\n")
    assert "twice" in _error(capsys, ["prepare", "folder", "--data-root", str(root)])
    (root / "classes.txt").write_text("road\nsky\n")
    with pytest.raises(Exception, match="too few for a 'val' split"):
        get_dataset("folder", "val", data_root=root)
    # a colour label is refused, an id beyond the classes is ignore (with a warning)
    Image.new("RGB", (16, 12), (1, 2, 3)).save(root / "labels" / "a.png")
    with pytest.raises(Exception, match="colour image"):
        get_dataset("folder", "all", data_root=root, resolution=8)[0]
    arr = np.zeros((12, 16), np.uint8)
    arr[:, 8:] = 7
    arr[0, 0] = 255
    Image.fromarray(arr, mode="L").save(root / "labels" / "a.png")
    lab = get_dataset("folder", "all", data_root=root, resolution=12, crop="none")[0][1].numpy()
    expected = np.where(arr == 0, 0, -1)
    np.testing.assert_array_equal(lab, expected)
