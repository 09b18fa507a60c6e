"""On-disk feature cache: frozen-backbone patch features for every image of a dataset.

A cache holds, for one (backbone, weights, preprocessing, normalize) combination:

* ``feats.npy``  float16 ``(N, C, h, w)`` patch features (``h = H / patch``), written
  and read as numpy memmaps, so a cache larger than memory is fine;
* ``labels.npy`` int8 (int16 when a dataset has more than 127 classes) ``(N, H, W)``
  labels at image resolution, ``-1`` = ignore (for probe training and evaluation);
* ``meta.json``  the key fields (backbone name, weights_id, dataset preproc_id,
  normalize), shapes, dtype, creation time, equss version and a ``complete`` flag;
* ``progress.json`` while building: ``done`` = how many leading images are written
  and flushed.  An interrupted build continues from there on the next call.

The folder is ``cache_dir('features') / <readable name>_<hash>`` where the hash covers
the key fields, so changing the backbone, its weights, the preprocessing or the data root
(part of the dataset's ``preproc_id``) gives a new cache.  ``meta.json`` also records what
the cache was built from (``sources``: the data root and a hash of every image and label
file's path, size and modification time, :meth:`equss.data.base.SegDataset.fingerprint`);
when the files changed since (a label fixed in place, a file replaced) the cache is rebuilt
with a one-line notice, and kNN files computed from the old cache are recomputed too
(:mod:`equss.data.knn`).  Before the memmaps are created the free space is checked and the
files are allocated (``posix_fallocate``), so a full disk is one clear error, never SIGBUS.  ``meta.json`` is rewritten with ``complete: true`` as the very last step of a
build, so a cache is either complete or is resumed/rebuilt, never silently half-used.
A complete cache whose meta does not match what was asked for (for example the dataset
now has a different number of images) raises :class:`EqussError` naming the exact
``equss features ... --rebuild`` command for that cache.

STEGO (``mhamilton723/STEGO@eb4d6b5``) recomputes backbone features every step; the
cache is ours.  It serves the kNN computation (``equss.data.knn``, STEGO
``src/precompute_knns.py``), the raw-feature baselines and probe training.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from equss import __version__
from equss.errors import EqussError, SystemProblem
from equss.io import read_json, write_json
from equss.paths import cache_dir

FORMAT_VERSION = 1
FEATURE_DTYPE = "float16"
KEY_FIELDS = ("backbone", "weights_id", "preproc_id", "normalize")

__all__ = [
    "FeatureCache",
    "feature_key",
    "feature_cache_path",
    "get_or_build_features",
    "open_features",
    "pooled_features",
]


# --------------------------------------------------------------------------- keys / paths
def feature_key(backbone_name: str, weights_id: str, preproc_id: str,
                normalize: bool = False) -> dict[str, Any]:
    """The key fields that identify a feature cache."""
    return {
        "backbone": str(backbone_name),
        "weights_id": str(weights_id),
        "preproc_id": str(preproc_id),
        "normalize": bool(normalize),
    }


def _key_of(backbone, dataset, normalize: bool) -> dict[str, Any]:
    for attr in ("name", "weights_id"):
        if not hasattr(backbone, attr):
            raise TypeError(f"backbone has no attribute {attr!r} (expected an equss Backbone)")
    if not hasattr(dataset, "preproc_id"):
        raise TypeError("dataset has no attribute 'preproc_id' (expected an equss dataset)")
    return feature_key(backbone.name, backbone.weights_id, dataset.preproc_id, normalize)


def _key_hash(key: dict[str, Any]) -> str:
    blob = json.dumps({**key, "format": FORMAT_VERSION, "dtype": FEATURE_DTYPE},
                      sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def _safe(text: str, limit: int = 48) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:limit] or "x"


def cache_name(key: dict[str, Any]) -> str:
    """Folder name of a cache: readable prefix plus a hash of all key fields."""
    norm = "_norm" if key["normalize"] else ""
    return f"{_safe(key['backbone'], 40)}_{_safe(key['preproc_id'])}{norm}_{_key_hash(key)}"


def feature_cache_path(key: dict[str, Any], root: str | os.PathLike | None = None) -> Path:
    """Where the cache for ``key`` lives (``root`` defaults to ``cache_dir('features')``)."""
    base = Path(root) if root is not None else cache_dir("features")
    return base / cache_name(key)


# --------------------------------------------------------------------------- helpers
def _label_dtype(n_classes: int | None) -> np.dtype:
    return np.dtype(np.int8) if (n_classes is not None and n_classes <= 127) else np.dtype(np.int16)


def cache_args(backbone, dataset) -> list[str] | None:
    """``equss features`` / ``equss knn`` arguments that select exactly this cache (None when
    the dataset cannot say how it was built, e.g. a custom Python dataset)."""
    args = dataset.cache_args() if hasattr(dataset, "cache_args") else None
    if args is None:
        return None
    args = list(args) + ["--backbone", str(backbone.name)]
    wpath = getattr(backbone, "weights_path", None)
    return args + (["--weights", str(wpath)] if wpath else [])


def command(args: list[str] | None, what: str = "features", extra: list[str] = ()) -> str | None:
    """The shell command ``equss WHAT ARGS... EXTRA...`` (None without ``args``)."""
    if not args:
        return None
    import shlex

    return "equss " + shlex.join([what, *args, *extra])


def _rebuild_hint(key: dict[str, Any], args: list[str] | None = None) -> str:
    cmd = command(args, "features", ["--rebuild"])
    if cmd:
        return f"rebuild it with `{cmd}`"
    return (f"rebuild it with `equss features DATASET --split SPLIT --backbone {key['backbone']} "
            f"--rebuild` with this dataset's options (or get_or_build_features(..., rebuild=True))")


def notice(message: str) -> None:
    """A one-line note (a cache being rebuilt and why): on stderr, or into the progress log when a
    notebook runner reads one (the runner shows it on the terminal; the executed notebook keeps no
    cache notices)."""
    from equss import progress

    if progress.log_path():
        progress.note(f"notice: {message}")
    else:
        print(f"equss: notice: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the cache
class FeatureCache:
    """A complete feature cache, opened read-only as memmaps.

    ``feats``  float16 memmap ``(N, C, h, w)``; ``labels`` int8/int16 memmap
    ``(N, H, W)``; ``meta`` the dict from ``meta.json``; ``path`` the folder.
    ``cache[i]`` returns ``(float32 tensor (C, h, w), int64 tensor (H, W))``.
    """

    def __init__(self, path: str | os.PathLike, expect: dict[str, Any] | None = None,
                 expect_n: int | None = None, args: list[str] | None = None):
        self.path = Path(path)
        meta = read_json(self.path / "meta.json")
        args = args or (meta or {}).get("args")
        if meta is None or not meta.get("complete"):
            raise EqussError(
                f"feature cache {str(self.path)!r} is missing or incomplete; build it with "
                "`equss features DATASET --split SPLIT --backbone NAME`"
            )
        key = {f: meta.get(f) for f in KEY_FIELDS}
        if expect is not None:
            diff = [f"{f}: cached {key.get(f)!r} != requested {expect[f]!r}"
                    for f in KEY_FIELDS if key.get(f) != expect[f]]
            if diff:
                raise EqussError(f"feature cache {str(self.path)!r} is stale ({'; '.join(diff)}); "
                                 + _rebuild_hint(expect, args))
        if expect_n is not None and meta.get("n") != expect_n:
            raise EqussError(
                f"feature cache {str(self.path)!r} is stale (it holds {meta.get('n')} images, the "
                f"dataset has {expect_n}); " + _rebuild_hint(expect or key, args))
        self.meta = meta
        self.key = key
        try:
            self.feats = np.load(self.path / "feats.npy", mmap_mode="r")
            self.labels = np.load(self.path / "labels.npy", mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise EqussError(f"feature cache {str(self.path)!r} is damaged ({exc}); "
                             + _rebuild_hint(key, args)) from None
        shape = (meta["n"], meta["C"], meta["h"], meta["w"])
        if self.feats.shape != shape or self.labels.shape[0] != meta["n"]:
            raise EqussError(f"feature cache {str(self.path)!r} is damaged (feats {self.feats.shape} "
                             f"!= meta {shape}); " + _rebuild_hint(key, args))
        self.args = args

    def __len__(self) -> int:
        return int(self.meta["n"])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        feats = torch.from_numpy(np.asarray(self.feats[i], dtype=np.float32))
        labels = torch.from_numpy(np.asarray(self.labels[i], dtype=np.int64))
        return feats, labels

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, C, h, w) float32 and labels (B, H, W) int64 of ``indices``, in order."""
        idx = [int(i) for i in indices]
        feats = torch.from_numpy(np.stack([self.feats[i] for i in idx]).astype(np.float32))
        labels = torch.from_numpy(np.stack([self.labels[i] for i in idx]).astype(np.int64))
        return feats, labels

    def labelled_pixels(self, chunk: int = 256) -> int:
        """How many label pixels are not ignore (-1), read in chunks."""
        return sum(int((np.asarray(self.labels[s:s + chunk]) >= 0).sum()) for s in range(0, len(self), chunk))

    @property
    def nbytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def __repr__(self) -> str:
        m = self.meta
        return (f"FeatureCache({str(self.path)!r}, n={m['n']}, C={m['C']}, h={m['h']}, "
                f"w={m['w']}, backbone={m['backbone']!r}, preproc_id={m['preproc_id']!r})")


