"""`make test` on a machine with no data and no network: at smoke scale the notebooks run on the generated
smoke set (equss.data.synthetic) when no data root is given, and every CamVid / Dubai split it writes is
readable by the real dataset classes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from equss.data import get_dataset
from equss.data.synthetic import CAMVID_SPLITS, smoke_data, smoke_data_root

ROOT = Path(__file__).resolve().parent.parent


def test_generated_smoke_set_is_read_by_the_real_datasets(tmp_path):
    root = smoke_data(tmp_path / "smoke")
    for split, n in CAMVID_SPLITS.items():
        ds = get_dataset("camvid", split, data_root=root, resolution=64)
        assert len(ds) == n
        labels = np.concatenate([ds[i][1].numpy().ravel() for i in range(n)])
        assert labels.min() >= 0 and labels.max() <= 10 and len(np.unique(labels)) >= 5
    for split in ("train", "val", "test"):
        ds = get_dataset("dubai_aerial", split, data_root=root, resolution=64)
        assert len(ds) >= 4 and ds[0][1].max() <= 4 and ds[0][1].min() >= 0  # every colour maps to a class
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    assert smoke_data(root) == root and {p: p.stat().st_mtime_ns for p in root.rglob("*.png")} == before  # made once


def test_smoke_data_root_prefers_a_given_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EQUSS_DATA", raising=False)
    monkeypatch.setenv("EQUSS_CACHE", str(tmp_path / "cache"))
    assert smoke_data_root() == (tmp_path / "cache" / "smoke-data").resolve()
    monkeypatch.setenv("EQUSS_DATA", str(tmp_path))
    assert smoke_data_root() == tmp_path


@pytest.mark.slow
def test_smoke_notebook_runs_without_a_data_root(tmp_path):
    pytest.importorskip("papermill")
    env = {k: v for k, v in os.environ.items() if k != "EQUSS_DATA"}
    env["EQUSS_CACHE"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-m", "equss", "reproduce", "table1", "--scale", "smoke", "--results",
                           str(tmp_path / "results"), "--no-progress", "--no-compare"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = (tmp_path / "results" / "table1.csv").read_text().splitlines()
    assert len(rows) > 4
    nb = json.loads((tmp_path / "results" / "notebooks" / "table1_cocostuff.ipynb").read_text())
    assert nb["metadata"]["equss"]["status"] == "finished"
    assert not (tmp_path / "data").exists()  # nothing downloaded, nothing written beside the user's files
