"""Checkpoints: atomic save, checked load, the model rebuilt from its saved config, and the
RNG state that makes a resumed run continue exactly."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from equss.config import Config, config_from_dict
from equss.errors import EqussError, SystemProblem
from equss.model import EQUSS
from equss.safeio import checkpoint_types, torch_load, write_atomic


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """``torch.save`` to a temp file (created exclusively, no symbolic link followed), fsync,
    then rename: a checkpoint is never half-written (:func:`equss.safeio.write_atomic`).

    When the write fails (disk full, folder not writable) the temp file is removed, the
    previous checkpoint at ``path`` is left as it was, and one :class:`EqussError` line says so.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda fh: torch.save(state, fh), binary=True)
    except EqussError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, or torch's RuntimeError wrapping one
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0][:200]
        kept = f"; the previous {path.name} is intact" if path.is_file() else ""
        last = path.with_name("last.pt")
        then = ("then continue with --resume (from " + str(last) + ")") if last.is_file() else "then run again"
        raise SystemProblem(f"cannot write checkpoint {path} ({reason}){kept}; free disk space or use another --out, "
                         f"{then}") from None
    return path


# What model_from_checkpoint needs (written by every `equss train` since version 1).
REQUIRED_KEYS = ("model", "config", "in_dim", "n_classes")


def load_checkpoint(path: str | os.PathLike) -> dict:
    """An equss checkpoint, read without running code (:func:`equss.safeio.torch_load`: tensors,
    plain data and numpy's RNG state only; anything else needs ``--trust-pickle``), with the
    entries :func:`model_from_checkpoint` needs checked."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise EqussError(f"checkpoint {str(path)!r} not found; train one with `equss train` or pass the right --checkpoint")
    state = torch_load(path, "checkpoint", allow=checkpoint_types())
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise EqussError(f"checkpoint {str(path)!r} is not an equss checkpoint (no model/config entries)")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise EqussError(f"checkpoint {str(path)!r} lacks {', '.join(missing)}: it was not written by `equss train`; "
                         "use a checkpoint from `equss train`")
    return state


def model_from_checkpoint(state: dict, device="cpu") -> tuple[EQUSS, Config]:
    try:
        cfg = config_from_dict(state["config"])
        model = EQUSS(cfg, int(state["in_dim"]), int(state["n_classes"]))
    except (TypeError, ValueError, AttributeError) as exc:
        raise EqussError(f"checkpoint config does not describe a model ({type(exc).__name__}: {exc}); "
                         "use a checkpoint from `equss train`") from None
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise EqussError(f"checkpoint weights do not match its config ({first}); the file was written by another config or version") from None
    return model.to(device).eval(), cfg


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