def open_features(backbone_name: str, weights_id: str, preproc_id: str, normalize: bool = False,
                  root: str | os.PathLike | None = None) -> FeatureCache:
    """Open an existing complete cache by its key fields (no backbone needed)."""
    key = feature_key(backbone_name, weights_id, preproc_id, normalize)
    return FeatureCache(feature_cache_path(key, root), expect=key)


# --------------------------------------------------------------------------- building
def _extract(backbone, images: torch.Tensor, device, normalize: bool) -> torch.Tensor:
    images = images.to(device)
    out = backbone(images, normalize=normalize)
    if out.ndim != 4 or out.shape[0] != images.shape[0]:
        raise RuntimeError(f"backbone returned shape {tuple(out.shape)}, expected (B, C, h, w)")
    return out


def _sources(dataset) -> dict | None:
    fp = getattr(dataset, "fingerprint", None)
    return fp() if callable(fp) else None


def _content(dataset) -> str | None:
    """The dataset files' content hash (a cache whose files only got new mtimes is reused)."""
    fn = getattr(dataset, "content_hash", None)
    return fn() if callable(fn) else None


def _preflight(path: Path, nbytes: int) -> None:
    """One clear error when the cache will not fit on its disk (a memmap on a full disk
    would otherwise die with SIGBUS)."""
    free = shutil.disk_usage(path).free
    if nbytes > free:
        raise SystemProblem(f"the feature cache needs {human_size(nbytes)} but only {human_size(free)} is free on the disk "
                         f"of {path}; free space or set EQUSS_CACHE to a folder on a larger disk")


