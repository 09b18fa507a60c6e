"""Provenance recorded beside every result: commit, machine, versions, time."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path

import torch

from equss import __version__
from equss.device import cpu_model
from equss.io import write_json  # noqa: F401  (re-exported: provenance files are written with it)


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """The git commit of the equss source tree ("+dirty" when it has uncommitted changes)."""
    where = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
            return "unknown"  # not a git checkout (e.g. a copied tree)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(**extra) -> dict:
    """A dict describing where and how a result was produced; ``extra`` adds run fields."""
    info = {
        "equss_version": __version__,
        "git_commit": git_commit(),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host_platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    info.update(extra)
    return info
