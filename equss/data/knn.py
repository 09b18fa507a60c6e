"""Image-level k nearest neighbours, as STEGO's ``src/precompute_knns.py`` computes them.

STEGO (``mhamilton723/STEGO@eb4d6b5``):

* ``precompute_knns.py`` ``get_feats``: last-layer DINO patch features, global average
  pooled over the patch grid (``.mean([2, 3])``), L2-normalised (``F.normalize(dim=1)``);
  then for blocks of query rows ``einsum("nf,mf->nm")`` against all images and
  ``torch.topk(sims, 30)``: the **30** most cosine-similar images are stored per image
  (``nns``, shape ``(N, 30)``), the image itself included -- it is its own best match, so
  it sits at rank 0.
* ``data.py`` ``ContrastiveSegDataset.__getitem__``: the positive image is
  ``nns[ind][torch.randint(low=1, high=num_neighbors + 1)]``, i.e. uniform over ranks
  ``1 .. num_neighbors`` inclusive; rank 0 (self) is never drawn.  ``num_neighbors`` is 7
  in ``configs/train_config.yml`` (the class default is 5).

Differences, all deliberate:

* STEGO relies on floating-point self-similarity being the maximum; we put each image
  at rank 0 explicitly (``self_first=True``), so ranks ``1..k-1`` are always the
  ``k - 1`` nearest *other* images, also with duplicate images.  Otherwise identical.
* STEGO's wrapper was never put in eval mode, so with ``dropout: True`` its DINO
  featurizer applied ``Dropout2d(0.1)`` to the features it pooled; we pool the clean
  cached features (deterministic).
* Query blocks, and for large N key blocks whose top-k are merged, keep peak memory at
  ``O(chunk * (k + key_chunk))`` plus the ``(N, C)`` pooled features -- linear in N.
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from equss import __version__
from equss.errors import EqussError, SystemProblem
from equss.data.features import FeatureCache, get_or_build_features, pooled_features
from equss.io import read_json, write_json
from equss.paths import cache_dir

DEFAULT_K = 30            # STEGO precompute_knns.py: torch.topk(pairwise_sims, 30)
DEFAULT_NUM_NEIGHBORS = 7  # STEGO configs/train_config.yml: num_neighbors: 7
POOLING = "gap-l2-cosine"
_SIM_BUDGET = 1 << 25     # float32 similarity entries per block (128 MiB)

__all__ = [
    "DEFAULT_K", "DEFAULT_NUM_NEIGHBORS", "compute_knn", "get_or_build_knn", "load_knn",
    "knn_path", "sample_neighbors",
]


# --------------------------------------------------------------------------- computation
def compute_knn(pooled: torch.Tensor | np.ndarray, k: int = DEFAULT_K, chunk: int = 1024,
                key_chunk: int | None = None, self_first: bool = True,
                device: str | torch.device = "cpu", progress: bool = False) -> np.ndarray:
    """Top-``k`` cosine neighbours of each row of ``pooled`` ``(N, C)``; returns int64 ``(N, k)``.

    Rows are L2-normalised, then queries are processed ``chunk`` rows at a time.  Keys
    are processed ``key_chunk`` rows at a time (default: all of them when a
    ``chunk x N`` block fits 128 MiB) and the per-block top-k merged, so memory stays
    ``O(chunk * (k + key_chunk))``.  Neighbours are ordered by decreasing similarity;
    with ``self_first`` each row's own index is at rank 0.
    """
    x = torch.as_tensor(np.asarray(pooled) if not torch.is_tensor(pooled) else pooled)
    if x.ndim != 2:
        raise ValueError(f"pooled features must be (N, C), got shape {tuple(x.shape)}")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be between 1 and the number of images ({n})")
    if chunk < 1 or (key_chunk is not None and key_chunk < 1):
        raise ValueError("chunk and key_chunk must be positive")
    x = F.normalize(x.to(device=device, dtype=torch.float32), dim=1)
    if key_chunk is None:
        key_chunk = n if chunk * n <= _SIM_BUDGET else max(k, _SIM_BUDGET // chunk)

    out = np.empty((n, k), dtype=np.int64)
    from equss.progress import bar as progress_bar

    starts = range(0, n, chunk)
    with torch.inference_mode():
        for s in progress_bar(starts, desc="knn", unit="block", disable=not progress):
            q = x[s:s + chunk]
            b = q.shape[0]
            best_v = best_i = None
            for t in range(0, n, key_chunk):
                keys = x[t:t + key_chunk]
                sims = q @ keys.T                                    # (b, kc)
                if self_first:                                       # own index -> rank 0
                    lo, hi = max(0, t - s), min(b, t + keys.shape[0] - s)
                    if lo < hi:
                        rows = torch.arange(lo, hi, device=sims.device)
                        sims[rows, rows + s - t] = float("inf")
                v, i = sims.topk(min(k, keys.shape[0]), dim=1)
                i = i + t
                if best_v is None:
                    best_v, best_i = v, i
                else:                                                # merge with running top-k
                    v = torch.cat([best_v, v], dim=1)
                    i = torch.cat([best_i, i], dim=1)
                    best_v, sel = v.topk(min(k, v.shape[1]), dim=1)
                    best_i = i.gather(1, sel)
                del sims
            out[s:s + b] = best_i.cpu().numpy()
    return out


# --------------------------------------------------------------------------- sampling
def _check_num_neighbors(nns: np.ndarray, num_neighbors: int) -> None:
    if not 1 <= num_neighbors <= nns.shape[1] - 1:
        raise ValueError(f"num_neighbors={num_neighbors} must be in 1..{nns.shape[1] - 1} "
                         f"(the kNN table stores {nns.shape[1]} ranks, rank 0 = the image itself)")


def sample_neighbors(nns: np.ndarray, idxs, num_neighbors: int = DEFAULT_NUM_NEIGHBORS,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Positive partners for images ``idxs``: ``nns[i, r]`` with ``r`` uniform in ``1..num_neighbors``,
    one draw per index (int64 tensor).

    As STEGO ``data.py`` ``ContrastiveSegDataset.__getitem__``
    (``torch.randint(low=1, high=num_neighbors + 1)``): rank 0, the image itself, is
    never drawn.  ``generator``: a ``torch.Generator`` (None: torch's global RNG, as STEGO).
    """
    _check_num_neighbors(nns, num_neighbors)
    idxs = torch.as_tensor(idxs, dtype=torch.long)
    ranks = torch.randint(1, num_neighbors + 1, idxs.shape, generator=generator)
    table = torch.as_tensor(np.asarray(nns), dtype=torch.long)
    return table[idxs, ranks]


