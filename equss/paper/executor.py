"""Run many trainings at once, and say what they will cost before they start.

The run cache of :mod:`equss.paper.runs` trains and evaluates a config once; this module makes
sure that a whole list of such *requests* is in the cache, fanned out by an executor, and then
returns each result exactly as :func:`equss.paper.runs.run` / :func:`~equss.paper.runs.baseline`
/ :func:`~equss.paper.runs.step_evaluations` return it (and writes the run records)::

    from equss.paper.executor import Request, run_many
    reqs = [Request.run(cfg("cocostuff27-equss", seed=s)) for s in seeds] + [Request.baseline(cfg(...))]
    results = run_many(reqs, executor="local")            # N workers x T threads, chosen by measurement

Requests: ``Request.run(cfg, crf=False, flip=None, resolution=None)`` (a training and one test
evaluation of the checkpoint ``cfg.eval.checkpoint`` names, at ``resolution``: default
``data.eval_resolution``), ``Request.steps(cfg, crf=False, flip=None)`` (the same, then every kept
checkpoint evaluated: ``step_evaluations``), ``Request.posthoc(cfg)`` (the training's converged
post-hoc probes: :func:`equss.paper.runs.posthoc`), ``Request.baseline(cfg)`` (k-means and linear
probe on the raw features).  A training's evaluations (every resolution, the post-hoc probes) are
one job.  With ``records=`` a request whose evaluations the run records already hold (made by this
code: :func:`equss.paper.runs.cached_in_records`) is cached: a study resumed in a new session with
an empty cache trains nothing its records have.

Executors (``executor=``):

* ``serial``: this process, one request after the other: what the notebooks do today, and the
  default (at smoke scale nothing else pays).
* ``local``: a pool of ``workers`` processes (``spawn``: fresh interpreters, each taking the next
  job when it is done), each with ``threads`` intra-op threads set before any heavy work
  (``workers x threads <=`` the cores this process may use).  Not given, they come from
  :func:`layout`: a short measurement on this machine (below), cached.  A script (not a notebook)
  that uses it needs the usual ``if __name__ == "__main__":`` guard of ``spawn``.
* ``submitit``: one SLURM job per run through submitit (an array with ``array_parallelism``
  jobs at once; partition, time, GPUs, memory from a YAML file or flags: :func:`slurm_settings`);
  each job's stdout/stderr are copied back beside the pool's logs.  A job's threads: ``threads``,
  else ``cpus_per_task``, else 1 (the nodes are not this machine: give it).  ``submitit-local``
  runs the same path with submitit's local executor on this machine (the tests; a machine without
  SLURM), laid out as the local pool.

Jobs: the requests are grouped by run-cache folder (a training with all its evaluations is one
job, so an evaluation never waits on a lock held by another worker), and before the runs of a
data set fan out, one ``prepare`` job per data set builds the feature caches and the kNN table
that they all read (:func:`equss.paper.jobs.prepare`; the feature cache has no lock, so two
workers must never build the same one).  A job that fails, or a worker that dies (killed, out of
memory), is one line naming the run (and its log); the other jobs still finish (and stay cached),
then :class:`~equss.errors.EqussError` says which runs failed.  Never a hang: the pool waits on
its workers' process sentinels; submitit's jobs end when their process ends.

Numbers do not depend on the executor, only on the intra-op thread count: a config trained at
``T`` threads gives bitwise the same record (evaluation numbers, logged losses, checkpoint tensors)
serially (``run_many(..., threads=T)``), in the pool and through submitit
(``tests/test_executor.py``).  Different thread counts may change the last digits (the committed
proxy results were made at 2 threads); every run's provenance records ``threads`` and ``executor``.

Choosing ``workers`` and ``threads`` (:func:`layout`): for each ``T`` in 1, 2, 4, ... dividing the
cores, ``cores // T`` spawned processes run the same synthetic training step of the proxy
``camvid-equss`` config (:func:`equss.paper.jobs.time_steps`) at once; the layout with the most
steps per second wins (ties: more workers), capped by the memory available
(``MEMORY_PER_WORKER_GIB`` per worker).  The measurement is cached in
``cache_dir("executor")`` by CPU model, core count and torch version; ``workers`` / ``threads``
given explicitly win, and a given thread count is never changed by the number of jobs (the numbers
depend on it).

Plan (:func:`plan`, :func:`print_plan`): which requests are cached and which are new, and the wall
time predicted serially and in parallel from costs measured on this machine
(:func:`calibrate`: a few synthetic training steps and evaluation images of each model shape, a
backbone forward per image for missing feature caches, cached by CPU model / torch / threads).
:func:`run_many` writes the plan with its prediction to ``plan.json`` and adds the measured wall
time when it ends, so prediction and outcome can be set side by side.  The notebooks do not yet
declare their requests, so ``equss reproduce --plan`` is not offered; call ``plan(requests)``.

Why submitit, not Ray or Dask: a run is minutes to hours of one process that shares its inputs
with the other runs through the on-disk caches, so nothing is gained from a task graph, an object
store or a scheduler process (Ray's head node, Dask's scheduler) that has to be started, kept
alive and secured on a cluster; submitit maps one run to one SLURM job (job arrays, logs and
results in a folder on the shared filesystem, so the submitting process may go away) with a small
pure-Python dependency, and its local executor runs the same code path here.  The local pool needs
no engine at all: a few ``spawn`` processes, each with its thread count set once, and a death seen
by its exit status that fails only the job it held.  No measurement here gave a reason for Ray or
Dask.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from equss.cpus import usable_cores
from equss.errors import EqussError

EXECUTORS = ("serial", "local", "submitit", "submitit-local")
MEMORY_PER_WORKER_GIB = {"smoke": 1.0, "proxy": 2.5, "paper": 12.0}  # peak RSS of a proxy run: 2.0 GiB
SLURM_KEYS = {  # YAML key -> submitit AutoExecutor parameter
    "partition": "slurm_partition", "time_min": "timeout_min", "gpus_per_node": "gpus_per_node",
    "cpus_per_task": "cpus_per_task", "mem_gb": "mem_gb", "array_parallelism": "slurm_array_parallelism",
    "account": "slurm_account", "qos": "slurm_qos", "constraint": "slurm_constraint",
    "setup": "slurm_setup", "additional": "slurm_additional_parameters",
}
SLURM_OWN = {"cluster", "folder"}  # keys read here, not passed to submitit
CALIBRATED = ("step_s", "eval_img_s", "eval_flip_img_s", "crf_img_s", "feature_train_img_s", "feature_eval_img_s",
              "backbone_load_s")  # seconds per model shape (calibrate)


# ---------------------------------------------------------------------------- requests and jobs
@dataclass
class Request:
    """One result a notebook needs: ``run`` (train + one test evaluation, at ``resolution``), ``steps``
    (also every kept checkpoint evaluated), ``posthoc`` (the post-hoc probes) or ``baseline``."""
    kind: str
    cfg: object
    crf: bool = False
    flip: bool | None = None
    resolution: int | None = None

    @classmethod
    def run(cls, cfg, crf: bool = False, flip: bool | None = None, resolution: int | None = None) -> "Request":
        if resolution is not None:
            from equss.pipeline.evaluate import checked_resolution

            resolution = checked_resolution(resolution)
            resolution = None if resolution == cfg.data.eval_resolution else resolution
        return cls("run", cfg, bool(crf), cfg.eval.flip if flip is None else bool(flip), resolution)

    @classmethod
    def posthoc(cls, cfg) -> "Request":
        return cls("posthoc", cfg)

    @classmethod
    def steps(cls, cfg, crf: bool = False, flip: bool | None = None) -> "Request":
        return cls("steps", cfg, bool(crf), cfg.eval.flip if flip is None else bool(flip))

    @classmethod
    def baseline(cls, cfg) -> "Request":
        return cls("baseline", cfg)

    def name(self) -> str:
        from equss.paper.runs import run_name

        return ("baseline-" if self.kind == "baseline" else "") + run_name(self.cfg)

    def folder(self) -> Path:
        from equss.paper import runs

        return runs.baseline_dir(self.cfg) if self.kind == "baseline" else runs.run_dir(self.cfg)


def _check_requests(requests) -> list[Request]:
    out = list(requests)
    for r in out:
        if not isinstance(r, Request):
            raise EqussError(f"run_many takes Request.run(cfg) / Request.steps(cfg) / Request.posthoc(cfg) / "
                             f"Request.baseline(cfg), not {type(r).__name__}")
    return out


def _data_key(cfg) -> str:
    """What the feature caches of a run depend on (runs with the same key share them)."""
    d, t = cfg.data, cfg.train
    return json.dumps([d.dataset, str(d.data_root), d.resolution, d.eval_resolution, d.five_crop, d.max_images,
                       d.train_split, d.val_split, d.test_split, d.knn_k, t.backbone, str(t.weights),
                       str(t.device)], sort_keys=True)


def jobs_for(requests: list[Request], progress: bool = False, records: str | os.PathLike | None = None) -> list[dict]:
    """The jobs of ``requests``: one per run-cache folder with what is still missing in it (cached
    folders, and with ``records`` folders whose missing evaluations the records hold, make no job),
    each data set's ``prepare`` job first.  A run job: ``evals`` ``[[crf, flip, resolution], ...]``,
    ``steps`` and ``posthoc`` flags, ``records``."""
    by_folder: dict[str, dict] = {}
    for r in requests:
        folder = r.folder()
        job = by_folder.setdefault(str(folder), {
            "kind": "baseline" if r.kind == "baseline" else "run", "name": r.name(), "cfg": r.cfg,
            "folder": str(folder), "evals": [], "steps": False, "posthoc": False, "progress": progress,
            "records": str(records) if records else None})
        if r.kind in ("run", "steps") and [r.crf, r.flip, r.resolution] not in job["evals"]:
            job["evals"].append([r.crf, r.flip, r.resolution])
        job["steps"] = job["steps"] or r.kind == "steps"
        job["posthoc"] = job["posthoc"] or r.kind == "posthoc"
    todo = [j for j in by_folder.values() if state(j) != "cached"]
    prepares: dict[str, dict] = {}
    for j in todo:
        p = prepares.setdefault(_data_key(j["cfg"]), {
            "kind": "prepare", "name": f"caches-{j['cfg'].data.dataset}", "cfg": j["cfg"], "flip": False,
            "baseline": False, "resolutions": [], "progress": progress})
        p["flip"] = p["flip"] or any(e[1] for e in j.get("evals", []))
        # the post-hoc probes read the baseline's training-split cache (no five-crop)
        p["baseline"] = p["baseline"] or j["kind"] == "baseline" or bool(j.get("posthoc"))
        p["resolutions"] = sorted(set(p["resolutions"]) | {e[2] for e in j.get("evals", []) if e[2]})
    names = [p["name"] for p in prepares.values()]
    for i, p in enumerate(prepares.values()):
        if names.count(p["name"]) > 1:
            p["name"] += f"-{i}"
    return list(prepares.values()) + todo


def needed(job: dict) -> list[tuple[str, str | None, str]]:
    """What a run job must leave in its folder: ``(file, checkpoint policy or None, checkpoint file)``
    for each evaluation, the post-hoc probes and (``steps``) each kept checkpoint's evaluation (the
    kept steps of the folder, else of the run's record)."""
    from equss.paper import runs

    cfg = job["cfg"]
    policy = runs.policy_of(cfg)
    ckpt = runs.CHECKPOINTS[policy]
    out = [(runs.eval_file(cfg, crf, flip, res), policy, ckpt) for crf, flip, res in (_eval3(e) for e in job["evals"])]
    if job.get("posthoc"):
        out.append((runs.posthoc_file(cfg), policy, ckpt))
    if job.get("steps"):
        folder = Path(job["folder"])
        steps = runs.kept_steps(cfg, folder)
        rec = runs.record_of(cfg, job["records"]) if job.get("records") else None
        if not steps and rec is not None:
            steps = runs.kept_steps(cfg, rec)
        out += [(f"eval_step_{s}.json", None, f"step_{s}.pt") for s in steps]
    return out


