"""Training pipeline on real CamVid (smoke scale, offline DINOv2): paths, resume, checkpoints, errors."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import run_cli
from equss.config import load_config
from equss.errors import EqussError, Interrupted
from equss.pipeline.checkpoint import load_checkpoint
from equss.pipeline.train import Trainer, train


def smoke_cfg(data_root, **overrides):
    ov = [f"data.data_root={data_root}", "train.device=cpu"] + [f"{k}={v}" for k, v in overrides.items()]
    return load_config("camvid-equss", "smoke", overrides=ov)


def test_cache_and_online_paths_give_the_same_loss(data_root, tmp_path):
    losses = {}
    for path in ("cache", "online"):
        trainer = Trainer(smoke_cfg(data_root, **{"train.input_path": path}), tmp_path / path, progress=False)
        assert trainer.input_path == path
        losses[path] = trainer.train_step()
    for key in ("total", "corr", "codebook", "commitment", "cluster", "linear"):
        assert losses["cache"][key] == pytest.approx(losses["online"][key], rel=1e-6, abs=1e-7), key


def test_resume_after_interruption_is_exact(data_root, tmp_path):
    cfg = smoke_cfg(data_root)
    train(cfg, tmp_path / "full", progress=False)

    interrupted = Trainer(cfg, tmp_path / "resumed", progress=False)
    real_step = interrupted.train_step

    def step_then_stop():
        out = real_step()
        if interrupted.step == 1:
            interrupted.stop_requested = True  # as SIGINT/SIGTERM would
        return out

    interrupted.train_step = step_then_stop
    with pytest.raises(Interrupted, match="interrupted by SIGINT at step 1"):
        interrupted.fit()
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["step"] == 1
    assert not (tmp_path / "resumed" / "provenance.json").exists()  # an unfinished run is not marked done

    Trainer(cfg, tmp_path / "resumed", resume=True, progress=False).fit()
    a = load_checkpoint(tmp_path / "full" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert a["step"] == b["step"] == cfg.train.steps
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert a["best"] == b["best"]


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(data_root, tmp_path, monkeypatch):
    cfg = smoke_cfg(data_root)
    trainer = Trainer(cfg, tmp_path, progress=False)
    real = trainer.loss_fn.forward

    def nan_after_two(*args):
        out = real(*args)
        if trainer.step >= 2:
            out["total"] = out["total"] * float("nan")
        return out

    trainer.loss_fn.forward = nan_after_two
    with pytest.raises(EqussError, match="loss is nan at step 2"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2


@pytest.mark.parametrize("args, message", [
    (["train", "--preset", "no-such-preset"], "unknown preset"),
    (["train", "--preset", "camvid-equss", "--set", "model.nope=1"], "unknown config key model.nope"),
    (["train", "--preset", "camvid-equss", "--set", "model.head_dim=1000"], "divisible"),
    (["train", "--preset", "camvid-equss", "--set", "model.codebook_size=0"], "must be >= 1"),
    (["eval", "--checkpoint", "/nonexistent/best.pt"], "not found"),
])
def test_cli_bad_inputs_one_line_errors(args, message, capsys):
    code, err = run_cli(args, capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_cli_corrupt_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00not a checkpoint")
    code, err = run_cli(["eval", "--checkpoint", str(bad)], capsys)
    assert code == 2 and len(err) == 1 and "corrupt" in err[0]


def test_cli_missing_and_empty_dataset(tmp_path, capsys):
    code, err = run_cli(["train", "--preset", "camvid-equss", "--scale", "smoke",
                         "--data-root", str(tmp_path / "nope"), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and len(err) == 1 and "data root" in err[0]
    (tmp_path / "empty").mkdir()
    code, err = run_cli(["train", "--preset", "camvid-equss", "--scale", "smoke",
                         "--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and len(err) == 1 and "CamVid" in err[0]


def test_resume_with_another_config_is_refused(data_root, tmp_path, capsys):
    cfg = smoke_cfg(data_root, **{"train.steps": 2})
    train(cfg, tmp_path, progress=False)
    code, err = run_cli(["train", "--preset", "camvid-equss", "--scale", "smoke", "--data-root", str(data_root),
                         "--set", "model.codebook_size=64", "--out", str(tmp_path), "--resume"], capsys)
    assert code == 2 and len(err) == 1 and "another config" in err[0]


def test_sigterm_writes_checkpoint_and_exits_cleanly(data_root, tmp_path):
    # warm the caches so the subprocess starts training at once
    train(smoke_cfg(data_root, **{"train.steps": 1}), tmp_path / "warm", progress=False)
    out = tmp_path / "run"
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "equss", "train", "--preset", "camvid-equss", "--scale", "smoke",
                             "--data-root", str(data_root), "--device", "cpu", "--steps", "500",
                             "--set", "train.val_every=0", "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "log.jsonl").exists():
        time.sleep(0.2)
    assert (out / "log.jsonl").exists(), "training never started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143  # 128 + SIGTERM: a make chain or scheduler sees the stop
    state = load_checkpoint(out / "last.pt")
    assert 1 <= state["step"] < 500
    lines = proc.stdout.read().decode().strip().splitlines()
    assert f"interrupted by SIGTERM at step {state['step']} of 500" in lines[-1]
    assert "--resume" in lines[-1] and "done:" not in "".join(lines)
    assert not (out / "best.pt").exists() and not (out / "provenance.json").exists()


def test_keep_checkpoints_saves_every_validation(data_root, tmp_path):
    """train.keep_checkpoints: step_<N>.pt at every validation, holding that step's weights; off by default."""
    train(smoke_cfg(data_root, **{"train.keep_checkpoints": True}), tmp_path / "kept", progress=False)
    assert sorted(p.name for p in (tmp_path / "kept").glob("step_*.pt")) == ["step_2.pt", "step_4.pt"]
    kept, last = load_checkpoint(tmp_path / "kept" / "step_4.pt"), load_checkpoint(tmp_path / "kept" / "last.pt")
    assert kept["step"] == 4 and load_checkpoint(tmp_path / "kept" / "step_2.pt")["step"] == 2
    for k, v in last["model"].items():
        assert torch.equal(v, kept["model"][k]), k
    train(smoke_cfg(data_root), tmp_path / "default", progress=False)
    assert not list((tmp_path / "default").glob("step_*.pt"))


