"""Trainings with their evaluations per hour: the local process pool vs the serial path.

    python benchmarks/bench_executor.py [--quick] [--repeats N] [--steps N] [--presets P ...]
        [--workers N --threads T]

One *batch* is a training and its test evaluation for each of ``--presets`` (default: four rows
of the proxy study with different costs: camvid-M1, camvid-M2, camvid-Q2, camvid-equss, seed 0,
``--steps`` steps each: 250, the proxy's step count chosen on validation), made by
:func:`equss.paper.executor.run_many` from an empty run cache, either serially (``serial``: this
process, one run after the other at the default thread count: the notebooks' path today) or by
the local pool (``local``: ``--workers`` x ``--threads``, default: the layout measured by
:func:`equss.paper.executor.layout`).  Same commit, fresh processes, the two paths alternating
(serial, local, serial, local, ...); the figure is the median over ``--repeats`` of runs per hour.
Feature caches, the kNN table, the layout measurement and the cost calibration are made
beforehand and not timed (warm caches: each measurement gets its own empty ``runs/`` folder and
shares the rest of the cache by symbolic links).  The plan's prediction (:func:`plan`) is written
beside each measured wall time.

Why the speed-up is what it is (``diagnosis`` in the JSON, from
:func:`equss.paper.executor.measure_layout`, measured afresh): the synthetic proxy training step
at 1 thread and at all cores in one process (how well one run uses the cores), and ``cores``
one-thread processes at once (how much they slow each other: memory bandwidth, caches).  The
pool's ceiling is ``cores x step(1 process, all threads) / step(cores processes, 1 thread)``.
Memory bandwidth (``bandwidth``): a 256 MiB array copied by one process, then by ``cores``
processes at once (GB/s each and together): where the together figure is not ``cores`` times the
single one, concurrent runs share one memory bus.

``--study``: also the whole proxy study's predicted wall time, serially and in the pool (every
notebook's plan summed, ``equss reproduce all --plan``, on an empty run cache; it calibrates every
model shape of the study once: tens of minutes; with ``--quick`` the smoke study's, a check only).

``--quick``: smoke scale on the generated smoke data (a few images, 4 steps), 1 repeat: checks
that the benchmark runs, says nothing about the speed-up (per-run overheads dominate).
Target (issue 24): >= 2x on 2 cores.  Measure on a quiet machine: other work on the same cores
changes both paths differently.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import benchlib as bl  # noqa: E402

PRESETS = ["camvid-M1", "camvid-M2", "camvid-Q2", "camvid-equss"]
TARGET = 2.0
SHARED = ("features", "knn", "weights", "executor", "wheels")  # the warm part of the cache


# ---------------------------------------------------------------------------- child
def requests(a: dict):
    from equss.paper import runs
    from equss.paper.executor import Request

    data_root = a.get("data_root")
    if a["scale"] == "smoke" and not data_root:
        from equss.data.synthetic import smoke_data_root

        data_root = str(smoke_data_root())
    over = [f"train.steps={a['steps']}"] if a.get("steps") else []
    return [Request.run(runs.config(p, a["scale"], overrides=over + ["train.seed=0"], data_root=data_root,
                                    device="cpu")) for p in a["presets"]]


def _copy_rate(args) -> float:
    """GB/s of copying a ``mib`` MiB float64 array ``reps`` times in this process (after ``barrier``)."""
    import numpy as np

    mib, reps, barrier = args
    a = np.ones(mib << 17)  # float64: 2**17 per MiB
    b = np.empty_like(a)
    np.copyto(b, a)  # touched before timing
    barrier.wait()
    t0 = time.perf_counter()
    for _ in range(reps):
        np.copyto(b, a)
    return 2 * a.nbytes * reps / (time.perf_counter() - t0) / 1e9  # read + write


def bandwidth(processes: int, mib: int = 256, reps: int = 20) -> dict:
    """Copy bandwidth of one process alone and of ``processes`` at once (spawned, started together)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = {}
    for n in sorted({1, processes}):
        with ctx.Manager() as m:
            barrier = m.Barrier(n)
            with ctx.Pool(n) as pool:
                rates = pool.map(_copy_rate, [(mib, reps, barrier)] * n)
        out[n] = {"each_gb_s": [round(r, 2) for r in rates], "total_gb_s": round(sum(rates), 2)}
    one, all_ = out[1]["total_gb_s"], out[processes]["total_gb_s"]
    return {"array_mib": mib, "by_processes": {str(k): v for k, v in out.items()},
            "scaling": round(all_ / one, 2) if one else None}


def study_plan(work: Path, scale: str) -> dict:
    """The whole study's plan (every notebook, empty run cache): predicted serial and pool wall time."""
    from equss.pipeline.reproduce import plan

    plans = plan(["all"], scale, results=str(work / "study-results"), progress=False)
    preds = [p["prediction"] for p in plans if p.get("prediction")]
    par = preds[0]["parallel"] if preds else {}
    return {"notebooks": [p["notebook"] for p in plans], "new": sum(p["counts"]["new"] for p in plans),
            "jobs": sum(len(p["jobs"]) for p in plans),
            "serial_s": round(sum(q["serial"]["wall_s"] for q in preds), 1),
            "parallel_s": round(sum(q["parallel"]["wall_s"] for q in preds), 1),
            "layout": f"{par.get('workers')} x {par.get('threads')}"}