def _eval3(e) -> tuple:
    """An ``evals`` entry as ``(crf, flip, resolution)`` (``[crf, flip]`` before resolutions)."""
    return (e[0], e[1], e[2] if len(e) > 2 else None)


def state(job: dict) -> str:
    """``cached`` (nothing to do: every evaluation in the folder, or with ``job["records"]`` in the run
    records made by this code), ``evaluate`` (trained, with the checkpoints the missing evaluations
    need) or ``new`` (a training is needed)."""
    from equss.paper import runs

    folder, records, cfg = Path(job["folder"]), job.get("records"), job["cfg"]
    if job["kind"] == "baseline":
        done = (folder / "baseline.json").is_file() or runs.cached_in_records(cfg, records, ["baseline.json"],
                                                                              baseline=True)
        return "cached" if done else "new"
    trained = (folder / "provenance.json").is_file()
    if job.get("steps") and not trained and not (records and runs.record_of(cfg, records)):
        return "new"  # the kept steps are known once trained (or from the record's log)
    missing = [(n, c) for n, policy, c in needed(job)
               if not runs._done(folder / n, policy) and not runs.cached_in_records(cfg, records, [n], policy)]
    if not missing:
        return "cached"
    return "evaluate" if trained and all((folder / c).is_file() for _, c in missing) else "new"