# --------------------------------------------------------------------------- cache on disk
def knn_path(cache: FeatureCache, k: int = DEFAULT_K,
             root: str | os.PathLike | None = None) -> Path:
    """``cache_dir('knn') / <feature cache name>_k<k>.npy`` (meta alongside as ``.json``)."""
    base = Path(root) if root is not None else cache_dir("knn")
    return base / f"{cache.path.name}_k{int(k)}.npy"


def _expected_meta(cache: FeatureCache, k: int) -> dict[str, Any]:
    return {
        **cache.key,
        "k": int(k),
        "n": len(cache),
        "features_created": cache.meta.get("created"),
        "pooling": POOLING,
        "self_first": True,
    }


def _hint(cache: FeatureCache, k: int, rebuild: bool = False) -> str:
    from equss.data.features import command

    cmd = command(getattr(cache, "args", None), "knn", ["--k", str(k)] + (["--rebuild"] if rebuild else []))
    if cmd:
        return f"`{cmd}`"
    flag, kw = (" --rebuild", ", rebuild=True") if rebuild else ("", "")
    return (f"`equss knn DATASET --split SPLIT --backbone {cache.key['backbone']} --k {k}{flag}` with this "
            f"dataset's options (or get_or_build_knn(..., k={k}{kw}))")


