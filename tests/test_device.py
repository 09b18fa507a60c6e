"""One numeric path on every CPU unless asked otherwise: ``train.cpu_amp`` (equss.device.amp_dtype)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from equss import device

ROOT = Path(__file__).resolve().parent.parent


def test_cpu_is_fp32_by_default_whatever_the_cpu(monkeypatch):
    monkeypatch.setattr(device, "bf16_speedup", lambda *a, **k: pytest.fail("off must not measure"))
    assert device.amp_dtype("cpu", True) is None and device.amp_dtype("cpu", True, "off") is None
    assert device.amp_dtype("cpu", True, "bf16") is torch.bfloat16
    assert device.amp_dtype("cpu", False, "bf16") is None
    assert device.amp_dtype("cuda", True) is torch.float16 and device.amp_dtype("cuda", False) is None


@pytest.mark.parametrize("speedup, expected", [(2.0, torch.bfloat16), (1.29, None), (0.7, None)])
def test_auto_follows_the_measurement_not_cpu_flags(speedup, expected, monkeypatch):
    monkeypatch.setattr(device, "bf16_speedup", lambda *a, **k: speedup)
    assert device.amp_dtype("cpu", True, "auto") is expected


def test_bf16_speedup_is_measured_once_per_thread_count(monkeypatch):
    monkeypatch.setattr(device, "_bf16_measured", {})
    first = device.bf16_speedup(reps=1)
    assert first > 0 and device.bf16_speedup(reps=1) == first


def test_fp32_keeps_the_config_keys_of_runs_made_before_the_field():
    """The committed run records were trained before ``train.cpu_amp`` existed: their configs keep their keys
    (the record names end with them), and only a bf16 run gets another key."""
    import yaml

    from equss.config import config_from_dict

    records = sorted((ROOT / "results" / "proxy" / "runs").glob("camvid-*-seed*-*/config.yaml"))
    if not records:
        pytest.skip("no committed proxy run records")
    for path in records[:6]:
        cfg = config_from_dict(yaml.safe_load(path.read_text()))
        assert cfg.train.cpu_amp == "off" and cfg.key() == path.parent.name.rsplit("-", 1)[1], path.parent.name
    cfg.train.cpu_amp = "bf16"
    assert cfg.key() != path.parent.name.rsplit("-", 1)[1]
