"""equss.cpus: the usable cores are the affinity mask capped by a cgroup CPU quota (v1 and v2 layouts
written into a scratch folder), and thread pools are capped to them only where nobody chose a count."""
import math
import subprocess
import sys
from pathlib import Path

import pytest

from equss import cpus

ROOT = Path(__file__).resolve().parent.parent


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("quota,period,affinity,expected", [
    (200000, 100000, 64, 2),      # docker --cpus 2 on a 64-CPU host
    (150000, 100000, 64, 2),      # 1.5 CPUs: two threads may run (rounded up)
    (50000, 100000, 64, 1),       # half a CPU: still one thread
    (800000, 100000, 4, 4),       # a quota above the mask: the mask
])
def test_v1_and_v2_quotas_cap_the_affinity(tmp_path, monkeypatch, quota, period, affinity, expected):
    monkeypatch.setattr(cpus, "affinity_cores", lambda: affinity)
    none = tmp_path / "no-proc-cgroup"
    v1 = tmp_path / "v1"
    _write(v1 / "cpu" / "cpu.cfs_quota_us", f"{quota}\n")
    _write(v1 / "cpu" / "cpu.cfs_period_us", f"{period}\n")
    v2 = tmp_path / "v2"
    _write(v2 / "cpu.max", f"{quota} {period}\n")
    independent = min(affinity, max(1, math.ceil(quota / period)))
    assert expected == independent
    assert cpus.usable_cores(v1, none) == cpus.usable_cores(v2, none) == expected
    assert cpus.quota_cores(v2, none) == pytest.approx(quota / period)


def test_no_quota_is_the_affinity(tmp_path, monkeypatch):
    monkeypatch.setattr(cpus, "affinity_cores", lambda: 8)
    none = tmp_path / "no-proc-cgroup"
    _write(tmp_path / "v2" / "cpu.max", "max 100000\n")
    _write(tmp_path / "v1" / "cpu" / "cpu.cfs_quota_us", "-1\n")
    _write(tmp_path / "v1" / "cpu" / "cpu.cfs_period_us", "100000\n")
    for root in ("v2", "v1", "empty"):
        assert cpus.quota_cores(tmp_path / root, none) is None
        assert cpus.usable_cores(tmp_path / root, none) == 8


def test_v2_quota_of_the_process_own_cgroup_and_its_ancestors(tmp_path, monkeypatch):
    """Outside a container the quota sits on the process's cgroup (systemd CPUQuota=, a Slurm job),
    possibly on an ancestor; the smallest applies."""
    monkeypatch.setattr(cpus, "affinity_cores", lambda: 32)
    proc = tmp_path / "cgroup"
    proc.write_text("0::/system.slice/job.scope\n")
    root = tmp_path / "fs"
    _write(root / "system.slice" / "job.scope" / "cpu.max", "max 100000\n")
    _write(root / "system.slice" / "cpu.max", "300000 100000\n")
    assert cpus.usable_cores(root, proc) == 3
    _write(root / "system.slice" / "job.scope" / "cpu.max", "100000 100000\n")
    assert cpus.usable_cores(root, proc) == 1


def test_cap_threads_only_where_no_count_was_chosen(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(cpus, "usable_cores", lambda *a, **k: 1)
        env = {"OMP_NUM_THREADS": "3"}
        assert cpus.cap_threads(env) is None and env == {"OMP_NUM_THREADS": "3"}
        torch.set_num_threads(2)
        env = {}
        assert cpus.cap_threads(env) == 1
        assert env == {v: "1" for v in cpus.THREAD_VARS} and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_runs_without_the_package_installed():
    """`.ci/run` calls it with the system Python before the virtual environment exists."""
    out = subprocess.run([sys.executable, "-I", str(ROOT / "equss" / "cpus.py"), "-v"], capture_output=True,
                         text=True, check=True)
    assert int(out.stdout) == cpus.usable_cores() and "affinity" in out.stderr
