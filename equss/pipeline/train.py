"""Training: ``equss train --preset camvid-equss --scale proxy --out runs/camvid-equss``.

One loop for every scale and device (nanoGPT-style): a :class:`~equss.config.Config`
says what to train; batches come from the feature cache or the online backbone
(:mod:`equss.pipeline.inputs`); the objective is Eq. 5 (:meth:`equss.model.EQUSS.training_losses`);
three Adam optimisers as the official code (model 3e-4, cluster and linear probes 3e-3,
constant), gradient clipping on the model parameters only, AMP on CUDA.

Run folder (``--out``): ``config.yaml``, ``log.jsonl`` (one line per logged step and per
validation), ``last.pt`` (every ``ckpt_every`` steps, at the end and on SIGINT/SIGTERM),
``best.pt`` (best validation cluster mIoU: model selection as the official train.py), ``step_<N>.pt``
(every validation, with ``train.keep_checkpoints``),
``provenance.json`` (written only when training finished; its ``wall_s`` sums every segment of a
run that was stopped and resumed), and TensorBoard event files ``events.out.tfevents.*`` when the
``tensorboard`` package is installed (losses, validation metrics, a few validation segmentations:
:mod:`equss.pipeline.tensorboard`; ``log.jsonl`` stays the record).  ``--resume`` continues from
``last.pt`` exactly: the RNG states and the batch generator are in the checkpoint, so a
killed and resumed run ends with the same weights as an uninterrupted one (``log.jsonl``
is cut back to the checkpoint's step, so no row appears twice).  ``--resume`` on a finished run
says so and changes nothing.  Every checkpoint carries the cluster -> class assignment of the
last validation (also after a resume), so ``equss segment`` maps clusters to classes.

The run folder is locked while a run trains into it (:mod:`equss.locks`): a second
training into the same ``--out`` stops at once naming the holder.  A folder that already
holds a run is continued only with ``--resume`` and replaced only with ``--overwrite`` (which
first removes every file the previous run wrote).  No file of the run folder is written through
a symbolic link (:mod:`equss.safeio`).
SIGINT / SIGTERM finish the current step, write ``last.pt`` and stop with exit code
130 / 143 ("interrupted at step N; resume with ...").

Multi-GPU: launch with ``torchrun --nproc_per_node N -m equss train ...``; each process
takes its share of every global batch (DistributedDataParallel; gloo on CPU, nccl on CUDA).
"""
from __future__ import annotations

import json
import math
import os
import random
import shlex
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from equss.progress import bar as progress_bar

from equss import locks
from equss.config import Config, validate
from equss.device import amp_dtype, keep_freed_memory, resolve_device
from equss.errors import EqussError, Interrupted
from equss.pipeline.inputs import BatchSource, make_backbone, make_dataset
from equss.model import EQUSS
from equss.pipeline.args import add_config_args, config_from_args
from equss.pipeline.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from equss.device import device_description
from equss.io import read_json, write_json
from equss.provenance import provenance
from equss.safeio import open_for_write, write_atomic

CKPT_VERSION = 1
RUN_FILES = ("config.yaml", "log.jsonl", "last.pt", "best.pt", "provenance.json")
# what a previous run may also have left in its folder: removed by --overwrite
RUN_PATTERNS = ("step_*.pt", "*.tmp", "events.out.tfevents.*")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------- distributed
def training_steps(cfg: Config, n_train: int) -> int:
    """``train.steps``, or with ``train.epochs > 0`` the official epoch count in steps:
    ``round(epochs * ceil(n_train / batch_size))`` (a partial last batch counts as a step)."""
    tc = cfg.train
    if tc.epochs > 0:
        return max(1, round(tc.epochs * math.ceil(n_train / tc.batch_size)))
    return tc.steps


def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


