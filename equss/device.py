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


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bfloat16 matrix instructions (Intel AMX-BF16 or AVX-512 BF16), where
    bfloat16 autocast runs matmuls several times faster than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def amp_dtype(device: torch.device | str, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype of ``train.amp``: float16 on CUDA (official EQUSS ``train.py``), bfloat16
    on a CPU with native bf16, None (full fp32) elsewhere or when disabled."""
    if not enabled:
        return None
    device = torch.device(device)
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
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
