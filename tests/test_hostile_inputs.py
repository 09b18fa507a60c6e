"""A hostile review's cases, kept as tests (each failed before the fix it names).

Malicious files (a checkpoint or weights file whose pickle runs code; symbolic links planted in a
run folder), lost or mixed results across resume / overwrite, resource blow-ups from one typo, and
unclear messages or exit codes.  The payload of every malicious file creates a marker file: the
test asserts the marker never appears.  Uses the tiny synthetic CamVid and the CLI helpers of
``tests/test_reliability.py``.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from equss import cli
from equss.errors import EqussError
from test_reliability import one_line, run, train_args, write_camvid


class Payload:
    """Unpickling this runs ``exec``: it writes the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def evil_copy(src: Path, dst: Path, marker: Path) -> Path:
    """``src`` (a real checkpoint) with one extra entry whose unpickling runs code."""
    state = torch.load(src, map_location="cpu", weights_only=False)  # our own test file: trusted
    state["note"] = Payload(marker)
    torch.save(state, dst)
    return dst


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    return write_camvid(tmp_path_factory.mktemp("hostile-camvid"), seed=5)


@pytest.fixture(scope="module")
def trained(camvid, tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile-trained") / "run"
    assert cli.main(train_args(camvid, out, "--steps", "2")) == 0
    return out


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (42, 56, 3), dtype=np.uint8)).save(path)
    return path


# ---------------------------------------------------------------------------- 1. no file runs code
def test_malicious_checkpoint_runs_no_code_in_eval_segment_or_resume(trained, camvid, image, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = evil_copy(trained / "last.pt", tmp_path / "evil.pt", marker)
    code, err = run(["eval", "--checkpoint", evil, "--out", tmp_path / "ev", "--device", "cpu"], capsys)
    one_line(code, err, "--trust-pickle")
    code, err = run(["segment", image, "--checkpoint", evil, "--out", tmp_path / "seg", "--device", "cpu"], capsys)
    one_line(code, err, "--trust-pickle")
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    (out / "provenance.json").unlink()  # a run stopped after its last checkpoint
    evil_copy(trained / "last.pt", out / "last.pt", marker)
    code, err = run(train_args(camvid, out, "--steps", "2", "--resume"), capsys)
    one_line(code, err, "--trust-pickle")
    assert not marker.exists()


def test_run_cache_and_python_api_refuse_a_malicious_checkpoint(trained, tmp_path):
    from equss.paper import figures

    marker = tmp_path / "pwned"
    run_dir = tmp_path / "cached-run"
    run_dir.mkdir()
    evil_copy(trained / "best.pt", run_dir / "best.pt", marker)
    with pytest.raises(EqussError, match="would run code.*--trust-pickle"):
        figures._load_run({"run_dir": str(run_dir)})
    assert not marker.exists()


def test_trust_pickle_is_the_explicit_opt_in(trained, image, tmp_path, capsys):
    """The opt-in works (and so the refusal above is about the pickle, not a broken file)."""
    marker = tmp_path / "pwned"
    evil = evil_copy(trained / "best.pt", tmp_path / "evil.pt", marker)
    code, _ = run(["segment", image, "--checkpoint", evil, "--out", tmp_path / "seg", "--device", "cpu",
                   "--trust-pickle"], capsys)
    assert code == 0 and marker.exists()


def test_malicious_weights_file_runs_no_code(camvid, tmp_path, capsys):
    from equss.backbones.vit import read_state_dict

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"teacher": {"blocks.0.w": torch.ones(2)}, "args": Payload(marker)}, evil)
    with pytest.raises(EqussError, match="would run code.*--trust-pickle"):
        read_state_dict(evil)
    code, err = run(["features", "camvid", "--split", "train", "--backbone", "dinov2_vits14_offline",
                     "--weights", evil, "--data-root", camvid, "--resolution", 28], capsys)
    one_line(code, err, "--trust-pickle")
    assert not marker.exists()


def test_dino_training_checkpoint_with_its_namespace_still_loads(tmp_path):
    """DINO's main_dino.py checkpoints pickle an argparse.Namespace: allowed, nothing else is."""
    import argparse

    from equss.backbones.vit import read_state_dict

    path = tmp_path / "checkpoint.pth"
    torch.save({"teacher": {"module.backbone.cls_token": torch.zeros(1, 1, 4)}, "args": argparse.Namespace(arch="vit_small"),
                "epoch": 3}, path)
    assert list(read_state_dict(path)) == ["cls_token"]