def child(a: dict) -> dict:
    from equss.paper import executor as ex

    if a["what"] == "study":
        return study_plan(Path(a["work"]), a["scale"])
    reqs = requests(a)
    if a["what"] == "warm":  # untimed: caches, layout measurement, calibration, the plan's prediction
        from equss.paper import jobs

        for prep in [j for j in ex.jobs_for(reqs) if j["kind"] == "prepare"]:
            jobs.do(prep)
        diagnosis = ex.measure_layout(refresh=True)
        lay = ex.layout(a.get("workers"), a.get("threads"), scale=a["scale"])
        pred = ex.plan(reqs, workers=lay["workers"], threads=lay["threads"])["prediction"]
        return {"layout": lay, "diagnosis": diagnosis, "prediction": pred,
                "bandwidth": bandwidth(ex.cores(), mib=32 if a["scale"] == "smoke" else 256)}
    t0 = time.perf_counter()
    kw = {"workers": a["workers"], "threads": a["threads"]} if a["what"] == "local" else {}
    results = ex.run_many(reqs, executor=a["what"], progress=False, logs=a["logs"], **kw)
    wall = time.perf_counter() - t0
    prov = [r["provenance"] for r in results]
    return {"wall_s": wall, "runs": len(results), "load_avg": list(os.getloadavg()),
            "threads": sorted({p.get("threads") for p in prov}),
            "test_cluster_mIoU": [r["cluster"]["mIoU"] for r in results],
            "train_wall_s": [json.loads((Path(r["run_dir"]) / "provenance.json").read_text())["wall_s"]
                             for r in results]}


# ---------------------------------------------------------------------------- parent
def run_child(a: dict, cache: Path, timeout: float) -> dict:
    env = dict(os.environ, EQUSS_CACHE=str(cache), PYTHONPATH=str(bl.ROOT))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(a)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"{a['what']} failed (exit {proc.returncode})")
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])


def fresh_cache(work: Path, warm: Path, name: str) -> Path:
    """An empty run cache sharing the warm caches (features, kNN, weights, calibration) by links."""
    cache = work / name
    cache.mkdir()
    for sub in SHARED:
        (warm / sub).mkdir(exist_ok=True)
        (cache / sub).symlink_to(warm / sub, target_is_directory=True)
    return cache


