"""Which device a run uses, and how it is described in provenance."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from equss.errors import EqussError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None): CUDA when available, else the CPU; anything else as given, with
    one clear error when CUDA is asked for and absent or the name is not a device."""
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise EqussError(f"unknown device {str(name)!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EqussError(f"device {str(name)!r} requested but CUDA is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise EqussError(f"device {str(name)!r} is not supported; use auto, cpu, cuda or cuda:N")
    return dev


CPU_AMP = ("off", "auto", "bf16")
BF16_MIN_SPEEDUP = 1.3  # bf16 autocast must be this much faster than fp32 for ``auto`` to choose it
_bf16_measured: dict[int, float] = {}


def bf16_speedup(threads: int | None = None, reps: int = 5) -> float:
    """fp32 time / bf16-autocast time of the training step's dominant GEMM (8192 x 384 @ 384 x 1024,
    the head on a batch of patch features), medians of ``reps``, measured once per process and thread
    count.  Above 1 only where the CPU has bf16 matrix units that pay (AMX); on AVX2 and often on
    AVX-512 BF16 bf16 is slower (measured: 86 GFLOPS fp32 vs 60 under autocast on one Xeon)."""
    import statistics
    import time

    key = threads or torch.get_num_threads()
    if key in _bf16_measured:
        return _bf16_measured[key]
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8192, 384, generator=g), torch.randn(384, 1024, generator=g)

    def timed(bf16: bool) -> float:
        out = []
        for _ in range(reps + 1):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                (a @ b).sum().item()
            out.append(time.perf_counter() - t0)
        return statistics.median(out[1:])  # the first is a warm-up

    _bf16_measured[key] = timed(False) / timed(True)
    return _bf16_measured[key]


def amp_dtype(device: torch.device | str, enabled: bool = True, cpu_amp: str = "off") -> torch.dtype | None:
    """The autocast dtype of a run.  CUDA: float16 when ``train.amp`` (official EQUSS ``train.py``).
    CPU (``train.cpu_amp``): ``off`` (default) full fp32, one numeric path on every CPU, so results made
    on one machine are reproducible on another; ``bf16`` bfloat16 autocast; ``auto`` bfloat16 only where
    :func:`bf16_speedup` measures at least :data:`BF16_MIN_SPEEDUP` on this machine, never from CPU
    flags.  The choice is recorded in the run's provenance (``amp``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.float16 if enabled else None
    if device.type != "cpu" or not enabled or cpu_amp == "off":
        return None
    if cpu_amp == "bf16" or bf16_speedup() >= BF16_MIN_SPEEDUP:
        return torch.bfloat16
    return None


_ALLOCATOR_TUNED = False


def keep_freed_memory(top_pad_mb: int = 512) -> bool:
    """Let glibc reuse freed memory instead of returning it to the OS after every tensor.

    A training step allocates and frees tensors of tens of MB hundreds of times; glibc
    serves each one with a fresh ``mmap`` (above its 32 MB threshold) or trims the heap on
    free, so every step pays the page faults of touching that memory again (slow under
    virtualisation).  ``mallopt``: no ``mmap`` for large blocks (``M_MMAP_MAX = 0``), keep
    up to 2 GB of free heap (``M_TRIM_THRESHOLD``) and grow the heap in ``top_pad_mb``
    steps (``M_TOP_PAD``).  Numbers are unchanged; peak RSS is the high-water mark of the
    heap.  A no-op (False) off glibc.  Idempotent.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4
    ok = (mallopt(m_mmap_max, 0) == 1 and mallopt(m_trim_threshold, 2**31 - 1) == 1
          and mallopt(m_top_pad, top_pad_mb << 20) == 1)
    _ALLOCATOR_TUNED = ok
    return ok


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: torch.device | str | None = None) -> str:
    """The GPU's name, or ``"CPU: <model> (<n> cores)"``."""
    device = torch.device(device or "cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return f"CPU: {cpu_model()} ({os.cpu_count()} cores)"
