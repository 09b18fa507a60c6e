"""kNN precompute (equss.data.knn.compute_knn) time and peak memory vs N.

    python benchmarks/bench_knn.py [--quick] [--device cuda] [--sizes 1000 10000 100000]

N synthetic 384-d vectors (the pooled features of N images), top-30 cosine neighbours.
Each N runs in its own subprocess: peak memory is its ``ru_maxrss`` growth over the
baseline taken after the input array exists (CPU), or ``torch.cuda.max_memory_allocated``
(CUDA).  compute_knn works in query x key blocks, so memory should grow linearly in N
(the output table is N x k int64); the table reports bytes per N and the N x N float32
similarity matrix a direct implementation would hold.
"""
from __future__ import annotations

import argparse
import json

import benchlib as bl


def child(a: dict) -> dict:
    import numpy as np
    import torch
    from equss.data.knn import compute_knn

    dev = torch.device(a["device"])
    x = np.random.default_rng(0).standard_normal((a["n"], a["dim"]), dtype=np.float32)
    compute_knn(x[:256], k=min(a["k"], 256), device=dev)  # warm-up (allocator, threads)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    base = bl.max_rss_bytes()
    t = bl.time_it(lambda: compute_knn(x, k=a["k"], device=dev), a["repeats"], 0, dev)
    out = {"median_ms": t["median_ms"], "samples_ms": t["samples_ms"], "rss_growth_bytes": bl.max_rss_bytes() - base,
           "peak_rss_bytes": bl.max_rss_bytes()}
    if dev.type == "cuda":
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(dev)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    bl.add_common_args(p)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=30)
    args = p.parse_args()
    if args.child:
        bl.child_result(child(json.loads(args.child)))
        return
    bl.check_device(args.device)
    if args.quick:
        args.sizes = [1000, 10000]
        args.repeats = args.repeats or 1
    args.repeats = args.repeats or 3

    rows = []
    for n in args.sizes:
        print(f"N={n:,}: {args.repeats} repeat(s) in a subprocess ...", flush=True)
        r = bl.run_child(__file__, {"n": n, "dim": args.dim, "k": args.k, "device": args.device, "repeats": args.repeats})
        mem = r.get("cuda_peak_bytes", r["rss_growth_bytes"])
        rows.append({"N": n, "time s": r["median_ms"] / 1e3, "peak MiB": mem / 2**20, "bytes/N": mem / n,
                     "output MiB": n * args.k * 8 / 2**20, "NxN fp32 MiB (avoided)": n * n * 4 / 2**20})
    print()
    bl.table(rows, ["N", "time s", "peak MiB", "bytes/N", "output MiB", "NxN fp32 MiB (avoided)"],
             f"compute_knn, {args.dim}-d, k={args.k}, {args.device}, median of {args.repeats}; peak = "
             + ("torch.cuda.max_memory_allocated" if args.device.startswith("cuda") else "ru_maxrss growth"))
    big = rows[-1]
    # linear growth: the per-N cost of the largest N is not above that of the middle one (+ slack for
    # the fixed-size similarity block, which dominates at small N)
    linear = len(rows) < 2 or big["peak MiB"] <= 2 * rows[-2]["bytes/N"] * big["N"] / 2**20 + 160
    heads = [bl.headline(f"kNN N={big['N']:,} time", round(big["time s"], 2), "s"),
             bl.headline(f"kNN N={big['N']:,} peak memory", round(big["peak MiB"], 1), "MiB",
                         f"linear in N (NxN fp32 = {big['NxN fp32 MiB (avoided)']:,.0f} MiB avoided)", linear)]
    bl.write_result("bench_knn", {"quick": args.quick, "machine": bl.machine(args.device),
                                  "args": {k: v for k, v in vars(args).items() if k != "child"},
                                  "headline": heads, "rows": rows}, args.out_dir)


if __name__ == "__main__":
    main()