# ---------------------------------------------------------------------------- 1b. no link followed
@pytest.mark.parametrize("planted", [".lock", "last.pt.tmp", "provenance.json.tmp"])
def test_symlinks_planted_in_the_run_folder_are_never_written_through(planted, camvid, trained, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "run"
    out.mkdir()
    (out / planted).symlink_to(victim)
    code, err = run(train_args(camvid, out, "--steps", "2"), capsys)
    assert victim.read_text() == "precious"
    if planted.endswith(".tmp"):  # a leftover temporary is replaced, never followed: the run succeeds
        assert code == 0 and (out / "provenance.json").is_file()
    else:
        one_line(code, err, "symbolic link")


def test_links_in_a_resumed_run_folder_are_replaced_not_followed(camvid, trained, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    (out / "provenance.json").unlink()
    for name in ("log.jsonl", "best.pt", "config.yaml"):
        (out / name).unlink()
        (out / name).symlink_to(victim)
    assert cli.main(train_args(camvid, out, "--steps", "2", "--resume")) == 0
    assert victim.read_text() == "precious"
    assert not (out / "log.jsonl").is_symlink() and not (out / "config.yaml").is_symlink()


# ---------------------------------------------------------------------------- 2. resume and provenance
def test_resume_of_a_finished_run_changes_nothing(camvid, trained, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}
    code = cli.main(train_args(camvid, out, "--steps", "2", "--resume"))
    assert code == 0 and "finished run" in capsys.readouterr().out
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == before


def test_resumed_checkpoint_keeps_the_assignment_and_sums_wall_time(camvid, trained, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    (out / "provenance.json").unlink()  # stopped after its last checkpoint: --resume only saves again
    before = torch.load(out / "last.pt", weights_only=False)
    assert before["assignment"] is not None and before["wall_s"] > 0
    assert cli.main(train_args(camvid, out, "--steps", "2", "--resume")) == 0
    after = torch.load(out / "last.pt", weights_only=False)
    assert after["assignment"] == before["assignment"]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["wall_s"] >= round(before["wall_s"], 2) and prov["segments"] == 2


def test_overwrite_removes_the_previous_runs_kept_checkpoints(camvid, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(train_args(camvid, out, "--steps", "2", "--set", "train.keep_checkpoints=true",
                               "--set", "train.val_every=1")) == 0
    assert sorted(p.name for p in out.glob("step_*.pt")) == ["step_1.pt", "step_2.pt"]
    assert cli.main(train_args(camvid, out, "--steps", "2", "--overwrite", preset="camvid-equss")) == 0
    assert not list(out.glob("step_*.pt"))
    assert yaml_name(out) == "camvid-equss"


def yaml_name(out: Path) -> str:
    import yaml

    return yaml.safe_load((out / "config.yaml").read_text())["name"]


# ---------------------------------------------------------------------------- 5. bounds and messages
@pytest.mark.parametrize("extra, message", [
    (["--set", "train.seed=4294967296"], "train.seed must be in [0,4294967295]"),
    (["--set", "train.batch_size=1000000000"], "train.batch_size must be in [2,1024]"),
    (["--set", "data.resolution=100000"], "data.resolution must be in [1,1024]"),
    (["--set", "train.batch_size=1024", "--set", "data.resolution=1024"], "pixels per batch"),
])
def test_sizes_that_exhaust_memory_and_bad_seeds_are_one_line(extra, message, camvid, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run(train_args(camvid, out, "--steps", "2", *extra), capsys)
    one_line(code, err, message)
    assert not out.exists()


def test_checkpoint_without_in_dim_and_folders_as_files_are_one_line(trained, tmp_path, capsys):
    state = torch.load(trained / "best.pt", weights_only=False)
    del state["in_dim"]
    torch.save(state, tmp_path / "no_in_dim.pt")
    code, err = run(["eval", "--checkpoint", tmp_path / "no_in_dim.pt", "--device", "cpu"], capsys)
    one_line(code, err, "lacks in_dim")
    code, err = run(["eval", "--checkpoint", trained, "--device", "cpu"], capsys)
    one_line(code, err, "is a folder")
    code, err = run(["train", "--config", trained, "--out", tmp_path / "r"], capsys)
    one_line(code, err, "is a folder")


def test_assignment_with_class_ids_out_of_range_is_refused(trained, image, tmp_path, capsys):
    state = torch.load(trained / "best.pt", weights_only=False)
    n = len(state["assignment"])
    (tmp_path / "eval.json").write_text(json.dumps({"cluster": {"assignment": [99] * n}}))
    code, err = run(["segment", image, "--checkpoint", trained / "best.pt", "--out", tmp_path / "seg",
                     "--device", "cpu", "--assignment", tmp_path / "eval.json"], capsys)
    one_line(code, err, "outside -1..")
    assert not list((tmp_path / "seg").glob("*_labels.png"))


def test_image_between_the_bomb_limit_and_twice_it_is_skipped(trained, tmp_path, capsys, monkeypatch):
    """Pillow only warns between MAX_IMAGE_PIXELS and twice that; the README promises a skip."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64)
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (80, 80)).save(folder / "big.png")  # 6400 px: above 4096, below 8192
    Image.new("RGB", (56, 42)).save(folder / "small.png")
    code, err = run(["segment", folder, "--checkpoint", trained / "best.pt", "--out", tmp_path / "seg",
                     "--device", "cpu"], capsys)
    assert code == 0 and any("big.png" in ln and "too large" in ln for ln in err), err
    done = json.loads((tmp_path / "seg" / "segment.json").read_text())
    assert [Path(s["input"]).name for s in done["skipped"]] == ["big.png"]


def test_knn_file_with_out_of_range_indices_is_damaged_not_an_index_error(tmp_path):
    from equss.data import knn
    from equss.data.features import get_or_build_features
    from test_knn import TinyBackbone, TinyDataset

    bb, ds = TinyBackbone(), TinyDataset(preproc_id="tiny-hostile-knn")
    good = knn.get_or_build_knn(bb, ds, k=6, progress=False)
    cache = get_or_build_features(bb, ds, progress=False)
    path = knn.knn_path(cache, 6)
    bad = good.copy()
    bad[0, 1] = len(ds) + 5
    np.save(path, bad)
    with pytest.raises(EqussError, match="outside 0..20"):
        knn.load_knn(cache, 6)
    np.testing.assert_array_equal(knn.get_or_build_knn(cache, k=6), good)  # recomputed, not used


def test_nan_in_the_feature_cache_names_the_cache_not_the_learning_rate(tmp_path, capsys):
    from equss.config import load_config
    from equss.data.features import get_or_build_features
    from equss.pipeline.inputs import make_backbone, make_dataset

    root = write_camvid(tmp_path / "data", seed=9)
    argv = train_args(root, tmp_path / "r1", "--steps", "2")
    assert cli.main(argv) == 0
    cfg = load_config("camvid-stego", "smoke", overrides=[
        f"data.data_root={root}", "data.resolution=28", "data.eval_resolution=28", "data.probe_label_size=0",
        "train.batch_size=2", "train.device=cpu"])
    cache = get_or_build_features(make_backbone(cfg), make_dataset(cfg, "train", train=True), progress=False)
    feats = np.load(cache.path / "feats.npy", mmap_mode="r+")
    feats[:] = np.nan
    feats.flush()
    del feats
    capsys.readouterr()
    code, err = run(train_args(root, tmp_path / "r2", "--steps", "2"), capsys)
    one_line(code, err, "feature cache")
    assert "lr" not in err[-1] and "last.pt" not in err[-1]


def test_no_subcommand_is_a_usage_error(capsys):
    assert cli.main([]) == 2
    assert "give a subcommand" in capsys.readouterr().err


def test_committed_json_results_are_strict_json():
    """JSON has no NaN: every committed result file parses with NaN / Infinity refused."""
    root = Path(__file__).resolve().parent.parent / "results"

    def refuse(token):
        raise ValueError(f"non-JSON constant {token}")

    bad = []
    for path in sorted(root.rglob("*.json")):
        try:
            json.loads(path.read_text(), parse_constant=refuse)
        except ValueError as exc:
            bad.append(f"{path.relative_to(root)}: {exc}")
    assert not bad, bad


@pytest.mark.slow
def test_failed_first_checkpoint_does_not_advise_a_resume_that_would_refuse(camvid, trained, tmp_path):
    """best.pt written at the first validation, before any last.pt: the line must not say --resume."""
    import subprocess
    import sys

    limit = ("import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             f"resource.setrlimit(resource.RLIMIT_FSIZE, ({2**18}, {2**18})); "
             "sys.argv = ['equss'] + sys.argv[1:]; runpy.run_module('equss', run_name='__main__')")
    argv = train_args(camvid, tmp_path / "run", "--steps", "2", "--set", "train.val_every=1")
    proc = subprocess.run([sys.executable, "-c", limit, *map(str, argv)], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)
    err = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("equss: error")]
    assert proc.returncode == 1 and len(err) == 1 and "cannot write checkpoint" in err[0], proc.stderr[-2000:]
    assert "best.pt" in err[0] and "--resume" not in err[0]


# ---------------------------------------------------------------------------- caches keyed by content
def test_fresh_copy_of_unchanged_data_reuses_the_feature_cache(tmp_path, capsys):
    """New mtimes alone (the data folder restored or copied anew) do not rebuild a cache: its content hash
    decides; a changed file still does."""
    import time

    from equss.data import get_dataset
    from equss.data.features import get_or_build_features
    from test_reliability import TinyBackbone

    root = write_camvid(tmp_path / "data", seed=11)

    class Counting(TinyBackbone):
        calls = 0

        def forward(self, images, normalize=False):
            Counting.calls += 1
            return super().forward(images, normalize)

    def build():
        return get_or_build_features(Counting(), get_dataset("camvid", "train", data_root=root, resolution=16),
                                     progress=False)

    first = build()
    calls = Counting.calls
    later = time.time_ns() + 10**9
    for f in (root / "CamVid").rglob("*.png"):
        os.utime(f, ns=(later, later))
    capsys.readouterr()
    again = build()
    assert Counting.calls == calls and "out of date" not in capsys.readouterr().err
    np.testing.assert_array_equal(np.asarray(again.feats), np.asarray(first.feats))
    assert build() is not None and Counting.calls == calls  # the stat fingerprint was refreshed
    label = root / "CamVid" / "trainannot" / "train00.png"
    Image.fromarray(np.full((42, 56), 3, np.uint8), mode="L").save(label)
    os.utime(label, ns=(later + 10**9, later + 10**9))
    capsys.readouterr()
    changed = build()
    assert Counting.calls > calls and "out of date" in capsys.readouterr().err
    assert (np.asarray(changed.labels[0]) == 3).all()
