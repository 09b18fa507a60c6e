"""The worker side of :mod:`equss.paper.executor`: what one job does in its process.

A job is one folder of the run cache: a training with all its evaluations (``kind="run"``), a
raw-backbone baseline (``kind="baseline"``), or the feature caches and kNN table that the runs
of one data set share (``kind="prepare"``, done before the runs that read them fan out: the
feature cache has no lock of its own, so two workers must never build the same cache at once).
A job is a plain dict (picklable for ``spawn`` and submitit): ``{"kind", "name", "cfg", "evals":
[[crf, flip, resolution], ...], "steps": bool, "posthoc": bool, "records": path or None}`` (a prepare
job: ``"flip"``, ``"baseline"``, ``"resolutions"``: which caches).  With ``records`` a job takes what
the run records of earlier sessions hold (:func:`equss.paper.runs.run` with ``records=``) and trains
only when a missing evaluation's checkpoint is missing too.

:func:`call` is what every executor runs in its worker: it fixes the thread count first
(``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` and ``torch.set_num_threads``), says which executor
runs the job (``EQUSS_EXECUTOR``, ``EQUSS_THREADS``: :func:`equss.provenance.provenance` records
both in every run's provenance), then does the job through the run cache of
:mod:`equss.paper.runs`, the same code as the serial path, so a run's numbers do not depend on
the executor, only on the thread count.  :func:`pool_worker` is the local process pool's worker: it sets the threads once and then does
one job after another, each job's output in its own log file and its outcome sent back on a pipe,
so a worker that dies (killed, out of memory) is seen by its exit status and fails the job it held.
"""
from __future__ import annotations

import os
import sys
import time
import traceback

ENV_EXECUTOR = "EQUSS_EXECUTOR"
ENV_THREADS = "EQUSS_THREADS"


def set_threads(threads: int | None) -> None:
    """Intra-op threads of this process (and of the processes it starts), before heavy work."""
    if not threads:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(int(threads))
    os.environ[ENV_THREADS] = str(int(threads))
    import torch

    torch.set_num_threads(int(threads))


def call(fn, item, threads: int | None, executor: str):
    """``fn(item)`` in a worker, with ``threads`` intra-op threads and the executor named in the
    environment (recorded in the provenance of what ``fn`` writes)."""
    os.environ[ENV_EXECUTOR] = executor
    set_threads(threads)
    return fn(item)


def guarded_call(fn, item, threads: int | None, executor: str) -> dict:
    """:func:`call` for a submitit job: ``{"ok": true, "value": ...}``, or ``{"ok": false, "error": one
    line}`` for an exception (the traceback goes to the job's stderr), so that a job without a
    result means only one thing: its process died."""
    try:
        return {"ok": True, "value": call(fn, item, threads, executor)}
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        traceback.print_exc()
        return {"ok": False, "error": one_line(exc)}


def one_line(exc: BaseException) -> str:
    """An exception as one line: an EqussError's own message, else ``Type: message``."""
    from equss.errors import EqussError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, EqussError) and text else f"{type(exc).__name__}: {text}".rstrip(": ")


# ---------------------------------------------------------------------------- the jobs
def do(job: dict) -> dict:
    """Make sure ``job`` is in the run cache (train, evaluate, baseline, caches); returns
    ``{"name", "wall_s", "kind"}``."""
    t0 = time.perf_counter()
    kind = job["kind"]
    if kind == "prepare":
        prepare(job["cfg"], flip=bool(job.get("flip")), baseline=bool(job.get("baseline")),
                progress=job.get("progress", False), resolutions=job.get("resolutions") or ())
    elif kind == "baseline":
        from equss.paper import runs

        runs.baseline(job["cfg"], progress=job.get("progress", False), records=job.get("records"))
    elif kind == "run":
        from equss.paper import runs

        cfg, progress, records = job["cfg"], job.get("progress", False), job.get("records")
        result = None
        for e in job["evals"]:
            crf, flip, res = e[0], e[1], (e[2] if len(e) > 2 else None)
            result = runs.run(cfg, crf=bool(crf), flip=flip, progress=progress, records=records, resolution=res)
        if job.get("steps"):
            result = result or runs.run(cfg, progress=progress, records=records)
            runs.step_evaluations(cfg, result, progress=progress, records=records)
        if job.get("posthoc"):
            runs.posthoc(cfg, progress=progress, records=records)
    else:
        raise ValueError(f"unknown job kind {kind!r}")
    return {"name": job["name"], "kind": kind, "wall_s": round(time.perf_counter() - t0, 3)}