def _allocate(file: Path) -> None:
    """Reserve the disk blocks of a freshly created (sparse) .npy memmap file."""
    size = file.stat().st_size
    fd = os.open(file, os.O_RDWR)
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def human_size(nbytes: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"


def get_or_build_features(backbone, dataset, batch_size: int = 8, num_workers: int = 0,
                          device: str | torch.device = "cpu", rebuild: bool = False,
                          normalize: bool = False, root: str | os.PathLike | None = None,
                          progress: bool = True) -> FeatureCache:
    """Return the feature cache of ``backbone`` on ``dataset``, building what is missing.

    Images are taken in dataset order (no shuffling), run through the backbone in
    eval mode under ``torch.inference_mode`` and written batch by batch; after each
    batch the memmaps are flushed and ``progress.json`` records how many images are
    done, so an interrupted build continues where it stopped.  ``meta.json`` gets
    ``complete: true`` last.  ``rebuild=True`` deletes the cache first.  A cache built
    from other data files (``dataset.fingerprint()`` differs) is rebuilt with a notice.
    Writing problems (disk full, cache folder not writable) are one :class:`EqussError`.
    """
    key = _key_of(backbone, dataset, normalize)
    path = feature_cache_path(key, root)
    n = len(dataset)
    if n == 0:
        raise EqussError(f"dataset {key['preproc_id']!r} is empty; nothing to cache")
    sources = _sources(dataset)
    args = cache_args(backbone, dataset)
    try:
        return _get_or_build(backbone, dataset, key, path, n, sources, args, batch_size, num_workers,
                             device, rebuild, normalize, progress)
    except OSError as exc:
        raise SystemProblem(f"cannot write the feature cache {path} ({exc.strerror or exc}); free disk space, or set "
                         "EQUSS_CACHE to a writable folder on a disk with room") from None


def _get_or_build(backbone, dataset, key, path: Path, n: int, sources, args, batch_size, num_workers, device,
                  rebuild, normalize, progress) -> FeatureCache:
    if rebuild and path.exists():
        shutil.rmtree(path)

    meta = read_json(path / "meta.json")
    if meta is not None and meta.get("complete"):
        if sources is None or meta.get("sources") == sources:
            return FeatureCache(path, expect=key, expect_n=n, args=args)
        old = meta.get("sources") or {}
        if old.get("root") == sources["root"] and meta.get("content") and meta["content"] == _content(dataset):
            # only sizes/mtimes look different (a fresh copy of the same data): keep the cache
            write_json(path / "meta.json", {**meta, "sources": sources}, sort_keys=True)
            return FeatureCache(path, expect=key, expect_n=n, args=args)
        why = (f"the data root changed ({old.get('root')} -> {sources['root']})" if old.get("root") != sources["root"]
               else f"image/label files changed since it was built ({sources['n_files']} files; sizes or "
                    "modification times differ)")
        notice(f"feature cache {path.name} is out of date: {why}; rebuilding it")
        meta = None
        shutil.rmtree(path)

    # resume an interrupted build when it is consistent with this request, else start over
    done = 0
    if meta is not None:
        prog = read_json(path / "progress.json") or {}
        same = (all(meta.get(f) == key[f] for f in KEY_FIELDS) and meta.get("n") == n
                and meta.get("sources") == sources)
        if same and (path / "feats.npy").exists() and (path / "labels.npy").exists():
            done = int(prog.get("done", 0))
        if not same or done <= 0 or done > n:
            done = 0
    if done == 0 and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)

    feats_mm = labels_mm = None
    if done > 0:
        feats_mm = np.lib.format.open_memmap(path / "feats.npy", mode="r+")
        labels_mm = np.lib.format.open_memmap(path / "labels.npy", mode="r+")

    n_classes = getattr(dataset, "n_classes", None)
    lab_dtype = _label_dtype(n_classes)
    lab_info = np.iinfo(lab_dtype)

    from equss.progress import bar as progress_bar

    todo = dataset if done == 0 else torch.utils.data.Subset(dataset, range(done, n))
    loader = torch.utils.data.DataLoader(todo, batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers, drop_last=False)
    was_training = backbone.training
    backbone.eval()
    bar = progress_bar(total=n, initial=done, desc=f"features {key['backbone']} / {key['preproc_id']}",
               unit="img", disable=not progress)
    try:
        with torch.inference_mode():
            for batch in loader:
                images, labels = batch[0], batch[1]
                out = _extract(backbone, images, device, normalize)
                feats = out.float().cpu().numpy().astype(np.float16)
                labels = labels.cpu().numpy()
                if feats_mm is None:
                    C, h, w = feats.shape[1:]
                    label_shape = labels.shape[1:]
                    try:
                        _preflight(path, n * int(np.prod(feats.shape[1:])) * 2
                                   + n * int(np.prod(label_shape)) * lab_dtype.itemsize)
                        feats_mm = np.lib.format.open_memmap(
                            path / "feats.npy", mode="w+", dtype=np.float16, shape=(n, C, h, w))
                        labels_mm = np.lib.format.open_memmap(
                            path / "labels.npy", mode="w+", dtype=lab_dtype, shape=(n,) + label_shape)
                        _allocate(path / "feats.npy")
                        _allocate(path / "labels.npy")
                    except (OSError, EqussError):
                        feats_mm = labels_mm = None  # nothing written yet: leave no folder behind
                        shutil.rmtree(path, ignore_errors=True)
                        raise
                    meta = {
                        **key, "n": n, "C": int(C), "h": int(h), "w": int(w),
                        "label_shape": list(labels.shape[1:]), "dtype": FEATURE_DTYPE,
                        "label_dtype": lab_dtype.name, "n_classes": n_classes,
                        "patch_size": getattr(backbone, "patch_size", None),
                        "format": FORMAT_VERSION, "equss_version": __version__,
                        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds"),
                        "sources": sources, "content": _content(dataset), "args": args,
                        "complete": False,
                    }
                    write_json(path / "meta.json", meta, sort_keys=True)
                if feats.shape[1:] != feats_mm.shape[1:] or labels.shape[1:] != labels_mm.shape[1:]:
                    raise EqussError(
                        f"image {done}: features {feats.shape[1:]} / labels {labels.shape[1:]} differ "
                        f"from the first images' {feats_mm.shape[1:]} / {labels_mm.shape[1:]}; "
                        "all images of a dataset must have the same size")
                if labels.size and (labels.min() < lab_info.min or labels.max() > lab_info.max):
                    raise EqussError(f"labels out of the {lab_dtype.name} range near image {done}; "
                                     "the dataset's n_classes attribute is wrong")
                if not np.isfinite(feats).all():
                    raise EqussError(f"the backbone gave NaN or infinite features near image {done}; check its "
                                     "weights (train.weights / --weights) and the input images")
                b = feats.shape[0]
                feats_mm[done:done + b] = feats
                labels_mm[done:done + b] = labels.astype(lab_dtype)
                feats_mm.flush()
                labels_mm.flush()
                done += b
                write_json(path / "progress.json", {"done": done, "n": n}, sort_keys=True)
                bar.update(b)
    finally:
        bar.close()
        backbone.train(was_training)

    if done != n:  # the loader yielded fewer items than len(dataset)
        raise EqussError(f"dataset yielded {done} images but reports len {n}")
    del feats_mm, labels_mm
    meta["complete"] = True
    meta["completed"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")
    write_json(path / "meta.json", meta, sort_keys=True)
    try:
        (path / "progress.json").unlink()
    except FileNotFoundError:
        pass
    _report_labels(dataset)
    return FeatureCache(path, expect=key, expect_n=n, args=args)


def _report_labels(dataset) -> None:
    """One warning line when label values outside the classes were read (they became ignore)."""
    report = getattr(dataset, "label_report", None)
    text = report() if callable(report) else None
    if text:
        print(f"equss: warning: {text}", file=sys.stderr, flush=True)


def pooled_features(cache: FeatureCache, chunk: int = 256) -> np.ndarray:
    """Global-average-pooled features ``(N, C)`` float32 (mean over h, w), read in chunks."""
    n, C = len(cache), cache.meta["C"]
    out = np.empty((n, C), dtype=np.float32)
    for s in range(0, n, chunk):
        block = np.asarray(cache.feats[s:s + chunk], dtype=np.float32)
        out[s:s + chunk] = block.mean(axis=(2, 3))
    return out