def test_fused_adam_is_the_same_update_as_the_reference_adam():
    """The Trainer's Adam(fused=True) against torch's for-loop Adam: same parameters after
    steps with random gradients (the algorithm of torch.optim.Adam's documentation)."""
    torch.manual_seed(0)
    ref = [torch.nn.Parameter(torch.randn(33, 7)), torch.nn.Parameter(torch.randn(5))]
    fused = [torch.nn.Parameter(p.detach().clone()) for p in ref]
    opt_ref = torch.optim.Adam(ref, lr=3e-3, foreach=False)
    opt_fused = torch.optim.Adam(fused, lr=3e-3, fused=True)
    for _ in range(20):
        for a, b in zip(ref, fused):
            g = torch.randn_like(a)
            a.grad, b.grad = g.clone(), g.clone()
        opt_ref.step()
        opt_fused.step()
    for a, b in zip(ref, fused):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert opt_fused.state_dict()["param_groups"][0]["fused"] is True


def test_bf16_autocast_path_runs_on_cpu_and_checkpoints_load_in_fp32(data_root, tmp_path, monkeypatch):
    """bf16 autocast asked for on this CPU (train.cpu_amp=bf16) whatever its bf16 support (so it may be slow;
    nothing is timed): the head runs in bf16, PQ / correlation loss / probes in fp32, losses are
    finite, shapes as in fp32, and the checkpoint holds fp32 weights that load into a model."""
    from equss.pipeline.checkpoint import model_from_checkpoint

    cfg = smoke_cfg(data_root, **{"train.steps": 2, "train.cpu_amp": "bf16"})  # asked for, not detected
    trainer = Trainer(cfg, tmp_path / "bf16", progress=False)
    assert trainer.use_amp and trainer.amp_dtype == torch.bfloat16

    batch = trainer.source.next(cfg.train.batch_size)
    model = trainer.model
    with torch.autocast("cpu", dtype=torch.bfloat16):
        code = model.head(batch.feats)
        out = model._quantize(code)
        losses = model.training_losses(batch.feats, batch.feats_pos, batch.labels)
    assert code.dtype == torch.bfloat16
    assert out.probe_input.dtype == torch.float32 and out.probe_input.shape == code.shape
    for key in ("corr", "codebook", "commitment", "cluster", "linear", "total"):
        assert losses[key].dtype == torch.float32 and torch.isfinite(losses[key]), key
    with torch.no_grad():
        ref = model.head(batch.feats)
    assert ref.shape == code.shape and ref.dtype == torch.float32

    summary = trainer.fit()
    assert summary["steps"] == 2
    for key in ("total", "corr", "cluster", "linear"):
        assert math.isfinite(summary["last"][key]), key
    state = load_checkpoint(tmp_path / "bf16" / "last.pt")
    assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())
    loaded, _ = model_from_checkpoint(state)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    with torch.no_grad():
        pred = loaded.predict_labels(batch.feats[:1], (32, 32))
    assert pred["cluster"].shape == (1, 32, 32)
