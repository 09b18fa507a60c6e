"""Checkpoints: atomic save, checked load, the model rebuilt from its saved config, and the
RNG state that makes a resumed run continue exactly."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from equss.config import Config, config_from_dict
from equss.errors import EqussError
from equss.model import EQUSS


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """``torch.save`` to a temp file, fsync, then rename: a checkpoint is never half-written.

    When the write fails (disk full, folder not writable) the temp file is removed, the
    previous checkpoint at ``path`` is left as it was, and one :class:`EqussError` line says so.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except Exception as exc:  # noqa: BLE001 - OSError, or torch's RuntimeError wrapping one
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0][:200]
        kept = f"; the previous {path.name} is intact" if path.is_file() else ""
        raise EqussError(f"cannot write checkpoint {path} ({reason}){kept}; free disk space or use another --out, "
                         "then resume with --resume") from None
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise EqussError(f"checkpoint {str(path)!r} not found; train one with `equss train` or pass the right --checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise EqussError(f"checkpoint {str(path)!r} is corrupt or not an equss checkpoint ({type(exc).__name__}); retrain or use another file") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise EqussError(f"checkpoint {str(path)!r} is not an equss checkpoint (no model/config entries)")
    return state


def model_from_checkpoint(state: dict, device="cpu") -> tuple[EQUSS, Config]:
    cfg = config_from_dict(state["config"])
    model = EQUSS(cfg, state["in_dim"], state["n_classes"])
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