def prepare(cfg, flip: bool = False, baseline: bool = False, progress: bool = False, resolutions=()) -> None:
    """Build the caches that training (:meth:`equss.pipeline.train.Trainer._setup_data`), test
    evaluation (:func:`equss.pipeline.evaluate.evaluate_checkpoint`; also at each of ``resolutions``)
    and the baseline (:func:`equss.pipeline.baseline.run_baseline`) and post-hoc probes of ``cfg``
    read, with the same calls, so that the runs fanned out afterwards only read them."""
    from equss.data.features import get_or_build_features
    from equss.data.knn import get_or_build_knn
    from equss.device import resolve_device
    from equss.pipeline.inputs import HFlip, make_backbone, make_dataset

    d = cfg.data
    device = resolve_device(cfg.train.device)
    backbone = make_backbone(cfg, device=device)
    train_set = make_dataset(cfg, d.train_split, train=True)
    train_cache = get_or_build_features(backbone, train_set, device=device, progress=progress)
    get_or_build_knn(train_cache, k=min(d.knn_k, len(train_set)))
    if baseline:  # the baseline's train split (no five-crop: the same cache unless data.five_crop)
        get_or_build_features(backbone, make_dataset(cfg, d.train_split, resolution=d.resolution), device=device,
                              progress=progress)
    if cfg.train.val_every:
        get_or_build_features(backbone, make_dataset(cfg, d.val_split), device=device, progress=progress)
    test_set = make_dataset(cfg, d.test_split)
    get_or_build_features(backbone, test_set, device=device, progress=progress)
    if flip:
        get_or_build_features(backbone, HFlip(test_set), device=device, progress=progress)
    for res in resolutions:  # the resolution check: the test split at another crop size
        get_or_build_features(backbone, make_dataset(cfg, d.test_split, resolution=int(res)), device=device,
                              progress=progress)


# ---------------------------------------------------------------------------- the local pool's worker
def pool_worker(fn, threads: int, executor: str, conn) -> None:
    """A local-pool worker (``spawn``): threads set once, then ``fn(item)`` for each ``(item, log
    path)`` received on ``conn`` (``None``: stop), with stdout and stderr appended to that log,
    answering ``{"ok": true, "value": ...}`` or ``{"ok": false, "error": one line}``."""
    os.environ[ENV_EXECUTOR] = executor
    set_threads(threads)
    saved = os.dup(1), os.dup(2)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        item, log_path = msg
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        stop = False
        try:
            outcome = {"ok": True, "value": fn(item)}
        except BaseException as exc:  # noqa: BLE001 - every failure is reported to the parent as one line
            from equss.errors import Interrupted

            traceback.print_exc()
            outcome = {"ok": False, "error": one_line(exc)}
            stop = isinstance(exc, (Interrupted, KeyboardInterrupt, SystemExit))  # SIGTERM/SIGINT: end here
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        conn.send(outcome)
        if stop:
            return


# ---------------------------------------------------------------------------- measurements (executor.layout, calibrate)
def _synthetic_trainer(cfg, in_dim: int, n_classes: int):
    """The model, optimisers and one step function of :class:`equss.pipeline.train.Trainer` on random
    features of ``cfg``'s shapes (no data, no backbone): what a training step costs, not its numbers."""
    import torch

    from equss.model import EQUSS

    torch.manual_seed(0)
    t, d = cfg.train, cfg.data
    h = d.resolution // _patch(cfg)
    label = d.probe_label_size or d.resolution
    model = EQUSS(cfg, in_dim, n_classes)
    opts = [torch.optim.Adam(model.model_parameters(), lr=t.lr, fused=True),
            torch.optim.Adam(model.cluster_probe.parameters(), lr=t.probe_lr, fused=True),
            torch.optim.Adam(model.linear_probe.parameters(), lr=t.probe_lr, fused=True)]
    feats = torch.randn(t.batch_size, in_dim, h, h)
    pos = torch.randn(t.batch_size, in_dim, h, h)
    labels = torch.randint(0, n_classes, (t.batch_size, label, label))

    def step():
        model.train()
        for o in opts:
            o.zero_grad(set_to_none=True)
        losses = model.training_losses(feats, pos, labels)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.model_parameters(), t.clip_grad if t.clip_grad > 0 else float("inf"))
        for o in opts:
            o.step()

    return model, step


