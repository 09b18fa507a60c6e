"""Files that cannot be turned against the user.

* :func:`torch_load` reads a checkpoint or weights file with ``torch.load(weights_only=True)``:
  tensors, numbers, strings and containers, plus exactly the extra types a caller names (equss's
  own checkpoints: numpy's RNG state; DINO releases: ``argparse.Namespace``).  A file that needs
  anything else would run code while it is unpickled; it is refused with one line naming the
  opt-in (``--trust-pickle`` on the command line, :func:`trust_pickle` in Python), never loaded
  through a silent fallback.
* :func:`open_for_write` / :func:`write_atomic` write into run folders without following a
  symbolic link: a link planted as ``OUT/.lock``, ``OUT/last.pt.tmp`` or ``OUT/log.jsonl`` is an
  error, not a way to overwrite the file it points to.  Atomic writes create their temporary
  file with ``O_EXCL | O_NOFOLLOW`` and rename it over the destination (a rename replaces a link
  itself, never its target).
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path
from typing import Callable, Iterable

from equss.errors import EqussError

TRUST_FLAG = "--trust-pickle"
_trusted = False


def trust_pickle(on: bool = True) -> None:
    """Allow full unpickling (code execution) for files that need it, for this process."""
    global _trusted
    _trusted = bool(on)


def checkpoint_types() -> list:
    """What an equss checkpoint holds besides tensors and plain data: numpy's RNG state (an ndarray
    of uint32, from ``np.random.get_state()``) and, in checkpoints written before provenance stored
    plain strings, ``torch.torch_version.TorchVersion`` (a ``str`` subclass)."""
    import numpy as np
    from torch.torch_version import TorchVersion

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32)), TorchVersion]


def _unsupported_global(message: str) -> str | None:
    m = re.search(r"Unsupported global: GLOBAL (\S+)", message) or re.search(r"Unsupported operand \S+", message)
    return (m.group(1) if m.groups() else m.group(0)) if m else None


def torch_load(path: str | os.PathLike, what: str = "checkpoint", allow: Iterable = ()):
    """``torch.load(path, weights_only=True)`` with ``allow`` added to the allowed globals.

    Raises one :class:`EqussError` line for a folder, a missing file, a corrupt file, or a file
    whose pickle needs other globals (unless :func:`trust_pickle` was called)."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise EqussError(f"{what} {str(path)!r} is a folder, not a file; pass the file itself (e.g. RUN/best.pt)")
    if not path.is_file():
        raise EqussError(f"{what} {str(path)!r} not found")
    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - sorted below: refused pickle, or corrupt file
        text = str(exc)
        refused = "Weights only load failed" in text
        if not refused:
            raise EqussError(f"{what} {str(path)!r} is corrupt or not a torch file ({type(exc).__name__}); "
                             "use another file") from None
    if _trusted:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001
            raise EqussError(f"cannot read {what} {str(path)!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    name = _unsupported_global(text) or "an object that is not a tensor or plain data"
    raise EqussError(f"{what} {str(path)!r} holds {name}, which would run code when unpickled, so it was not "
                     f"loaded; if you trust where the file came from, pass {TRUST_FLAG}")


# ---------------------------------------------------------------------------- writing without following links
def _refuse_link(path: Path, exc: OSError) -> EqussError:
    return EqussError(f"{str(path)!r} is a symbolic link; equss never writes through a link in a run folder "
                      f"(remove it, then run again)") if exc.errno == errno.ELOOP else exc


def open_for_write(path: str | os.PathLike, append: bool = False):
    """``open(path, "a"/"w")`` that refuses a symbolic link at ``path`` (O_NOFOLLOW)."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise _refuse_link(path, exc) from None
    return os.fdopen(fd, "a" if append else "w")


@contextlib.contextmanager
def _exclusive_tmp(path: Path, binary: bool):
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a leftover (or planted link) is removed, never followed
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise _refuse_link(tmp, exc) from None
    try:
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            yield tmp, fh
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike, write: Callable, binary: bool = False) -> Path:
    """Call ``write(fh)`` on ``path.tmp`` (created exclusively, no link followed), fsync, rename over
    ``path``: readers see the old file or the new one, never half of one."""
    path = Path(path)
    with _exclusive_tmp(path, binary) as (tmp, fh):
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