def _problem(cache: FeatureCache, k: int, root=None) -> tuple[np.ndarray | None, str]:
    """(the kNN table, "") when the file on disk is current, else (None, what is wrong)."""
    path = knn_path(cache, k, root)
    meta = read_json(path.with_suffix(".json"))
    if meta is None or not meta.get("complete") or not path.exists():
        return None, "not found"
    expect = _expected_meta(cache, k)
    diff = [f"{f}: file {meta.get(f)!r} != now {v!r}" for f, v in expect.items() if meta.get(f) != v]
    if diff:
        return None, f"stale ({'; '.join(diff)})"
    try:
        nns = np.load(path)
    except (OSError, ValueError) as exc:
        return None, f"damaged ({type(exc).__name__})"
    if nns.shape != (len(cache), k):
        return None, f"damaged (shape {nns.shape})"
    if not np.issubdtype(nns.dtype, np.integer) or (nns.size and (nns.min() < 0 or nns.max() >= len(cache))):
        return None, f"damaged (image indices outside 0..{len(cache) - 1})"
    return nns, ""


def load_knn(cache: FeatureCache, k: int = DEFAULT_K,
             root: str | os.PathLike | None = None) -> np.ndarray:
    """Load the kNN table of ``cache``; missing or stale -> :class:`EqussError` naming the fix."""
    nns, problem = _problem(cache, k, root)
    if nns is None:
        path = knn_path(cache, k, root)
        if problem == "not found":
            raise EqussError(f"kNN file {str(path)!r} not found; compute it with " + _hint(cache, k))
        raise EqussError(f"kNN file {str(path)!r} is {problem}; recompute it with " + _hint(cache, k, rebuild=True))
    return nns


def get_or_build_knn(source, dataset=None, k: int = DEFAULT_K, chunk: int = 1024,
                     key_chunk: int | None = None, rebuild: bool = False,
                     root: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                     progress: bool = True, **feature_kwargs) -> np.ndarray:
    """kNN table ``(N, k)`` int64 for a :class:`FeatureCache`, or for ``backbone, dataset``.

    With a backbone, its feature cache is built first if needed (``feature_kwargs`` go to
    :func:`equss.data.features.get_or_build_features`).  The table is stored in
    ``cache_dir('knn')`` with a JSON meta keyed by backbone, weights, preprocessing and
    k; a stale file raises :class:`EqussError` unless ``rebuild``.
    """
    if isinstance(source, FeatureCache):
        cache = source
    else:
        if dataset is None:
            raise TypeError("get_or_build_knn(backbone, dataset, ...) needs the dataset")
        cache = get_or_build_features(source, dataset, device=device, progress=progress,
                                      **feature_kwargs)
    n = len(cache)
    if not 1 <= k <= n:
        raise EqussError(f"k={k} neighbours requested but the split has only {n} images; "
                         f"pass --k {max(1, n)} or less")
    path = knn_path(cache, k, root)
    meta_path = path.with_suffix(".json")
    if not rebuild and meta_path.exists():
        nns, problem = _problem(cache, k, root)
        if nns is not None:
            return nns
        # derived data: a kNN file of a rebuilt (or changed) feature cache is simply recomputed
        from equss.data.features import notice

        notice(f"kNN file {path.name} is {problem.split(' (')[0]} (its feature cache changed); recomputing it")

    nns = compute_knn(pooled_features(cache), k=k, chunk=chunk, key_chunk=key_chunk,
                      device=device, progress=progress)
    tmp = path.with_name(path.stem + ".tmp.npy")
    try:
        meta_path.unlink(missing_ok=True)  # invalid until written again (meta goes last)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp, nns)
        os.replace(tmp, path)
        meta = {**_expected_meta(cache, k), "dtype": "int64", "equss_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds"),
                "source": "STEGO src/precompute_knns.py @eb4d6b5 semantics", "complete": True}
        write_json(meta_path, meta, sort_keys=True)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SystemProblem(f"cannot write the kNN file {path} ({exc.strerror or exc}); free disk space, or set "
                         "EQUSS_CACHE to a writable folder on a disk with room") from None
    return nns