# ---------------------------------------------------------------------------- the run
class Trainer:
    def __init__(self, cfg: Config, out: str | os.PathLike, resume: bool = False, progress: bool = True,
                 overwrite: bool = False):
        validate(cfg)  # also for configs built in Python: nothing is written for a bad config
        self.cfg, self.out, self.progress = cfg, Path(out), progress
        self.overwrite = bool(overwrite) and not resume
        self.rank, self.world, local_rank = dist_info()
        created = not self.out.exists()
        self._lock = locks.acquire(self.out) if self.rank == 0 else None
        self.finished = None  # the provenance of a finished run that --resume found
        try:
            self._check_run_folder(resume)
            if self.finished is None:
                self._init(cfg, resume, local_rank)
        except BaseException:
            self.close()
            if created and self.rank == 0:  # a run that never started leaves no folder behind
                try:
                    (self.out / locks.LOCK_NAME).unlink(missing_ok=True)
                    self.out.rmdir()
                except OSError:
                    pass
            raise

    def _check_run_folder(self, resume: bool):
        if self.rank != 0:
            return
        present = [f for f in RUN_FILES if (self.out / f).exists()]
        done = read_json(self.out / "provenance.json") if resume else None
        if isinstance(done, dict):
            if done.get("config_key") not in (None, self.cfg.key()):
                raise EqussError(f"{self.out} holds a finished run of another config (key {done.get('config_key')} != "
                                 f"{self.cfg.key()}); use another --out or the same config")
            self.finished = done
            return
        if resume and not (self.out / "last.pt").is_file():
            if present:
                raise EqussError(f"--resume given but {self.out} has no last.pt (the run stopped before its first "
                                 "checkpoint); start it again with --overwrite")
            raise EqussError(f"--resume given but {self.out / 'last.pt'} does not exist; start without --resume")
        if present and not resume and not self.overwrite:
            raise EqussError(f"{self.out} already holds a run ({', '.join(present)}); continue it with --resume, "
                             "replace it with --overwrite, or pick a new --out")

    def close(self):
        """Release the run folder's lock (also done at the end of :meth:`fit`)."""
        if getattr(self, "_lock", None):
            locks.release(self._lock)
            self._lock = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit the modules may be gone
            pass

    def _init(self, cfg: Config, resume: bool, local_rank: int):
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and cfg.train.device != "cpu" else "gloo"
            dist.init_process_group(backend)
        device = cfg.train.device
        if self.world > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
            device = f"cuda:{local_rank}"
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # no page faults on every step's large tensors (equss.device)
        if cfg.train.batch_size % self.world:
            raise EqussError(f"train.batch_size {cfg.train.batch_size} must be divisible by the number of processes {self.world}")
        self.stop_requested = False
        self.tb = None  # TensorBoard writer (rank 0, while fit() runs)
        self.step = 0
        self.best = {"cluster_mIoU": -1.0, "step": -1}
        self.val_assignment = None  # cluster -> class map of the last validation (for `equss segment`)
        self.wall_before, self.segments, self._t0 = 0.0, 1, None  # wall time of earlier segments (resume)
        seed_everything(cfg.train.seed)
        self._setup_data()
        # seed again: building caches or converting weights may have drawn random numbers,
        # and the model must not depend on whether the caches already existed
        seed_everything(cfg.train.seed)
        self.model = EQUSS(cfg, self.in_dim, self.n_classes).to(self.device)
        self.total_steps = training_steps(cfg, len(self.train_set))
        self.loss_fn = _Losses(self.model)
        if self.world > 1:  # DDP hooks run on forward(): wrap the loss computation
            self.loss_fn = torch.nn.parallel.DistributedDataParallel(
                self.loss_fn, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        tc = cfg.train
        # fused=True: the same Adam update in one kernel per optimiser (tests/test_train.py)
        self.optimizers = {
            "model": torch.optim.Adam(self.model.model_parameters(), lr=tc.lr, fused=True),
            "cluster": torch.optim.Adam(self.model.cluster_probe.parameters(), lr=tc.probe_lr, fused=True),
            "linear": torch.optim.Adam(self.model.linear_probe.parameters(), lr=tc.probe_lr, fused=True),
        }
        # autocast: fp16 + GradScaler on CUDA as the official train.py (GradScaler(init_scale=2048,
        # growth_interval=1000), l.394 @da82dea); bf16 on a CPU with native support (no scaler needed)
        self.amp_dtype = amp_dtype(self.device, tc.amp, tc.cpu_amp)
        self.use_amp = self.amp_dtype is not None
        self.scaler = torch.amp.GradScaler("cuda", init_scale=2048, growth_interval=1000,
                                           enabled=self.use_amp and self.device.type == "cuda")
        self.stop_signal = None
        if resume:
            self._resume(load_checkpoint(self.out / "last.pt"))

    # -- data
    def _setup_data(self):
        from equss.data.features import get_or_build_features
        from equss.data.knn import get_or_build_knn

        cfg = self.cfg
        if self.world > 1 and self.rank != 0:
            dist.barrier()  # rank 0 builds the caches first; the others then open them
        self.train_set = make_dataset(cfg, cfg.data.train_split, train=True)
        self.val_set = make_dataset(cfg, cfg.data.val_split) if cfg.train.val_every else None
        self.n_classes = self.train_set.n_classes
        if self.n_classes + cfg.model.extra_clusters < 1:
            raise EqussError(f"dataset {cfg.data.dataset!r} has no classes (an unlabelled folder has no classes.txt), so "
                             "the cluster probe would have no cluster: set model.extra_clusters=K, the number of "
                             "clusters to find (e.g. --set model.extra_clusters=8)")
        self.backbone = make_backbone(cfg, device=self.device)
        self.in_dim = self.backbone.embed_dim
        self.weights_id = self.backbone.weights_id  # which weights file: recorded in provenance
        quiet = not (self.progress and self.rank == 0)
        path = cfg.train.input_path
        train_cache = get_or_build_features(self.backbone, self.train_set, device=self.device, progress=not quiet)
        self.input_path = "cache" if path in ("auto", "cache") else "online"
        nns = get_or_build_knn(train_cache, k=min(cfg.data.knn_k, len(self.train_set)))
        self.val_cache = (get_or_build_features(self.backbone, self.val_set, device=self.device, progress=not quiet)
                          if self.val_set is not None else None)
        if self.val_cache is not None:
            from equss.pipeline.evaluate import require_labels

            require_labels(self.val_cache, f"validation split {cfg.data.val_split!r} of {cfg.data.dataset}",
                           "set data.val_split to a labelled split, or train.val_every=0 (no model selection)")
        self.source = BatchSource(cfg, self.train_set, nns,
                                  cache=train_cache if self.input_path == "cache" else None,
                                  backbone=self.backbone if self.input_path == "online" else None,
                                  device=self.device)
        if self.input_path == "cache":
            self.backbone = None  # not needed any more: free its memory
        if self.world > 1 and self.rank == 0:
            dist.barrier()

    # -- checkpoints
    def state(self) -> dict:
        return {
            "version": CKPT_VERSION,
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "best": dict(self.best),
            "config": self.cfg.to_dict(),
            "config_key": self.cfg.key(),
            "in_dim": self.in_dim,
            "n_classes": self.n_classes,
            "class_names": list(self.train_set.class_names),
            "assignment": self.val_assignment,
            "wall_s": self.wall_s(),
            "segments": self.segments,
            "rng": rng_state(),
            "batches": self.source.state_dict(),
            "provenance": provenance(device=device_description(self.device), input_path=self.input_path,
                                     backbone_weights=self.weights_id),
        }

    def _resume(self, state: dict):
        if state.get("config_key") != self.cfg.key():
            raise EqussError(f"{self.out / 'last.pt'} was written by another config (key {state.get('config_key')} != {self.cfg.key()}); use another --out or the same config")
        self.model.load_state_dict(state["model"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.best = state["step"], state["best"]
        self.val_assignment = state.get("assignment")
        self.wall_before = float(state.get("wall_s", 0.0))
        self.segments = int(state.get("segments", 1)) + 1
        set_rng_state(state["rng"])
        self.source.load_state_dict(state["batches"])

    def wall_s(self) -> float:
        """Seconds of training over all segments so far (earlier ones from the checkpoint)."""
        return self.wall_before + (time.time() - self._t0 if self._t0 is not None else 0.0)

    def save(self, name: str = "last.pt"):
        if self.rank == 0:
            save_checkpoint(self.out / name, self.state())

    # -- one step
    def train_step(self) -> dict[str, float]:
        tc = self.cfg.train
        per_rank = tc.batch_size // self.world
        batch = self.source.next(tc.batch_size) if self.world == 1 else self._rank_batch(per_rank)
        self.model.train()
        for o in self.optimizers.values():
            o.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            losses = self.loss_fn(batch.feats, batch.feats_pos, batch.labels)
        total = losses["total"]
        if not torch.isfinite(total):
            if not (torch.isfinite(batch.feats).all() and torch.isfinite(batch.feats_pos).all()):
                where = getattr(getattr(self.source, "cache", None), "path", None)
                raise EqussError(f"the input features of step {self.step} hold NaN or infinite values: "
                                 + (f"the feature cache {str(where)!r} is damaged; rebuild it with `equss features ... "
                                    "--rebuild` (or delete the folder)" if where else "check the backbone weights"))
            raise FloatingPointError(f"loss is {total.item()} at step {self.step}")
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizers["model"])  # only the model's: the probes are not clipped
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.model_parameters(),
                                                   tc.clip_grad if tc.clip_grad > 0 else float("inf"))
        for o in self.optimizers.values():  # official: scaler.update() after each optimiser step
            self.scaler.step(o)
            self.scaler.update()
        self.step += 1
        out = {k: float(v.detach()) for k, v in losses.items()}
        out["grad_norm"] = float(grad_norm)
        return out

    def _rank_batch(self, per_rank: int):
        batch = self.source.next(self.cfg.train.batch_size)  # every rank draws the same global batch
        sl = slice(self.rank * per_rank, (self.rank + 1) * per_rank)
        batch.feats, batch.feats_pos, batch.labels = batch.feats[sl], batch.feats_pos[sl], batch.labels[sl]
        return batch

    # -- validation (cluster mIoU on the validation split, as the official train.py)
    @torch.no_grad()
    def validate(self) -> dict:
        from equss.pipeline.evaluate import evaluate_cached

        res = evaluate_cached(self.model, self.val_cache, self.n_classes, self.cfg, device=self.device,
                              flip_cache=None, progress=False)
        self.val_assignment = res["cluster"].get("assignment")
        return {"cluster_mIoU": res["cluster"]["mIoU"], "cluster_Accuracy": res["cluster"]["Accuracy"],
                "linear_mIoU": res["linear"]["mIoU"], "linear_Accuracy": res["linear"]["Accuracy"]}

    def log(self, record: dict):
        if self.rank == 0:
            with open_for_write(self.out / "log.jsonl", append=True) as fh:
                fh.write(json.dumps(record) + "\n")
        tb = getattr(self, "tb", None)
        if tb is not None and "step" in record:
            if isinstance(record.get("val"), dict):
                tb.scalars(record["step"], record["val"], "val")
            elif "error" not in record:
                tb.scalars(record["step"], {k: v for k, v in record.items() if k not in ("step", "time")}, "train")

    @torch.no_grad()
    def _tb_images(self):
        """The first few validation images: image | cluster classes (validation assignment) | ground truth."""
        from equss.data import dataset_info
        from equss.pipeline.tensorboard import N_IMAGES, segmentation_panel

        palette = np.asarray(dataset_info(self.cfg.data.dataset).palette, dtype=np.uint8)
        lut = None if self.val_assignment is None else np.asarray(self.val_assignment, dtype=np.int64)
        self.model.eval()
        for i in range(min(N_IMAGES, len(self.val_set))):
            image, label = self.val_set[i][:2]
            feats, _ = self.val_cache.batch([i])
            label = np.asarray(label)
            pred = self.model.predict_labels(feats.to(self.device), label.shape[-2:])["cluster"][0].cpu().numpy()
            pred = lut[pred] if lut is not None else pred
            self.tb.image(f"val/segmentation/{i}", segmentation_panel(image, pred, label, palette), self.step)

    def _trim_log(self):
        """Keep the log rows up to the resumed checkpoint's step: rows written after it (before a
        kill) are written again by the resumed run, and a half-written last line is dropped."""
        path = self.out / "log.jsonl"
        if not path.is_file():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and row.get("step", 0) <= self.step:
                keep.append(line)
        write_atomic(path, lambda fh: fh.write("".join(ln + "\n" for ln in keep)))

    # -- the loop
    def fit(self) -> dict:
        """Train to ``train.steps``; returns a summary.  Raises :class:`equss.errors.Interrupted`
        (after writing ``last.pt``) when SIGINT/SIGTERM stopped it."""
        try:
            if self.finished is not None:
                return self._finished_summary()
            return self._fit()
        finally:
            self.close()

    def _finished_summary(self) -> dict:
        done = self.finished
        return {"steps": done.get("steps"), "already_finished": True, "best": done.get("best", {}),
                "last": done.get("last", {}), "wall_s": done.get("wall_s", 0.0)}

    def _fit(self) -> dict:
        cfg, tc = self.cfg, self.cfg.train
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.overwrite:
                self._clear_previous_run()
            if self.step > 0:
                self._trim_log()
            text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
            write_atomic(self.out / "config.yaml", lambda fh: fh.write(text))
        if self.rank == 0:
            from equss.pipeline.tensorboard import open_writer

            self.tb = open_writer(self.out, purge_step=self.step if self.step > 0 else None)
        handlers = self._install_signal_handlers()
        self._t0 = time.time()
        bar = progress_bar(total=self.total_steps, initial=self.step, desc=f"train {cfg.name}", disable=not (self.progress and self.rank == 0),
                   dynamic_ncols=True)
        last = {}
        try:
            while self.step < self.total_steps and not self.stop_requested:
                try:
                    last = self.train_step()
                except torch.OutOfMemoryError:
                    bs = tc.batch_size
                    raise EqussError(f"out of GPU memory at train.batch_size={bs}; try --set train.batch_size={max(2, bs // 2)} "
                                     f"(the last checkpoint is {self.out / 'last.pt'})") from None
                except FloatingPointError as exc:
                    self.log({"step": self.step, "error": str(exc)})
                    last_pt = self.out / "last.pt"
                    kept = (f"the last good checkpoint is {last_pt}" if last_pt.is_file()
                            else "no checkpoint was written yet")
                    raise EqussError(f"{exc}; stopped, {kept} (try a lower train.lr or other loss shifts)") from None
                bar.update(1)
                bar.set_postfix(loss=f"{last['total']:.4f}", corr=f"{last['corr']:.4f}")
                if self.step % tc.log_every == 0 or self.step == self.total_steps:
                    self.log({"step": self.step, "time": round(self.wall_s(), 3), **last})
                if tc.val_every and (self.step % tc.val_every == 0 or self.step == self.total_steps) and self.val_cache is not None:
                    val = self.validate()
                    improved = val["cluster_mIoU"] >= self.best["cluster_mIoU"]
                    if improved:
                        self.best = {**val, "step": self.step}
                    self.log({"step": self.step, "val": val, "best_step": self.best["step"]})
                    if self.tb is not None:
                        self._tb_images()
                    bar.write(f"step {self.step}: val cluster mIoU {val['cluster_mIoU']:.2f} acc {val['cluster_Accuracy']:.2f} | "
                              f"linear mIoU {val['linear_mIoU']:.2f}" + ("  (best)" if improved else ""))
                    if improved:
                        self.save("best.pt")
                    if tc.keep_checkpoints:
                        self.save(f"step_{self.step}.pt")
                if self.step % tc.ckpt_every == 0:
                    self.save("last.pt")
        finally:
            bar.close()
            self._restore_signal_handlers(handlers)
            if self.tb is not None:
                self.tb.close()
        self.save("last.pt")
        if self.stop_requested:  # no best.pt / provenance.json: the run did not finish
            sig = self.stop_signal or signal.SIGINT
            raise Interrupted(f"interrupted by {signal.Signals(sig).name} at step {self.step} of {tc.steps}; "
                              f"checkpoint {self.out / 'last.pt'}; resume with the same command and --resume", sig)
        if not (self.out / "best.pt").exists() and self.rank == 0:
            self.save("best.pt")  # no validation: the last weights are the selection
        summary = {"steps": self.step, "stopped_early": self.stop_requested, "best": self.best,
                   "last": last, "wall_s": round(self.wall_s(), 2), "segments": self.segments}
        if self.rank == 0:
            write_json(self.out / "provenance.json", provenance(
                config=cfg.to_dict(), config_key=cfg.key(), scale=cfg.scale, dataset=cfg.data.dataset,
                backbone=cfg.train.backbone, weights=cfg.train.weights, backbone_weights=self.weights_id,
                input_path=self.input_path, amp=str(self.amp_dtype).replace("torch.", "") if self.use_amp else "off",
                seed=cfg.train.seed, total_steps=self.total_steps,
                device=device_description(self.device), world_size=self.world, **summary))
        return summary

    def _clear_previous_run(self):
        """--overwrite: remove every file the previous run wrote (also its kept ``step_*.pt``)."""
        for name in RUN_FILES:
            (self.out / name).unlink(missing_ok=True)
        for pattern in RUN_PATTERNS:
            for path in self.out.glob(pattern):
                if path.is_file() or path.is_symlink():
                    path.unlink()

    def _install_signal_handlers(self):
        def handler(signum, frame):  # finish the current step, checkpoint, then stop
            self.stop_requested = True
            self.stop_signal = signum
        old = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, handler)
        except ValueError:  # not in the main thread
            pass
        return old

    @staticmethod
    def _restore_signal_handlers(old):
        for sig, h in old.items():
            signal.signal(sig, h)