# ---------------------------------------------------------------------------- layout: workers x threads
def cores() -> int:
    """The CPUs this process may use: its affinity mask capped by a cgroup CPU quota
    (:func:`equss.cpus.usable_cores`)."""
    return usable_cores()


def _mem_available_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_layout(workers: int | None, threads: int | None) -> None:
    n = cores()
    for what, v in (("workers", workers), ("threads", threads)):
        if v is not None and int(v) < 1:
            raise EqussError(f"--{what} {v}: must be at least 1")
    if workers and threads and int(workers) * int(threads) > n:
        raise EqussError(f"--workers {workers} x --threads {threads} = {int(workers) * int(threads)} is more than the "
                         f"{n} cores this process may use; lower one of them")
    if threads and int(threads) > n:
        raise EqussError(f"--threads {threads} is more than the {n} cores this process may use")


def layout(workers: int | None = None, threads: int | None = None, scale: str = "proxy",
           measure: bool = True) -> dict:
    """``{"workers", "threads", "how"}`` for the local pool: the given values, else the measured
    best layout (:func:`measure_layout`), capped by the memory available."""
    check_layout(workers, threads)
    n = cores()
    how = "given"
    if workers and threads:
        w, t = int(workers), int(threads)
    elif threads:
        w, t = max(1, n // int(threads)), int(threads)
    elif workers:
        w, t = int(workers), max(1, n // int(workers))
    elif measure:
        best = measure_layout()["best"]
        w, t, how = best["workers"], best["threads"], "measured"
    else:
        w, t, how = n, 1, "default"
    mem = _mem_available_gib()
    per = MEMORY_PER_WORKER_GIB.get(scale, MEMORY_PER_WORKER_GIB["proxy"])
    if not workers and mem is not None and w > 1 and w * per > mem:
        w, how = max(1, int(mem // per)), how + f", memory ({mem:.1f} GiB available, {per:g} GiB a worker)"
    return {"workers": w, "threads": t, "how": how}


def _machine_key(extra: str = "") -> str:
    import torch

    from equss.device import cpu_model

    text = f"{cpu_model()}|{cores()}|{torch.__version__}|{extra}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def measure_layout(steps: int = 4, refresh: bool = False) -> dict:
    """Steps per second of the synthetic proxy training step for every layout ``cores // T``
    processes x ``T`` threads (T = 1, 2, 4, ... dividing the cores), each process timed after a
    barrier; cached in ``cache_dir("executor")/layout-<machine>.json``.  Also measures a worker's
    start-up (spawn, imports) for the plan.  Measured on a busy machine it says little (its
    ``load_avg`` is recorded): ``refresh=True`` measures again."""
    from equss.io import read_json, write_json
    from equss.paths import cache_dir

    path = cache_dir("executor") / f"layout-{_machine_key()}.json"
    cached = read_json(path) if not refresh else None
    if isinstance(cached, dict) and cached.get("best"):
        return cached
    n = cores()
    rows = []
    threads = [t for t in (2 ** i for i in range(0, n.bit_length())) if t <= n and n % t == 0]
    for t in threads:
        for w in sorted({1, n // t}):
            times, startup = _concurrent_steps(w, t, steps)
            rows.append({"workers": w, "threads": t, "step_s": max(times), "startup_s": startup,
                         "steps_per_s": sum(steps / s for s in times) / steps})
    full = [r for r in rows if r["workers"] * r["threads"] == n]
    best = max(full, key=lambda r: (round(r["steps_per_s"], 2), r["workers"]))
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    out = {"machine": _machine_key(), "cores": n, "steps": steps, "rows": rows, "load_avg": load,
           "best": {"workers": best["workers"], "threads": best["threads"]},
           "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    write_json(path, out)
    return out


def _concurrent_steps(workers: int, threads: int, steps: int) -> tuple[list[float], float]:
    """Per-step seconds of each of ``workers`` spawned processes running the synthetic step at once."""
    from equss.paper import jobs

    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    t0 = time.perf_counter()
    procs = [ctx.Process(target=jobs.layout_child, args=(threads, steps, barrier, queue, t0)) for _ in range(workers)]
    for p in procs:
        p.start()
    results = []
    try:
        for _ in procs:
            results.append(queue.get(timeout=600))
    except Exception as exc:  # noqa: BLE001 - a dead measuring process: one line
        raise EqussError(f"the layout measurement ({workers} x {threads} threads) failed: {exc or type(exc).__name__}")
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    return [r["step_s"] for r in results], max(r["startup_s"] for r in results)


# ---------------------------------------------------------------------------- backends
@dataclass
class Outcome:
    name: str
    ok: bool
    error: str = ""
    wall_s: float = 0.0
    log: str | None = None
    value: object = None


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _death(code: int | None) -> str:
    if code is None:
        return "the worker ended without a result"
    if code < 0:
        name = _signal_name(code)
        return f"the worker was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"the worker exited with status {code} without a result"


def _tail(path: str | None, n: int = 1) -> str:
    try:
        lines = [ln for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
        return " | ".join(lines[-n:])
    except (OSError, TypeError):
        return ""


def run_local(fn, items: list, names: list[str], workers: int, threads: int, logs: Path,
              on_start=None, on_end=None) -> list[Outcome]:
    """``fn(item)`` for every item in a pool of ``workers`` spawned processes with ``threads``
    threads each (:func:`equss.paper.jobs.pool_worker`; a worker takes the next item when it is
    done, so torch is imported once per worker, not once per run; each item's stdout/stderr go to
    ``logs/<name>.log``).  A worker that dies fails the item it held, with the cause, and is
    replaced for the items still waiting; ``KeyboardInterrupt`` stops every worker (SIGTERM: a
    training writes ``last.pt``) and is raised again.  ``on_start(name, pid)`` /
    ``on_end(outcome)`` are called as items start and end."""
    from multiprocessing.connection import wait

    from equss.paper import jobs

    ctx = mp.get_context("spawn")
    logs.mkdir(parents=True, exist_ok=True)
    outcomes: dict[int, Outcome] = {}
    pending = list(range(len(items)))
    idle: list = []                  # (process, connection) ready for an item
    busy: dict = {}                  # connection -> (process, index, start time)
    procs: list = []

    def spawn():
        here, there = ctx.Pipe()
        p = ctx.Process(target=jobs.pool_worker, args=(fn, threads, "local", there), name="equss-worker", daemon=False)
        p.start()
        there.close()
        procs.append(p)
        idle.append((p, here))

    def finish(i: int, out: Outcome):
        outcomes[i] = out
        if on_end:
            on_end(out)

    try:
        for _ in range(min(int(workers), len(items))):
            spawn()
        while pending or busy:
            while pending and idle:
                p, conn = idle.pop(0)
                i = pending.pop(0)
                log = logs / f"{names[i]}.log"
                conn.send((items[i], str(log)))
                busy[conn] = (p, i, time.perf_counter())
                if on_start:
                    on_start(names[i], p.pid)
            ready = wait(list(busy) + [p.sentinel for p, _, _ in busy.values()], timeout=5.0)
            for conn in [c for c in list(busy) if c in ready or busy[c][0].sentinel in ready]:
                p, i, t0 = busy.pop(conn)
                log = str(logs / f"{names[i]}.log")
                try:
                    got = conn.recv() if conn.poll() else None
                except (EOFError, OSError):
                    got = None
                wall = time.perf_counter() - t0
                if got is None:  # the worker died holding this item
                    p.join()
                    conn.close()
                    finish(i, Outcome(names[i], False, _death(p.exitcode), wall, log))
                    if pending:
                        spawn()
                    continue
                if got.get("ok"):
                    finish(i, Outcome(names[i], True, "", wall, log, got.get("value")))
                else:
                    finish(i, Outcome(names[i], False, got.get("error") or "failed", wall, log))
                idle.append((p, conn))
        for p, conn in idle:
            conn.send(None)  # done: the worker returns
            conn.close()
        for p in procs:
            p.join(timeout=60)
    except BaseException:
        _stop(procs)
        raise
    finally:
        _stop([p for p in procs if p.is_alive()])
    return [outcomes[i] for i in range(len(items))]


def _stop(procs) -> None:
    procs = list(procs)
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM: a training finishes its step and writes last.pt
    deadline = time.time() + 60
    for p in procs:
        p.join(timeout=max(0.1, deadline - time.time()))
        if p.is_alive():
            p.kill()
            p.join()


class _in_process:
    """Thread count and executor name for work done in this process; both restored after."""

    def __init__(self, threads: int | None, executor: str):
        self.threads, self.executor = threads, executor

    def __enter__(self):
        import torch

        from equss.paper.jobs import ENV_EXECUTOR

        self.saved = (torch.get_num_threads(), os.environ.get(ENV_EXECUTOR))
        os.environ[ENV_EXECUTOR] = self.executor
        if self.threads:
            torch.set_num_threads(int(self.threads))
        return self

    def __exit__(self, *exc):
        import torch

        from equss.paper.jobs import ENV_EXECUTOR

        torch.set_num_threads(self.saved[0])
        if self.saved[1] is None:
            os.environ.pop(ENV_EXECUTOR, None)
        else:
            os.environ[ENV_EXECUTOR] = self.saved[1]
        return False


def slurm_settings(config: str | os.PathLike | dict | None = None, **flags) -> dict:
    """SLURM settings: the YAML file (or dict) ``config`` with flags (not None) on top.  Keys:
    ``cluster`` (slurm | local; default: what submitit detects), ``folder`` (submitit's job folder),
    and ``partition, time_min, gpus_per_node, cpus_per_task, mem_gb, array_parallelism, account,
    qos, constraint, setup`` (shell lines before each job), ``additional`` (more sbatch options)."""
    if config is None:
        settings = {}
    elif isinstance(config, dict):
        settings = dict(config)
    else:
        import yaml

        path = Path(config)
        if not path.is_file():
            raise EqussError(f"no SLURM settings file {str(path)!r}; give a YAML file with partition, time_min, "
                             "gpus_per_node, ... (see equss.paper.executor.slurm_settings)")
        try:
            settings = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise EqussError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(settings, dict):
            raise EqussError(f"{path}: expected a mapping of SLURM settings (partition: ..., time_min: ...)")
    settings.update({k: v for k, v in flags.items() if v is not None})
    unknown = sorted(set(settings) - set(SLURM_KEYS) - SLURM_OWN)
    if unknown:
        raise EqussError(f"unknown SLURM setting {', '.join(map(repr, unknown))}; valid: "
                         f"{', '.join(sorted(set(SLURM_KEYS) | SLURM_OWN))}")
    return settings


def _submitit():
    try:
        import submitit
    except ImportError:
        raise EqussError("the submitit executor needs the submitit package: pip install submitit "
                         "(it is in equss's dev extra)") from None
    return submitit


def run_submitit(fn, items: list, names: list[str], workers: int, threads: int, logs: Path, settings: dict,
                 cluster: str | None = None, on_start=None, on_end=None, poll_s: float = 2.0) -> list[Outcome]:
    """``fn(item)`` for every item as one submitit job each (SLURM, or submitit's local executor with
    ``cluster="local"``); at most ``workers`` at once (``array_parallelism`` on SLURM).  Each job's
    stdout and stderr are copied to ``logs/<name>.log`` when it ends."""
    submitit = _submitit()
    from equss.paper import jobs

    cluster = cluster or settings.get("cluster")
    folder = Path(settings.get("folder") or logs / "submitit")
    logs.mkdir(parents=True, exist_ok=True)
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
    params = {SLURM_KEYS[k]: v for k, v in settings.items() if k in SLURM_KEYS}
    params.setdefault("cpus_per_task", int(threads))
    params.setdefault("timeout_min", 24 * 60)  # submitit's local default (2 min) would stop a proxy run
    params.setdefault("slurm_array_parallelism", int(workers))
    params["name"] = "equss"
    try:
        executor.update_parameters(**params)
    except (NameError, AssertionError, ValueError) as exc:
        raise EqussError(f"submitit refused the SLURM settings: {str(exc).splitlines()[0]}") from None
    local = executor.cluster in ("local", "debug")
    limit = int(workers) if local else len(items)  # SLURM: the array's parallelism limits, submit all at once
    outcomes: dict[int, Outcome] = {}
    pending, running = list(range(len(items))), {}
    try:
        while pending or running:
            batch = []
            while pending and len(running) + len(batch) < limit:
                batch.append(pending.pop(0))
            if batch:
                with executor.batch():
                    subs = [executor.submit(jobs.guarded_call, fn, items[i], threads, "submitit") for i in batch]
                for i, job in zip(batch, subs):
                    running[i] = (job, time.perf_counter())
                    if on_start:
                        on_start(names[i], job.job_id)
            finished = [i for i, (job, _) in running.items() if job.done()]
            if not finished:
                time.sleep(poll_s)
                continue
            for i in finished:
                job, t0 = running.pop(i)
                log = logs / f"{names[i]}.log"
                _gather_log(job, log)
                wall = time.perf_counter() - t0
                try:
                    got = job.result()
                except Exception:  # noqa: BLE001 - no result: the job's process died
                    got = None
                if got is None:
                    out = Outcome(names[i], False, f"the worker died without a result (submitit job {job.job_id}, "
                                  f"state {job.state}; killed, out of memory or timed out?)", wall, str(log))
                elif got.get("ok"):
                    out = Outcome(names[i], True, "", wall, str(log), got.get("value"))
                else:
                    out = Outcome(names[i], False, got.get("error") or "failed", wall, str(log))
                outcomes[i] = out
                if on_end:
                    on_end(out)
    except BaseException:
        for job, _ in running.values():
            try:
                job.cancel(check=False)
            except Exception:  # noqa: BLE001 - best effort while stopping
                pass
        raise
    return [outcomes[i] for i in range(len(items))]


def _gather_log(job, dest: Path) -> None:
    parts = []
    for what, getter in (("stdout", job.paths.stdout), ("stderr", job.paths.stderr)):
        try:
            parts.append(f"==== {what} of submitit job {job.job_id} ====\n" + Path(getter).read_text(errors="replace"))
        except OSError:
            pass
    if parts:
        dest.write_text("\n".join(parts))


# ---------------------------------------------------------------------------- run_many
ENV = {"executor": "EQUSS_RUN_EXECUTOR", "workers": "EQUSS_RUN_WORKERS", "threads": "EQUSS_RUN_THREADS",
       "slurm": "EQUSS_RUN_SLURM"}  # run_many's defaults (set by `equss reproduce --executor ...`)


def run_options(executor: str | None = None, workers: int | None = None, threads: int | None = None,
                slurm: str | os.PathLike | dict | None = None) -> dict:
    """Check how runs are to be fanned out (one line for a bad value) and return it as the
    environment variables that :func:`run_many` takes as its defaults (``--threads`` also as
    ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``: the serial path's thread count)."""
    executor = executor or "serial"
    if executor not in EXECUTORS:
        raise EqussError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    check_layout(workers if executor != "serial" else None, threads)
    env = {ENV["executor"]: executor}
    if executor.startswith("submitit"):
        _submitit()
    if workers and executor != "serial":
        env[ENV["workers"]] = str(int(workers))
    if threads:
        env.update({ENV["threads"]: str(int(threads)), "OMP_NUM_THREADS": str(int(threads)),
                    "MKL_NUM_THREADS": str(int(threads))})
    if slurm:
        env[ENV["slurm"]] = json.dumps(slurm_settings(slurm))
    return env


def _defaults(executor, workers, threads, slurm):
    """``run_many``'s arguments, where not given, from the environment (:func:`run_options`)."""
    env = os.environ
    executor = executor or env.get(ENV["executor"]) or "serial"
    workers = workers if workers is not None else (int(env[ENV["workers"]]) if env.get(ENV["workers"]) else None)
    threads = threads if threads is not None else (int(env[ENV["threads"]]) if env.get(ENV["threads"]) else None)
    if slurm is None and env.get(ENV["slurm"]):
        slurm = json.loads(env[ENV["slurm"]])
    return executor, workers, threads, slurm


def run_many(requests, executor: str | None = None, workers: int | None = None, threads: int | None = None,
             records: str | os.PathLike | None = None, slurm: str | os.PathLike | dict | None = None,
             progress: bool = True, plan_file: str | os.PathLike | None = None, predict: bool = False,
             logs: str | os.PathLike | None = None) -> list:
    """Make sure every request is in the run cache (with ``executor``), then return their results in
    order, as :func:`~equss.paper.runs.run` / :func:`~equss.paper.runs.step_evaluations` /
    :func:`~equss.paper.runs.baseline` return them (``records``: the run records are written).

    ``executor`` (default ``serial``), ``workers`` / ``threads``: the local pool's layout (default:
    :func:`layout`); for ``serial`` only ``threads`` counts (default: this process's); not given, they
    come from the environment that ``equss reproduce --executor ... --workers ... --threads ...`` sets
    (:func:`run_options`).  ``slurm``: settings for ``submitit`` (YAML file or
    dict, :func:`slurm_settings`).  ``plan_file``: where the plan (and with ``predict`` its
    prediction, :func:`plan`) is written before and the measured wall time after; default
    ``<logs>/plan.json``.  ``logs``: the workers' log folder (default ``cache_dir("jobs")/<time>``)."""
    from equss.paper import jobs as jobs_mod
    from equss.paper import runs

    executor, workers, threads, slurm = _defaults(executor, workers, threads, slurm)
    if executor not in EXECUTORS:
        raise EqussError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    check_layout(workers if executor != "serial" else None, threads)
    requests = _check_requests(requests)
    settings = slurm_settings(slurm) if executor.startswith("submitit") else {}
    if executor.startswith("submitit"):
        _submitit()
    todo = jobs_for(requests, progress=progress, records=records)  # a worker's bars: its log (or the runner's)
    scale = requests[0].cfg.scale if requests else "proxy"
    if executor == "serial":
        lay = {"workers": 1, "threads": int(threads) if threads else None, "how": "serial"}
    elif executor == "local" or (executor == "submitit-local" and not settings.get("cluster")):
        lay = layout(workers, threads, scale=scale)  # this machine
    else:  # SLURM: the nodes are not this machine; threads = cpus_per_task unless given (the numbers depend on it)
        lay = {"workers": int(workers or settings.get("array_parallelism") or len(requests) or 1),
               "threads": int(threads or settings.get("cpus_per_task") or 1), "how": "given"}
    from equss.paths import cache_dir

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    logdir = Path(logs) if logs else cache_dir("jobs") / stamp
    logdir.mkdir(parents=True, exist_ok=True)
    planned = plan(requests, workers=lay["workers"], threads=lay["threads"], predict=predict, jobs=todo)
    planned.update(executor=executor, layout=lay, logs=str(logdir))
    plan_path = Path(plan_file) if plan_file else logdir / "plan.json"
    from equss.io import write_json

    write_json(plan_path, planned)
    _say(f"{len(requests)} requests: {planned['counts']['cached']} cached, {len(todo)} jobs to run "
         f"({executor}, {lay['workers']} x {lay['threads'] or 'default'} threads; logs {logdir})", progress)
    t0 = time.perf_counter()
    failed: list[Outcome] = []
    if todo and executor != "serial":
        from equss.progress import bar

        names = [_safe(j["name"]) for j in todo]
        pbar = bar(total=len(todo), desc=f"runs ({executor})", unit="job", disable=not progress)

        def ended(out: Outcome):
            pbar.update(1)
            _say(f"{out.name}: " + (f"done in {out.wall_s:.0f} s" if out.ok else f"FAILED: {out.error}"), progress)

        # the prepare jobs first (their caches are read by the runs), then the runs
        stages = [[i for i, j in enumerate(todo) if j["kind"] == "prepare"],
                  [i for i, j in enumerate(todo) if j["kind"] != "prepare"]]
        try:
            for stage in stages:
                items = [todo[i] for i in stage]
                if not items:
                    continue
                if executor == "local":
                    outs = run_local(jobs_mod.do, items, [names[i] for i in stage], lay["workers"], lay["threads"],
                                     logdir, on_end=ended)
                else:
                    outs = run_submitit(jobs_mod.do, items, [names[i] for i in stage], lay["workers"],
                                        lay["threads"], logdir, settings,
                                        cluster="local" if executor == "submitit-local" else None, on_end=ended)
                failed += [o for o in outs if not o.ok]
                if failed and stage is stages[0]:
                    break  # without its caches no run can start
        finally:
            pbar.close()
    results = []
    if not failed:
        try:
            with _in_process(threads if executor == "serial" else None, "serial"):
                for r in requests:  # serial: trains here; otherwise everything is cached now
                    results.append(_result(runs, r, records, progress and executor == "serial"))
        except EqussError as exc:
            failed.append(Outcome("?", False, jobs_mod.one_line(exc)))
    planned["actual"] = {"wall_s": round(time.perf_counter() - t0, 2), "failed": [o.name for o in failed],
                         "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    write_json(plan_path, planned)
    if failed:
        for o in failed:
            print(f"equss: error: run {o.name}: {o.error}" + (f" (log: {o.log})" if o.log else ""), file=sys.stderr)
        first = failed[0]
        raise EqussError(f"{len(failed)} of {len(todo) or len(requests)} jobs failed: "
                         + "; ".join(f"{o.name}: {o.error}" for o in failed[:3])
                         + ("; ..." if len(failed) > 3 else "") + f" (logs in {Path(first.log).parent if first.log else logdir})")
    return results


def _result(runs, r: Request, records, progress: bool):
    if r.kind == "baseline":
        return runs.baseline(r.cfg, progress=progress, records=records)
    if r.kind == "posthoc":
        return runs.posthoc(r.cfg, progress=progress, records=records)
    res = runs.run(r.cfg, crf=r.crf, flip=r.flip, progress=progress, records=records, resolution=r.resolution)
    if r.kind == "steps":
        return runs.step_evaluations(r.cfg, res, records=records, progress=progress)
    return res


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in name)


def _say(text: str, progress: bool) -> None:
    from equss.progress import log_path, note

    if log_path():
        note(text)
    elif progress:
        print(f"equss: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- plan and prediction
def plan(requests, workers: int | None = None, threads: int | None = None, predict: bool = True,
         jobs: list[dict] | None = None, file: str | os.PathLike | None = None,
         records: str | os.PathLike | None = None) -> dict:
    """What ``requests`` need: each request ``cached`` / ``evaluate`` / ``new`` (``records``: the run
    records of earlier sessions count as cached, as :func:`run_many` with them treats them); with ``predict`` the
    wall time predicted serially (one process at ``cores()`` threads) and in a pool of ``workers``
    x ``threads`` (default :func:`layout`), from :func:`calibrate`'s costs.  ``file``: also written
    there as JSON (to set beside the measured wall time later; :func:`run_many` does both)."""
    requests = _check_requests(requests)
    todo = jobs_for(requests, records=records) if jobs is None else jobs
    by_folder = {j.get("folder"): j for j in todo}
    rows = []
    for r in requests:
        j = by_folder.get(str(r.folder()))
        rows.append({"request": r.name(), "kind": r.kind, "crf": r.crf, "flip": r.flip, "resolution": r.resolution,
                     "state": "cached" if j is None else state(j)})
    counts = {s: sum(1 for x in rows if x["state"] == s) for s in ("cached", "evaluate", "new")}
    out = {"requests": rows, "counts": counts, "jobs": [{"name": j["name"], "kind": j["kind"]} for j in todo],
           "cores": cores(), "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if predict and todo:
        out["prediction"] = prediction(todo, workers, threads)
    if file:
        from equss.io import write_json

        write_json(Path(file), out)
    return out


def print_plan(p: dict, file=None) -> None:
    """The plan as a few lines: counts, then each job with its predicted seconds."""
    file = file or sys.stdout
    c = p["counts"]
    print(f"{len(p['requests'])} requests: {c['cached']} cached, {c['evaluate']} to evaluate, {c['new']} new; "
          f"{len(p['jobs'])} jobs", file=file)
    pred = p.get("prediction")
    if not pred:
        return
    for j in pred["jobs"]:
        print(f"  {j['name']:<60} {j['kind']:<9} {j['serial_s']:>9.0f} s" + (f"  ({j['note']})" if j.get("note") else ""),
              file=file)
    par = pred["parallel"]
    print(f"predicted wall time: serial {_hms(pred['serial']['wall_s'])} ({pred['serial']['threads']} threads); "
          f"{par['workers']} workers x {par['threads']} threads {_hms(par['wall_s'])} "
          f"({pred['serial']['wall_s'] / max(par['wall_s'], 1e-9):.2f}x)", file=file)


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _split_sizes(cfg) -> dict:
    """Images per split (train, val, test) of a config's data; None where the data is missing."""
    from equss.pipeline.inputs import make_dataset

    d, out = cfg.data, {}
    for key, split in (("train", d.train_split), ("val", d.val_split), ("test", d.test_split)):
        try:
            out[key] = len(make_dataset(cfg, split, train=key == "train"))
        except EqussError:
            out[key] = None
    return out


def _shape_key(cfg) -> str:
    m, d, t = cfg.model, cfg.data, cfg.train
    return json.dumps([m.head_dim, m.pq, m.num_codebooks, m.codebook_size, m.objective, m.probe_upsample,
                       m.extra_clusters, d.dataset, d.resolution, d.eval_resolution, d.probe_label_size,
                       t.batch_size, t.backbone, t.cpu_amp], sort_keys=True)


def calibrate(cfgs: list, threads: int, refresh: bool = False, crf: bool = False) -> dict:
    """Seconds per training step, per evaluated image (plain, flip-averaged, CRF) and per backbone
    forward for each model shape of ``cfgs`` at ``threads`` threads, measured on synthetic inputs
    of the configs' shapes in a spawned process (:func:`equss.paper.jobs.calibrate_shapes`);
    cached in ``cache_dir("executor")/calibration-<machine>.json`` by CPU model, cores, torch
    version and thread count."""
    from equss.io import read_json, write_json
    from equss.paths import cache_dir

    path = cache_dir("executor") / f"calibration-{_machine_key(f'threads={threads}')}.json"
    known = (read_json(path) or {}) if not refresh else {}
    shapes = known.get("shapes", {})
    missing = {}
    for cfg in cfgs:
        key = _shape_key(cfg)
        known_fields = shapes.get(key, {})
        if any(f not in known_fields for f in CALIBRATED) or (crf and known_fields.get("crf_img_s") is None):
            missing[key] = cfg
    if missing:
        from equss.paper import jobs

        outs = run_local(jobs.calibrate_shapes, [{"shapes": list(missing.items()), "crf": crf}], ["calibration"], 1,
                         int(threads), cache_dir("executor") / "logs")
        if not outs[0].ok:
            raise EqussError(f"the calibration failed: {outs[0].error} (log: {outs[0].log})")
        shapes.update(outs[0].value)
        write_json(path, {"machine": _machine_key(f"threads={threads}"), "threads": threads, "shapes": shapes})
    return shapes


def prediction(todo: list[dict], workers: int | None = None, threads: int | None = None) -> dict:
    """Predicted seconds of every job serially and the wall time serially and in the pool; see
    :func:`plan`."""
    lay = layout(workers, threads, measure=True) if not (workers and threads) else {
        "workers": int(workers), "threads": int(threads)}
    n = cores()
    measured = measure_layout()
    rows = {(r["workers"], r["threads"]): r for r in measured["rows"]}
    solo = rows.get((1, lay["threads"]), {}).get("step_s")
    together = rows.get((lay["workers"], lay["threads"]), {}).get("step_s")
    slowdown = (together / solo) if (solo and together) else 1.0  # contention of workers running at once
    startup = max((r.get("startup_s") or 0.0) for r in measured["rows"])
    cfgs = [j["cfg"] for j in todo]
    crf = any(e[0] for j in todo for e in j.get("evals", []))
    serial_cost = calibrate(cfgs, n, crf=crf)
    pool_cost = calibrate(cfgs, lay["threads"], crf=crf) if lay["threads"] != n else serial_cost
    sizes: dict[str, dict] = {}
    jobs_out = []
    for j in todo:
        key = _data_key(j["cfg"])
        if key not in sizes:
            sizes[key] = _split_sizes(j["cfg"])
        s, p = _job_cost(j, serial_cost, sizes[key]), _job_cost(j, pool_cost, sizes[key])
        jobs_out.append({"name": j["name"], "kind": j["kind"], "serial_s": round(s[0], 2),
                         "pool_s": round(p[0] * slowdown, 2), "note": s[1]})
    serial = sum(j["serial_s"] for j in jobs_out)
    prep = [j["pool_s"] for j in jobs_out if j["kind"] == "prepare"]
    rest = [j["pool_s"] for j in jobs_out if j["kind"] != "prepare"]
    # two stages (the caches, then the runs), each starting its workers once
    wall = sum(startup + _makespan(stage, lay["workers"]) for stage in (prep, rest) if stage)
    return {"jobs": jobs_out, "serial": {"wall_s": round(serial, 1), "threads": n},
            "parallel": {"wall_s": round(wall, 1), "workers": lay["workers"], "threads": lay["threads"],
                         "slowdown": round(slowdown, 3), "startup_s": round(startup, 2)},
            "model": "a run: backbone loads x backbone_load_s + steps x step_s + validations x val images x "
                     "eval_img_s + per test evaluation test images x (eval_img_s | eval_flip_img_s) (+ 2 x crf_img_s) "
                     "x (resolution / eval_resolution)^2 + post-hoc probes parts x (10 x train + test images) x "
                     "eval_img_s; "
                     "a prepare job: backbone_load_s + images without a feature cache x feature_*_img_s; pool: jobs "
                     "x slowdown (workers at once), LPT schedule per stage + worker start-up per stage"}


def _makespan(costs: list[float], workers: int) -> float:
    """Longest-processing-time-first list schedule of ``costs`` over ``workers``."""
    loads = [0.0] * max(1, workers)
    for c in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += c
    return max(loads) if costs else 0.0


def _job_cost(job: dict, costs: dict, sizes: dict) -> tuple[float, str]:
    cfg = job["cfg"]
    c = costs.get(_shape_key(cfg), {})
    n_train, n_val, n_test = (sizes.get(k) or 0 for k in ("train", "val", "test"))
    note = "" if all(sizes.get(k) is not None for k in ("train", "val", "test")) else "data missing: sizes unknown"
    load = c.get("backbone_load_s", 0.0)
    if job["kind"] == "prepare":
        return load + _missing_feature_cost(cfg, sizes, job.get("flip"), c, job.get("resolutions")), note
    if job["kind"] == "baseline":  # k-means and a linear probe on cached features: uncalibrated, as evaluations
        return load + (n_train + n_test) * c.get("eval_img_s", 0.0), (note or "baseline: estimated as evaluations")
    t = cfg.train
    steps = max(1, round(t.epochs * math.ceil(n_train / t.batch_size))) if t.epochs > 0 else t.steps
    trained = state(job) != "new"
    total = 0.0
    if not trained:
        vals = (steps // t.val_every + (1 if steps % t.val_every else 0)) if t.val_every else 0
        total += load + steps * c.get("step_s", 0.0) + vals * n_val * c.get("eval_img_s", 0.0)
    for crf, flip, res in (_eval3(e) for e in job["evals"]):
        per = c.get("eval_flip_img_s" if flip else "eval_img_s", 0.0) + (2 * (c.get("crf_img_s") or 0.0) if crf else 0)
        if res:  # another resolution: the per-image cost scales with the pixels (calibrated at eval_resolution)
            per *= (res / cfg.data.eval_resolution) ** 2
        if not (trained and _have(job, _eval_name(cfg, crf, flip, res))):
            total += load + n_test * per
    if job.get("posthoc") and not (trained and _have(job, _posthoc_name(cfg))):
        # k-means and a 10-epoch linear probe per part (head; PQ: also quantised): uncalibrated, as evaluations
        parts = 2 if cfg.model.pq else 1
        total += load + parts * (10 * n_train + n_test) * c.get("eval_img_s", 0.0)
        note = note or "post-hoc probes: estimated as evaluations"
    if job["steps"] and t.keep_checkpoints and t.val_every:
        total += (steps // t.val_every) * n_test * c.get("eval_img_s", 0.0)
    return total, note


def _have(job: dict, name: str) -> bool:
    from equss.paper import runs

    return (Path(job["folder"]) / name).is_file() or runs.cached_in_records(job["cfg"], job.get("records"), [name])


def _eval_name(cfg, crf, flip, resolution=None) -> str:
    from equss.paper.runs import eval_file

    return eval_file(cfg, crf, flip, resolution)


def _posthoc_name(cfg) -> str:
    from equss.paper.runs import posthoc_file

    return posthoc_file(cfg)


def _missing_feature_cost(cfg, sizes: dict, flip: bool, c: dict, resolutions=()) -> float:
    """Seconds of backbone forwards a prepare job needs: the splits without a complete feature
    cache of this backbone and preprocessing (``meta.json`` in ``cache_dir("features")``; the
    weights are not compared: a prediction, not a check)."""
    from equss.paths import cache_dir
    from equss.pipeline.inputs import HFlip, make_dataset

    have = set()
    for meta in cache_dir("features").glob("*/meta.json"):
        try:
            m = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if m.get("complete") and m.get("backbone") == cfg.train.backbone:
            have.add(m.get("preproc_id"))
    d, total = cfg.data, 0.0
    wanted = [(d.train_split, True, "train")] + ([(d.val_split, False, "val")] if cfg.train.val_every else []) + [
        (d.test_split, False, "test")]
    for split, train, key in wanted:
        try:
            ds = make_dataset(cfg, split, train=train)
        except EqussError:
            continue
        per = c.get("feature_train_img_s" if train else "feature_eval_img_s", 0.0)
        n = sizes.get(key) or 0
        if ds.preproc_id not in have:
            total += n * per
        if flip and key == "test" and HFlip(ds).preproc_id not in have:
            total += n * per
    for res in resolutions or ():  # the test split at another resolution (the resolution check)
        try:
            ds = make_dataset(cfg, d.test_split, resolution=res)
        except EqussError:
            continue
        if ds.preproc_id not in have:
            total += (sizes.get("test") or 0) * c.get("feature_eval_img_s", 0.0) * (res / d.eval_resolution) ** 2
    return total


# ---------------------------------------------------------------------------- the tuning stage
def tune_arms(cfg, out, arms, r: dict, progress: bool = True) -> dict[str, dict]:
    """:func:`equss.paper.tuning.tune_all`, with the arms still to tune fanned out over the local pool
    first when ``equss reproduce --executor local --workers N --threads T`` asks for one (the
    environment :func:`run_options` sets): each data set's feature caches and kNN table are built here
    once (:func:`equss.paper.jobs.prepare`: the feature cache has no lock), the arms run in ``N``
    workers of ``T`` threads (:func:`run_local`), then every arm is read back (cached).  A candidate's
    numbers depend on the thread count, not on the pool (``tests/test_tuning.py``)."""
    from equss.paper import jobs, tuning
    from equss.paths import cache_dir
    from equss.progress import note

    cfgs = tuning.arm_configs(cfg, arms, r)
    executor, workers, threads, _ = _defaults(None, None, None, None)
    todo = [a for a, c in cfgs.items() if not tuning.done(c, out, r)]
    if executor == "local" and len(todo) > 1:
        lay = layout(workers, threads, cfgs[todo[0]].scale)
        jobs.set_threads(lay["threads"])
        for data in {_data_key(cfgs[a]): cfgs[a] for a in todo}.values():
            jobs.prepare(tuning.tuning_config(data, r), progress=progress)
        logs = cache_dir("jobs") / f"tuning-{os.getpid()}"
        note(f"tuning {len(todo)} arms on {lay['workers']} workers x {lay['threads']} threads (logs: {logs.name})")
        outcomes = run_local(tuning.tune_job, [(cfgs[a], str(out), r) for a in todo], todo, lay["workers"],
                             lay["threads"], logs)
        failed = [f"{o.name}: {o.error}" for o in outcomes if not o.ok]
        if failed:
            raise EqussError("tuning failed for " + "; ".join(failed))
    return tuning.tune_all(cfg, out, arms, r, progress)
