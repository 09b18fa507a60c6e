"""How many CPUs this process may really use, and thread pools capped to them.

``os.sched_getaffinity`` (and torch's, OpenMP's and OpenBLAS's default thread counts, which follow it)
counts the CPUs a process may be scheduled on, not the CPU time it may use: a container or a CI job
limited by a cgroup CPU quota (``docker --cpus 2``, Kubernetes CPU limits, systemd ``CPUQuota``) on a
64-CPU host sees 64 CPUs and starts 64 threads that share 2 CPUs of time.  OpenMP's spinning threads
then burn the quota and the whole process is throttled for the rest of each period: compute-bound
code runs several to a hundred times slower.  :func:`usable_cores` is the smaller of the affinity
mask and the quota (cgroup v2 ``cpu.max``, cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``,
rounded up); :func:`cap_threads` lowers torch's thread count and the OpenMP/BLAS environment of
child processes to it where nobody has chosen a thread count.

Imports nothing heavy (``python equss/cpus.py`` prints the figure: ``.ci/run`` uses it before the
virtual environment exists).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_QUOTA_FILES = (  # (quota file, period file or None for cgroup v2's "quota period" in one file)
    ("cpu.max", None),
    ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us"),
    ("cpu,cpuacct/cpu.cfs_quota_us", "cpu,cpuacct/cpu.cfs_period_us"),
)


def affinity_cores() -> int:
    """The CPUs this process may be scheduled on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _own_v2_folders(root: Path, proc_cgroup: str | Path = "/proc/self/cgroup") -> list[str]:
    """This process's cgroup v2 folder and its ancestors below ``root`` (``0::/a/b`` -> ``a/b``, ``a``):
    outside a container a quota sits on the process's own cgroup, not on the root."""
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        if line.startswith("0::/"):
            parts = [p for p in line[4:].strip().split("/") if p]
            return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]
    return []


def quota_cores(root: str | Path = "/sys/fs/cgroup", proc_cgroup: str | Path = "/proc/self/cgroup") -> float | None:
    """The cgroup CPU quota in CPUs (``quota / period``), or None where there is none (``max``, ``-1``)
    or no cgroup file can be read.  cgroup v2: the smallest ``cpu.max`` of the process's cgroup, its
    ancestors and the root; cgroup v1: the root's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``."""
    root = Path(root)
    v2 = [q for q in (_read_quota(root / f / "cpu.max", None) for f in _own_v2_folders(root, proc_cgroup))
          if q is not None]
    if v2:
        return min(v2)
    for quota_file, period_file in _QUOTA_FILES:
        try:
            return _read_quota(root / quota_file, root / period_file if period_file else None, strict=True)
        except OSError:
            continue
    return None


def _read_quota(quota_file: Path, period_file: Path | None, strict: bool = False) -> float | None:
    """CPUs of one quota file (v2 ``cpu.max`` holds "quota period"; v1 has two files); None for no quota
    or an unreadable file (``strict``: OSError for a missing file, so the next layout is tried)."""
    try:
        text = quota_file.read_text().split()
        quota, period = (text[0], text[1]) if period_file is None else (text[0], period_file.read_text().split()[0])
    except (OSError, IndexError):
        if strict:
            raise OSError(f"no quota in {quota_file}")
        return None
    if quota in ("max", "-1"):
        return None
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def usable_cores(root: str | Path = "/sys/fs/cgroup", proc_cgroup: str | Path = "/proc/self/cgroup") -> int:
    """``min(affinity, ceil(quota))``, at least 1."""
    n = affinity_cores()
    quota = quota_cores(root, proc_cgroup)
    if quota is not None:
        n = min(n, max(1, math.ceil(quota - 1e-9)))
    return max(1, n)


def cap_threads(environ=os.environ) -> int | None:
    """Where no thread count was chosen (none of :data:`THREAD_VARS` is set), set them to
    :func:`usable_cores` for child processes and lower torch's intra-op threads to it if torch is loaded
    with more; returns the cap applied, or None where a thread count was already chosen."""
    if any(environ.get(v) for v in THREAD_VARS):
        return None
    n = usable_cores()
    for v in THREAD_VARS:
        environ[v] = str(n)
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() > n:
        torch.set_num_threads(n)
    return n


if __name__ == "__main__":
    import sys

    if "-v" in sys.argv[1:]:  # what the figure comes from (CI prints it)
        print(f"cpus: affinity {affinity_cores()}, cgroup quota {quota_cores()}, os.cpu_count {os.cpu_count()}",
              file=sys.stderr)
    print(usable_cores())