class _Losses(torch.nn.Module):
    """``forward`` = :meth:`EQUSS.training_losses`, so DistributedDataParallel can wrap it."""

    def __init__(self, model: EQUSS):
        super().__init__()
        self.model = model

    def forward(self, feats, feats_pos, labels):
        return self.model.training_losses(feats, feats_pos, labels)


def train(cfg: Config, out: str | os.PathLike, resume: bool = False, progress: bool = True,
          overwrite: bool = False) -> dict:
    """Train ``cfg`` into the folder ``out``; returns a summary dict.

    ``resume``: continue ``out/last.pt``; ``overwrite``: replace a run already in ``out``
    (without either, a folder holding a run is refused)."""
    trainer = Trainer(cfg, out, resume=resume, progress=progress, overwrite=overwrite)
    try:
        return trainer.fit()
    finally:
        if trainer.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


# ---------------------------------------------------------------------------- CLI
def _cmd_train(args):
    from equss.config import list_presets

    if args.list_presets:
        print("\n".join(n for n in list_presets() if not n.startswith("_")))
        return 0
    if not args.preset and not args.config:
        raise EqussError("give --preset NAME or --config FILE (list presets with `equss train --list-presets`)")
    if args.resume and args.overwrite:
        raise EqussError("--resume and --overwrite exclude each other: continue the run or replace it")
    cfg = config_from_args(args)
    out = args.out or os.path.join("runs", f"{cfg.name}-{cfg.scale}")
    try:
        summary = train(cfg, out, resume=args.resume, overwrite=args.overwrite)
    except Interrupted as exc:
        argv = [a for a in getattr(args, "argv", None) or [] if a != "--overwrite"]
        if argv and "--out" not in argv and not any(a.startswith("--out=") for a in argv):
            argv += ["--out", out]
        if argv and "--resume" not in argv:
            argv.append("--resume")
        command = "equss " + shlex.join(argv) if argv else "the same command and --resume"
        raise Interrupted(str(exc).replace("the same command and --resume", command), exc.signum) from None
    if summary.get("already_finished"):
        print(f"equss: {out} holds a finished run ({summary['steps']} steps); nothing to resume, nothing changed")
        return 0
    best = summary["best"]
    print(f"done: {summary['steps']} steps in {summary['wall_s']:.0f}s; best val cluster mIoU "
          f"{best.get('cluster_mIoU', float('nan')):.2f} at step {best.get('step')}; checkpoints in {out}")
    return 0


def register(sub):
    p = sub.add_parser("train", help="train a STEGO/EQUSS head (+PQ) on frozen backbone features",
                       description=__doc__.split("\n\n")[0])
    add_config_args(p)
    p.add_argument("--out", help="run folder (default: runs/<preset>-<scale>)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in OUT (else it is refused)")
    p.add_argument("--steps", type=int, help="number of training steps (overrides the config)")
    p.add_argument("--input-path", choices=["auto", "cache", "online"], help="feature cache or online backbone")
    p.add_argument("--list-presets", action="store_true", help="list preset names and exit")
    p.set_defaults(func=_cmd_train)
