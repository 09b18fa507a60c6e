"""Folder locks: one writer per run folder.

``folder_lock(folder)`` takes an exclusive ``flock`` on ``folder/.lock`` and writes who
holds it (pid, host, command, start time) into that file.  ``wait=False`` (training)
fails at once with an :class:`EqussError` naming the holder; ``wait=True`` (the notebooks'
run cache: two notebooks needing one run train it once) blocks until the holder is done.
The kernel drops the lock when the holder exits, also on ``kill -9``, so a stale lock
never blocks anyone.  Locks are re-entrant within one process (the run cache holds the
lock while it trains into the same folder).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import os
import socket
import sys
from pathlib import Path

from equss.errors import EqussError, SystemProblem

LOCK_NAME = ".lock"
_held: dict[str, list] = {}  # resolved lock path -> [file object, depth]


def _holder_text() -> str:
    cmd = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)) or "python"
    when = _dt.datetime.now().isoformat(timespec="seconds")
    return f"pid {os.getpid()} on {socket.gethostname()} ({cmd}), since {when}"


def holder(folder: str | os.PathLike) -> str | None:
    """Who holds (or last held) the lock of ``folder``, as written into the lock file."""
    try:
        return (Path(folder) / LOCK_NAME).read_text().strip() or None
    except OSError:
        return None


def acquire(folder: str | os.PathLike, wait: bool = False, what: str = "run folder") -> str:
    """Lock ``folder`` (created if needed); returns the key to pass to :func:`release`."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_NAME
        key = str(path.resolve())
        if key in _held:
            _held[key][1] += 1
            return key
        # never truncate before the lock is ours (the file names the current holder); never follow a
        # symbolic link planted as .lock (the file it points to would be overwritten)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        fh = os.fdopen(fd, "r+")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise EqussError(f"{str(path)!r} is a symbolic link; equss never writes through a link in a {what} "
                             "(remove it, then run again)") from None
        raise SystemProblem(f"cannot create or lock {what} {str(folder)!r} ({exc.strerror or exc}); "
                         "pick a writable folder") from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        fh.close()
        raise EqussError(f"{what} {str(folder)!r} is in use by {holder(folder) or 'another process'}; "
                         "wait for it to finish or use another --out") from None
    fh.seek(0)
    fh.truncate()
    fh.write(_holder_text() + "\n")
    fh.flush()
    _held[key] = [fh, 1]
    return key


def release(key: str) -> None:
    entry = _held.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _held[key]
        entry[0].close()  # closing the file drops the flock


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, wait: bool = False, what: str = "run folder"):
    """``with folder_lock(out): ...`` holds the exclusive lock of ``out`` for the block."""
    key = acquire(folder, wait=wait, what=what)
    try:
        yield
    finally:
        release(key)
