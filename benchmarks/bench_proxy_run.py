"""One proxy run (camvid-equss: train + validations + test evaluation), old path vs new path.

    python benchmarks/bench_proxy_run.py [--quick] [--base COMMIT] [--repeats N]
        [--steps N] [--val-images N] [--test-images N]

"Old path": the ``equss`` package as it was at ``--base`` (the commit before the speed-ups
of issue 9, default 4097790), extracted with ``git archive`` into a temporary folder.
"New path": this checkout.  Both are fp32 (this CPU has no native bf16, so
``equss.device.amp_dtype`` keeps autocast off; bf16 without native support is 2-8x slower).

Each run is a fresh subprocess, old and new alternating (old, new, old, new, ...) so that
both see the same machine load; it runs the real ``Trainer.fit`` (``--steps`` steps,
validation every ``val_every = steps // 3`` steps and at the end, as the proxy's 100 of
300) and then ``evaluate_checkpoint`` on ``best.pt`` (test split, flip as the preset), and
reports its wall times, the median step time (from ``log.jsonl``) and its peak RSS
(``ru_maxrss``).  Feature caches and the kNN table (``EQUSS_CACHE``) are built beforehand
and not timed (warm-cache runs).  ``--val-images`` / ``--test-images`` > 0 evaluate on the
first N images only (a stand-in for the full splits when the machine is too slow or loaded
for full runs; the JSON says which).  Seeds are the same for both paths: the results are the
same up to float rounding (both numbers are recorded).
Targets (issue 9): step >= 4x, whole run >= 3x, peak RSS <= 3 GB.
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

BASE = "4097790"
TARGET_STEP, TARGET_RUN, TARGET_RSS = 4.0, 3.0, 3 * 10**9


# ---------------------------------------------------------------------------- child
def child(a: dict) -> dict:
    """One run with the equss package found first on sys.path (old or new code)."""
    import resource

    import torch

    import equss
    import equss.pipeline.inputs as inputs
    import equss.pipeline.train as train_mod
    from equss.config import load_config
    from equss.pipeline.evaluate import evaluate_checkpoint

    assert str(Path(equss.__file__).resolve()).startswith(a["code"]), (equss.__file__, a["code"])
    real = inputs.make_dataset

    def subset(cfg, split, *args, **kw):  # evaluation on the first N images (if asked)
        ds = real(cfg, split, *args, **kw)
        n = {cfg.data.val_split: a["val_images"], cfg.data.test_split: a["test_images"]}.get(split, 0)
        return inputs.FirstN(ds, n) if n and split != cfg.data.train_split else ds

    inputs.make_dataset = train_mod.make_dataset = subset
    cfg = load_config("camvid-equss", "proxy", overrides=[
        f"train.steps={a['steps']}", f"train.val_every={max(1, a['steps'] // 3)}", "train.device=cpu",
        f"train.ckpt_every={a['steps']}", "train.log_every=1"])
    out = Path(a["out"])
    t0 = time.perf_counter()
    trainer = train_mod.Trainer(cfg, out, progress=False)
    setup_s = time.perf_counter() - t0
    val_s = []
    real_validate = trainer.validate

    def timed_validate():
        v0 = time.perf_counter()
        res = real_validate()
        val_s.append(time.perf_counter() - v0)
        return res

    trainer.validate = timed_validate
    t1 = time.perf_counter()
    summary = trainer.fit()
    fit_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    res = evaluate_checkpoint(out / "best.pt", device="cpu", progress=False)
    test_s = time.perf_counter() - t2
    total = time.perf_counter() - t0
    times = [json.loads(ln)["time"] for ln in (out / "log.jsonl").read_text().splitlines()
             if '"time"' in ln and '"val"' not in ln]
    step_s = [b - a_ for a_, b in zip([0.0] + times[:-1], times)]
    # the steps right after a validation include it; the step times are those without one
    val_after = {int(json.loads(ln)["step"]) for ln in (out / "log.jsonl").read_text().splitlines() if '"val"' in ln}
    pure = [s for i, s in enumerate(step_s, start=1) if i - 1 not in val_after and i > 1]
    return {"setup_s": setup_s, "fit_s": fit_s, "val_s": val_s, "train_s": fit_s - sum(val_s),
            "test_s": test_s, "total_s": total, "step_median_s": statistics.median(pure or step_s),
            "steps": summary["steps"], "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "test_cluster_mIoU": res["cluster"]["mIoU"], "test_cluster_Accuracy": res["cluster"]["Accuracy"],
            "test_linear_mIoU": res["linear"]["mIoU"], "val_best": summary["best"],
            "last_loss": summary["last"].get("total"), "torch_threads": torch.get_num_threads(),
            "load_avg": list(os.getloadavg())}


# ---------------------------------------------------------------------------- parent
def run_child(code: Path, a: dict, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps({**a, "code": str(code)})]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"run with {code} failed (exit {proc.returncode})")
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])


def main() -> None:
    if "--child" in sys.argv:
        print(json.dumps(child(json.loads(sys.argv[sys.argv.index("--child") + 1]))), flush=True)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import benchlib as bl

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    bl.add_common_args(p)
    p.add_argument("--base", default=BASE, help="commit of the old path (default %(default)s)")
    p.add_argument("--steps", type=int, default=300, help="training steps per run (proxy: 300)")
    p.add_argument("--val-images", type=int, default=0, help="first N validation images (0: all 101)")
    p.add_argument("--test-images", type=int, default=0, help="first N test images (0: all 233)")
    p.add_argument("--timeout", type=float, default=6 * 3600, help="per run, seconds")
    args = p.parse_args()
    if args.device != "cpu":
        raise SystemExit("bench_proxy_run measures the CPU paths (issue 9); --device cpu only")
    if args.quick:
        args.steps, args.val_images, args.test_images = 6, 8, 8
    repeats = args.repeats or (2 if args.quick else 5)
    bl.need_data()

    work = Path(tempfile.mkdtemp(prefix="bench_proxy_run_"))
    old = work / "old"
    old.mkdir()
    archive = subprocess.run(["git", "archive", args.base, "equss"], cwd=bl.ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    base_commit = subprocess.run(["git", "rev-parse", args.base], cwd=bl.ROOT, capture_output=True,
                                 text=True, check=True).stdout.strip()
    a = {"steps": args.steps, "val_images": args.val_images, "test_images": args.test_images}
    # warm the caches (untimed): one 1-step run of the new code builds whatever is missing
    print("warming the feature caches (untimed) ...", flush=True)
    run_child(bl.ROOT, {**a, "steps": 1, "out": str(work / "warm")}, args.timeout)

    runs = {"old": [], "new": []}
    for r in range(repeats):
        for name, code in (("old", old), ("new", bl.ROOT)):
            res = run_child(code, {**a, "out": str(work / f"{name}{r}")}, args.timeout)
            runs[name].append(res)
            print(f"repeat {r} {name}: total {res['total_s']:.1f} s, step {res['step_median_s']:.2f} s, "
                  f"val {sum(res['val_s']):.1f} s, test {res['test_s']:.1f} s, peak RSS "
                  f"{res['peak_rss_bytes'] / 1e9:.2f} GB, load {res['load_avg'][0]:.1f}", flush=True)

    def med(name, key):
        return statistics.median(r[key] for r in runs[name])

    rows = []
    for name in ("old", "new"):
        rows.append({"path": name, "total s": med(name, "total_s"), "train s": med(name, "train_s"),
                     "step s": med(name, "step_median_s"),
                     "val s": statistics.median(sum(r["val_s"]) for r in runs[name]),
                     "test s": med(name, "test_s"), "peak RSS GB": max(r["peak_rss_bytes"] for r in runs[name]) / 1e9,
                     "test cluster mIoU": med(name, "test_cluster_mIoU"),
                     "test linear mIoU": med(name, "test_linear_mIoU")})
    bl.table(rows, list(rows[0]), f"proxy run camvid-equss, {args.steps} steps, medians of {repeats}")
    step_x = rows[0]["step s"] / rows[1]["step s"]
    run_x = rows[0]["total s"] / rows[1]["total s"]
    full = args.steps == 300 and not args.val_images and not args.test_images
    scope = "" if full else f" ({args.steps} steps, val {args.val_images or 'all'}, test {args.test_images or 'all'} images)"
    heads = [bl.headline(f"proxy training step speed-up, new/old{scope}", round(step_x, 2), "x", ">= 4x", step_x >= TARGET_STEP),
             bl.headline(f"proxy run speed-up (train+val+test), new/old{scope}", round(run_x, 2), "x", ">= 3x",
                         run_x >= TARGET_RUN),
             bl.headline("proxy run peak RSS (new path)", round(rows[1]["peak RSS GB"], 2), "GB", "<= 3 GB",
                         rows[1]["peak RSS GB"] * 1e9 <= TARGET_RSS)]
    val_x, test_x = rows[0]["val s"] / rows[1]["val s"], rows[0]["test s"] / rows[1]["test s"]
    loads = [r["load_avg"][0] for v in runs.values() for r in v]
    missed = [f"training step {step_x:.2f}x (target 4x)"] if step_x < TARGET_STEP else []
    missed += [f"whole run {run_x:.2f}x (target 3x)"] if run_x < TARGET_RUN else []
    note = (f"{'Full scale' if full else 'Reduced scale'} ({args.steps} steps, validation on "
            f"{args.val_images or 'all'} and test on {args.test_images or 'all'} images, medians of {repeats} "
            f"alternating old/new processes, warm caches), 1-min load {min(loads):.1f}-{max(loads):.1f}. "
            f"Validation {val_x:.2f}x and test evaluation {test_x:.2f}x faster. "
            + (f"Targets missed: {'; '.join(missed)}. Bound: see results/bench/profile_proxy_run.md. " if missed else "")
            + f"Same seed: test unsupervised mIoU old {rows[0]['test cluster mIoU']:.2f} / new "
            f"{rows[1]['test cluster mIoU']:.2f}.")
    bl.write_result("bench_proxy_run", {
        "quick": args.quick, "full_scale": full, "machine": bl.machine("cpu"), "base_commit": base_commit,
        "args": {k: v for k, v in vars(args).items() if k != "child"}, "repeats": repeats,
        "cache": os.environ.get("EQUSS_CACHE"), "headline": heads, "rows": rows, "runs": runs,
        "note": note}, args.out_dir)


if __name__ == "__main__":
    main()
