"""Wall time and peak memory of the whole proxy-scale Table 1 reproduction.

    python benchmarks/bench_proxy.py [--device cuda] [--results DIR]

Runs ``equss reproduce table1 --scale proxy --results <tmp>`` in a
subprocess and measures its wall time and the peak resident memory of the whole process
tree (the notebook's kernel is a grandchild): with psutil, the RSS of the process and all
its descendants summed, sampled every ``--interval`` s; without psutil, GNU
``/usr/bin/time -v`` (largest single process only).  ``RUSAGE_CHILDREN`` ru_maxrss (the
largest single descendant) is reported as well.  Uses the caches in EQUSS_CACHE as they
are (a cold cache includes feature extraction).  Targets: <= 20 min, <= 6 GB.
Not part of ``run_all.py --quick``.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib as bl

NOTEBOOK = "table1_cocostuff"
TARGET_S, TARGET_BYTES = 20 * 60, 6 * 10**9


def tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    bl.add_common_args(p)
    p.add_argument("--results", help="results folder for the notebook (default: a temporary folder, deleted)")
    p.add_argument("--interval", type=float, default=0.5, help="RSS sampling interval in seconds")
    p.add_argument("--timeout", type=float, default=3 * 3600, help="give up after this many seconds")
    args = p.parse_args()
    if args.quick:
        print("bench_proxy has no quick mode (it is the full proxy Table 1 run); skipping")
        return
    nb = bl.ROOT / "notebooks" / f"{NOTEBOOK}.ipynb"
    if not nb.is_file():
        raise SystemExit(f"bench_proxy: {nb.relative_to(bl.ROOT)} does not exist yet; nothing to measure "
                         f"(it is run as `equss reproduce {NOTEBOOK} --scale proxy`)")
    bl.need_data()

    results = Path(args.results) if args.results else Path(tempfile.mkdtemp(prefix="bench_proxy_"))
    cmd = [sys.executable, "-m", "equss", "reproduce", NOTEBOOK, "--scale", "proxy", "--results", str(results),
           "--device", args.device, "--no-compare"]
    try:
        import psutil  # noqa: F401
        have_psutil = True
    except ImportError:
        have_psutil = False
    time_v = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if not have_psutil and time_v:
        cmd = [time_v, "-v"] + cmd
    print("running:", " ".join(cmd), flush=True)

    peak = 0
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=bl.ROOT, stderr=subprocess.PIPE if not have_psutil else None, text=True)
    try:
        if have_psutil:
            import psutil

            ps = psutil.Process(proc.pid)
            while proc.poll() is None:
                peak = max(peak, tree_rss(ps))
                if time.perf_counter() - t0 > args.timeout:
                    proc.terminate()
                    raise SystemExit(f"bench_proxy: gave up after {args.timeout:.0f} s")
                time.sleep(args.interval)
            stderr = ""
        else:
            _, stderr = proc.communicate(timeout=args.timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    wall = time.perf_counter() - t0
    if not have_psutil:
        for line in (stderr or "").splitlines():
            if "Maximum resident set size" in line:
                peak = int(line.split(":")[1]) * 1024
        sys.stderr.write("\n".join((stderr or "").splitlines()[-40:]) + "\n")
    child_max = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    if not args.results:
        shutil.rmtree(results, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_proxy: the notebook run failed (exit code {proc.returncode}) after {wall:.0f} s")

    method = "psutil process-tree RSS sum" if have_psutil else "/usr/bin/time -v max RSS"
    rows = [{"what": f"{NOTEBOOK} --scale proxy", "wall min": wall / 60, "peak GB (tree)": peak / 1e9,
             "largest process GB": child_max / 1e9, "method": method}]
    print()
    bl.table(rows, ["what", "wall min", "peak GB (tree)", "largest process GB", "method"],
             f"proxy Table 1 end to end ({args.device})")
    heads = [bl.headline("proxy Table 1 wall time", round(wall / 60, 1), "min", "<= 20 min", wall <= TARGET_S),
             bl.headline("proxy Table 1 peak memory (process tree)", round(peak / 1e9, 2), "GB", "<= 6 GB",
                         peak <= TARGET_BYTES)]
    bl.write_result("bench_proxy", {"quick": False, "machine": bl.machine(args.device),
                                    "args": {k: v for k, v in vars(args).items() if k != "child"},
                                    "cache": os.environ.get("EQUSS_CACHE"), "headline": heads, "rows": rows},
                    args.out_dir)


if __name__ == "__main__":
    main()