def main() -> None:
    if "--child" in sys.argv:
        print(json.dumps(child(json.loads(sys.argv[sys.argv.index("--child") + 1]))), flush=True)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    bl.add_common_args(p)
    p.add_argument("--presets", nargs="+", default=PRESETS, help="one run each (default: %(default)s)")
    p.add_argument("--steps", type=int, default=250, help="training steps per run (proxy: 250, chosen on validation)")
    p.add_argument("--workers", type=int, help="local pool workers (default: measured layout)")
    p.add_argument("--threads", type=int, help="threads per worker (default: measured layout)")
    p.add_argument("--timeout", type=float, default=6 * 3600, help="per measurement, seconds")
    p.add_argument("--study", action="store_true", help="also the whole proxy study's predicted wall time "
                                                        "(equss reproduce all --plan; calibrates every model shape)")
    args = p.parse_args()
    if args.device != "cpu":
        raise SystemExit("bench_executor measures the CPU pool; --device cpu only")
    scale = "smoke" if args.quick else "proxy"
    if args.quick:
        args.steps = 0  # the smoke preset's own (4)
    else:
        bl.need_data()
    repeats = args.repeats or (1 if args.quick else 3)
    work = Path(tempfile.mkdtemp(prefix="bench_executor_"))
    warm = work / "warm"
    a = {"scale": scale, "presets": args.presets, "steps": args.steps, "workers": args.workers,
         "threads": args.threads, "data_root": os.environ.get("EQUSS_DATA") if scale == "proxy" else None}
    print(f"warming the caches, measuring the layout, calibrating (untimed; {work}) ...", flush=True)
    w = run_child({**a, "what": "warm"}, warm, args.timeout)
    lay = w["layout"]
    a.update(workers=lay["workers"], threads=lay["threads"])
    print(f"layout: {lay['workers']} workers x {lay['threads']} threads ({lay['how']})", flush=True)
    measured = {"serial": [], "local": []}
    for r in range(repeats):
        for what in ("serial", "local"):
            cache = fresh_cache(work, warm, f"{what}{r}")
            res = run_child({**a, "what": what, "logs": str(work / f"logs-{what}{r}")}, cache, args.timeout)
            res["runs_per_hour"] = res["runs"] / res["wall_s"] * 3600
            measured[what].append(res)
            print(f"repeat {r} {what:<6}: {res['runs']} runs in {res['wall_s']:.1f} s = "
                  f"{res['runs_per_hour']:.1f} runs/h (threads {res['threads']}, load {res['load_avg'][0]:.1f})",
                  flush=True)
    med = {k: statistics.median(r["runs_per_hour"] for r in v) for k, v in measured.items()}
    wall = {k: statistics.median(r["wall_s"] for r in v) for k, v in measured.items()}
    speedup = med["local"] / med["serial"]
    pred = w["prediction"]
    rows = [{"path": "serial", "runs/h": med["serial"], "wall s": wall["serial"],
             "predicted s": pred["serial"]["wall_s"], "threads": str(measured["serial"][0]["threads"])},
            {"path": f"local {lay['workers']}x{lay['threads']}", "runs/h": med["local"], "wall s": wall["local"],
             "predicted s": pred["parallel"]["wall_s"], "threads": str(measured["local"][0]["threads"])}]
    bl.table(rows, list(rows[0]), f"{len(args.presets)} runs ({scale}), medians of {repeats}")
    d = {(r["workers"], r["threads"]): r for r in w["diagnosis"]["rows"]}
    n = w["diagnosis"]["cores"]
    one, all_threads, together = (d.get(k, {}).get("step_s") for k in ((1, 1), (1, n), (n, 1)))
    diagnosis = {"cores": n, "step_s_1_thread": one, f"step_s_{n}_threads": all_threads,
                 f"step_s_{n}_processes_1_thread": together,
                 "thread_scaling": (one / all_threads) if one and all_threads else None,
                 "contention": (together / one) if one and together else None,
                 "pool_ceiling": (n * all_threads / together) if all_threads and together else None}
    bw = w["bandwidth"]
    diagnosis["memory_copy_gb_s_1_process"] = bw["by_processes"]["1"]["total_gb_s"]
    diagnosis[f"memory_copy_gb_s_{n}_processes"] = bw["by_processes"].get(str(n), {}).get("total_gb_s")
    diagnosis["memory_bandwidth_scaling"] = bw["scaling"]
    study = None
    if args.study:
        print("the whole proxy study's plan (equss reproduce all --plan; untimed) ...", flush=True)
        study = run_child({**a, "what": "study", "work": str(work)}, fresh_cache(work, warm, "study"), args.timeout)
    loads = [r["load_avg"][0] for v in measured.values() for r in v]
    scope = "" if not args.quick else " (quick: smoke scale, overheads dominate)"
    heads = [bl.headline(f"trainings+evaluations per hour, local pool / serial{scope}", round(speedup, 2), "x",
                         f">= {TARGET:g}x on 2 cores", speedup >= TARGET),
             bl.headline("local pool runs per hour", round(med["local"], 1), "runs/h"),
             bl.headline("serial runs per hour", round(med["serial"], 1), "runs/h")]
    if study:
        heads.append(bl.headline(f"whole proxy study predicted, serial / pool {study['layout']}",
                                 f"{study['serial_s'] / 3600:.1f} h / {study['parallel_s'] / 3600:.1f} h", ""))
    ceiling = diagnosis["pool_ceiling"]
    note = (f"{len(args.presets)} runs ({', '.join(args.presets)}, {args.steps or 'preset'} steps, {scale}), "
            f"medians of {repeats} alternating serial/local measurements in fresh processes, warm feature caches; "
            f"layout {lay['workers']}x{lay['threads']} ({lay['how']}); 1-min load {min(loads):.1f}-{max(loads):.1f}. "
            + (f"Synthetic proxy step: {diagnosis['thread_scaling']:.2f}x faster at {n} threads than at 1; "
               f"{n} one-thread processes at once each {diagnosis['contention']:.2f}x slower than alone; pool ceiling "
               f"{ceiling:.2f}x. " if ceiling else "")
            + (f"Memory copy bandwidth: {diagnosis['memory_copy_gb_s_1_process']:.1f} GB/s one process, "
               f"{diagnosis[f'memory_copy_gb_s_{n}_processes']:.1f} GB/s {n} at once "
               f"({diagnosis['memory_bandwidth_scaling']:.2f}x). " if diagnosis.get("memory_bandwidth_scaling") else "")
            + f"Predicted wall time: serial {pred['serial']['wall_s']:.0f} s, local {pred['parallel']['wall_s']:.0f} s. "
            + "Serial runs at the default thread count and the pool at its own: their last digits may differ.")
    bl.write_result("bench_executor", {
        "quick": args.quick, "machine": bl.machine("cpu"), "args": {k: v for k, v in vars(args).items() if k != "child"},
        "repeats": repeats, "layout": lay, "headline": heads, "rows": rows, "diagnosis": diagnosis,
        "layout_measurement": w["diagnosis"], "bandwidth": bw, "prediction": pred, "study_prediction": study,
        "measurements": measured, "note": note},
        args.out_dir)


if __name__ == "__main__":
    main()
