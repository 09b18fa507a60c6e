"""Small file helpers used everywhere: atomic JSON writes and tolerant JSON reads.

A JSON file is written to ``NAME.tmp``, flushed and fsynced, then renamed over ``NAME``, so
a reader sees the old file or the new one, never half of one; no symbolic link is followed
(:mod:`equss.safeio`).  Non-finite floats are
written as ``null`` (JSON has no NaN); numpy scalars/arrays, tensors and paths are
converted.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from equss.safeio import write_atomic


def _default(obj):
    import numpy as np
    import torch

    if isinstance(obj, np.generic):
        return _finite(obj.item())
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, torch.Tensor):
        return _finite(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (recursively)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, data: Any, sort_keys: bool = False) -> Path:
    """Write ``data`` as JSON atomically (temp file, fsync, rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_finite(data), indent=2, sort_keys=sort_keys, default=_default, allow_nan=False) + "\n"
    write_atomic(path, lambda fh: fh.write(text))
    return path


def read_json(path: str | os.PathLike) -> Any | None:
    """The parsed JSON file, or None when it is missing or not valid JSON."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