def _patch(cfg) -> int:
    from equss.backbones.vit import BACKBONES

    return BACKBONES[cfg.train.backbone].patch_size


def _embed(cfg) -> int:
    from equss.backbones.vit import BACKBONES

    return BACKBONES[cfg.train.backbone].embed_dim


def time_steps(cfg, steps: int, barrier=None) -> float:
    """Median seconds of the synthetic training step of ``cfg`` (after one untimed step, and after
    ``barrier`` when processes are timed together)."""
    from equss.data import dataset_info

    _, step = _synthetic_trainer(cfg, _embed(cfg), dataset_info(cfg.data.dataset).n_classes)
    step()
    if barrier is not None:
        barrier.wait()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def layout_child(threads: int, steps: int, barrier, queue, t_parent: float) -> None:
    """One process of :func:`equss.paper.executor.measure_layout`: the proxy ``camvid-equss`` step."""
    set_threads(threads)
    from equss.config import load_config

    startup = time.perf_counter() - t_parent  # spawn + imports (perf_counter is system-wide on Linux)
    cfg = load_config("camvid-equss", "proxy", overrides=["train.device=cpu"])
    queue.put({"step_s": time_steps(cfg, steps, barrier), "startup_s": startup})


class _FakeCache:
    """Random features and labels of an evaluation's shapes (duck-types FeatureCache.batch)."""

    def __init__(self, n: int, c: int, h: int, size: int, n_classes: int):
        import torch

        g = torch.Generator().manual_seed(0)
        self.feats = torch.randn(n, c, h, h, generator=g)
        self.labels = torch.randint(0, n_classes, (n, size, size), generator=g)

    def __len__(self):
        return len(self.feats)

    def batch(self, idx):
        return self.feats[idx], self.labels[idx]


def calibrate_shapes(item: dict) -> dict:
    """:func:`equss.paper.executor.calibrate` in a worker: for each ``(key, cfg)`` of
    ``item["shapes"]`` the seconds per synthetic training step, per evaluated image (plain,
    flip-averaged, and with ``item["crf"]`` the CRF per image and probe) and per backbone forward
    (random weights of the same architecture) at the training and at the evaluation resolution."""
    import torch

    from equss.backbones.vit import load_backbone
    from equss.data import dataset_info
    from equss.pipeline.evaluate import evaluate_cached

    out, forward = {}, {}
    for key, cfg in item["shapes"]:
        n_classes = dataset_info(cfg.data.dataset).n_classes
        c, p = _embed(cfg), _patch(cfg)
        step_s = time_steps(cfg, 3)
        model, _ = _synthetic_trainer(cfg, c, n_classes)
        size, n = cfg.data.eval_resolution, 4
        cache = _FakeCache(n, c, size // p, size, n_classes)

        def timed(**kw):
            evaluate_cached(model, cache, n_classes, cfg, progress=False, **kw)  # warm-up
            t0 = time.perf_counter()
            evaluate_cached(model, cache, n_classes, cfg, progress=False, **kw)
            return (time.perf_counter() - t0) / n

        eval_s = timed()
        flip_s = timed(flip_cache=cache)
        crf_s = None
        if item.get("crf"):
            small = _FakeCache(2, c, size // p, size, n_classes)
            images = [(torch.randn(3, size, size),) for _ in range(2)]
            t0 = time.perf_counter()
            evaluate_cached(model, small, n_classes, cfg, progress=False, crf=True, images=images)
            crf_s = max(0.0, ((time.perf_counter() - t0) / 2 - eval_s) / 2)  # per image and probe
        for res in (cfg.data.resolution, size):
            if (cfg.train.backbone, res) not in forward:
                t0 = time.perf_counter()
                bb = load_backbone(cfg.train.backbone, pretrained=False)
                forward[cfg.train.backbone] = time.perf_counter() - t0  # building it (a run loads the weights too)
                bb.eval()
                x = torch.randn(2, 3, res, res)
                with torch.inference_mode():
                    bb(x)
                    t0 = time.perf_counter()
                    bb(x)
                forward[(cfg.train.backbone, res)] = (time.perf_counter() - t0) / 2
        out[key] = {"step_s": step_s, "eval_img_s": eval_s, "eval_flip_img_s": flip_s, "crf_img_s": crf_s,
                    "feature_train_img_s": forward[(cfg.train.backbone, cfg.data.resolution)],
                    "feature_eval_img_s": forward[(cfg.train.backbone, size)],
                    "backbone_load_s": forward[cfg.train.backbone]}
    return out
