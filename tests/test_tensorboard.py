"""TensorBoard event files written by `equss train` beside log.jsonl, read back with TensorBoard's
own reader (``EventAccumulator``) and held to the log's numbers; without the package (or with
``EQUSS_TENSORBOARD=0``) training writes none and is unchanged."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from equss.config import load_config
from equss.data import dataset_info
from equss.pipeline import tensorboard as tbmod
from equss.pipeline.checkpoint import load_checkpoint
from equss.pipeline.train import train

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _cfg(data_root, **ov):
    items = [f"data.data_root={data_root}", "train.device=cpu"] + [f"{k}={v}" for k, v in ov.items()]
    return load_config("camvid-equss", "smoke", overrides=items)


def _events(folder):
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def _log(folder):
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


def test_training_writes_events_that_match_the_log(data_root, tmp_path, monkeypatch):
    monkeypatch.delenv(tbmod.ENV, raising=False)
    out = tmp_path / "run"
    train(_cfg(data_root), out, progress=False)
    assert list(out.glob("events.out.tfevents.*")), "no event file beside log.jsonl"
    acc = _events(out)
    tags = acc.Tags()
    rows = _log(out)
    train_rows = [r for r in rows if "val" not in r]
    val_rows = [r for r in rows if "val" in r]
    assert train_rows and val_rows
    for key in ("total", "corr", "codebook", "commitment", "cluster", "linear", "grad_norm"):
        events = acc.Scalars(f"train/{key}")
        assert [e.step for e in events] == [r["step"] for r in train_rows]
        # TensorBoard stores float32: the log's float64 values rounded once
        np.testing.assert_array_equal(np.float32([e.value for e in events]), np.float32([r[key] for r in train_rows]))
    for key in ("cluster_mIoU", "cluster_Accuracy", "linear_mIoU", "linear_Accuracy"):
        events = acc.Scalars(f"val/{key}")
        assert [e.step for e in events] == [r["step"] for r in val_rows]
        np.testing.assert_array_equal(np.float32([e.value for e in events]), np.float32([r["val"][key] for r in val_rows]))
    # the segmentation images: image | prediction | ground truth, one per validation
    images = sorted(t for t in tags["images"] if t.startswith("val/segmentation/"))
    assert images == [f"val/segmentation/{i}" for i in range(tbmod.N_IMAGES)]
    R = _cfg(data_root).data.eval_resolution
    palette = np.asarray(dataset_info("camvid").palette, dtype=np.uint8)
    for tag in images:
        events = acc.Images(tag)
        assert [e.step for e in events] == [r["step"] for r in val_rows]
        png = np.asarray(Image.open(io.BytesIO(events[-1].encoded_image_string)).convert("RGB"))
        assert png.shape == (R, 3 * R + 8, 3)
        # the ground-truth panel is the label of that validation image, coloured with the dataset palette
        from equss.pipeline.inputs import make_dataset

        ds = make_dataset(_cfg(data_root), "val")
        label = np.asarray(ds[int(tag.rsplit("/", 1)[1])][1])
        expected = np.zeros((R, R, 3), np.uint8)
        ok = label >= 0
        expected[ok] = palette[label[ok]]
        np.testing.assert_array_equal(png[:, 2 * R + 8:], expected)
        # the prediction panel only uses palette colours (classes) or black (no class)
        colours = {tuple(c) for c in png[:, R + 4:2 * R + 4].reshape(-1, 3)}
        assert colours <= {tuple(c) for c in palette} | {(0, 0, 0)}


def test_no_tensorboard_no_events_same_weights(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv(tbmod.ENV, "1")
    train(_cfg(data_root), tmp_path / "with", progress=False)
    monkeypatch.setattr(tbmod.importlib.util, "find_spec", lambda name, *a: None)  # as if not installed
    assert not tbmod.available()
    train(_cfg(data_root), tmp_path / "without", progress=False)
    assert not list((tmp_path / "without").glob("events.out.tfevents.*"))
    assert (tmp_path / "without" / "log.jsonl").read_text().count("\n") == (tmp_path / "with" / "log.jsonl").read_text().count("\n")
    a, b = (load_checkpoint(tmp_path / d / "last.pt")["model"] for d in ("with", "without"))
    for k in a:
        assert torch.equal(a[k], b[k]), k  # writing events changes nothing in the training


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv(tbmod.ENV, "0")
    assert not tbmod.available()
    assert tbmod.open_writer("unused") is None
