"""Where equss finds data and keeps its caches.

* Data root: the ``--data-root`` flag, else the ``EQUSS_DATA`` environment variable,
  else ``./data``.  The data root holds one folder per dataset (``CamVid/``,
  ``dubai-aerial/``, ``cocostuff/``, ``cityscapes/``, ``potsdam/``).
* Cache folder: ``EQUSS_CACHE``, else ``$XDG_CACHE_HOME/equss``, else
  ``~/.cache/equss``.  Converted backbone weights, feature caches, kNN files and the
  run cache live there.  Nothing is ever written under the data root, which may be
  read-only.
"""
from __future__ import annotations

import os
from pathlib import Path

from equss.errors import EqussError


def data_root(explicit: str | os.PathLike | None = None, must_exist: bool = True) -> Path:
    """Resolve the data root (flag > ``EQUSS_DATA`` > ``./data``)."""
    if explicit is not None:
        root = Path(explicit)
        origin = "--data-root"
    elif os.environ.get("EQUSS_DATA"):
        root = Path(os.environ["EQUSS_DATA"])
        origin = "EQUSS_DATA"
    else:
        root = Path("data")
        origin = "the default ./data"
    root = root.expanduser()
    if must_exist and not root.is_dir():
        raise EqussError(
            f"data root {str(root)!r} (from {origin}) does not exist; "
            "pass --data-root DIR or set EQUSS_DATA to the folder that holds the datasets"
        )
    return root


def cache_dir(sub: str | None = None, create: bool = True) -> Path:
    """The cache folder (``EQUSS_CACHE`` > ``$XDG_CACHE_HOME/equss`` > ``~/.cache/equss``)."""
    if os.environ.get("EQUSS_CACHE"):
        base = Path(os.environ["EQUSS_CACHE"])
    elif os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"]) / "equss"
    else:
        base = Path.home() / ".cache" / "equss"
    path = base.expanduser() / sub if sub else base.expanduser()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
