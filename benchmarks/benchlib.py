"""Shared helpers for the benchmark scripts (timing, machine description, results, tables).

Every ``bench_X.py`` writes ``results/bench/bench_X.json`` with this layout::

    {"benchmark": "bench_X", "quick": bool, "machine": {...}, "args": {...},
     "headline": [{"what", "value", "unit", "target", "met"}, ...],   # for the README table
     "rows": [...],                                                      # every measured figure
     "note": "..."}

Timings are medians over ``repeats`` after ``warmup`` untimed calls; on CUDA every call
is synchronised.  Peak memory on CPU is the ``ru_maxrss`` growth of a fresh subprocess
(one per configuration), on CUDA ``torch.cuda.max_memory_allocated``.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "bench"
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------- timing
def sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_it(fn, repeats: int = 5, warmup: int = 1, device="cpu") -> dict:
    """Median wall time of ``fn()`` in ms over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    samples = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        sync(device)
        samples.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(samples), "min_ms": min(samples), "samples_ms": samples}


def max_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kib) * (1 if sys.platform == "darwin" else 1024)


# ---------------------------------------------------------------------------- subprocesses
def run_child(script: str, child_args: dict, extra: list[str] | None = None, timeout: float | None = None) -> dict:
    """Run ``python script --child JSON`` and return the JSON the child prints last on stdout."""
    cmd = [sys.executable, script, "--child", json.dumps(child_args)] + list(extra or [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"child {child_args} failed with exit code {proc.returncode}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"child {child_args} printed no result; stderr:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def child_result(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


# ---------------------------------------------------------------------------- machine / results
def machine(device="cpu") -> dict:
    import torch
    from equss.device import device_description
    from equss.provenance import provenance

    info = provenance()
    info["device"] = device_description(device)
    info["torch_threads"] = torch.get_num_threads()
    try:
        info["load_avg"] = list(os.getloadavg())
    except OSError:
        pass
    if torch.device(device).type == "cuda":
        info["cuda"] = torch.version.cuda
    return info


def headline(what: str, value, unit: str = "", target: str | None = None, met: bool | None = None) -> dict:
    return {"what": what, "value": value, "unit": unit, "target": target, "met": met}


def write_result(name: str, data: dict, out_dir: Path | None = None) -> Path:
    from equss.io import write_json

    path = Path(out_dir or RESULTS) / f"{name}.json"
    write_json(path, {"benchmark": name, **data})
    print(f"\nwrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def table(rows: list[dict], cols: list[str], title: str | None = None) -> str:
    """A plain fixed-width table; floats get 3 significant decimals."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e-2 and v != 0 else f"{v:,.2f}"
        if isinstance(v, bool) or v is None:
            return {True: "yes", False: "NO", None: "-"}[v]
        return str(v)

    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(cols)]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    out = "\n".join(lines)
    print(out)
    return out


def add_common_args(p, device: bool = True) -> None:
    p.add_argument("--quick", action="store_true", help="fast sanity mode: fewer sizes and repeats")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per figure (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up calls before timing")
    p.add_argument("--out-dir", default=str(RESULTS), help="where bench_X.json goes (default: results/bench)")
    if device:
        p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")
    p.add_argument("--child", help=argparse_suppress())


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def check_device(device: str) -> str:
    import torch

    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: CUDA is not available on this machine")
    return device


def data_available() -> bool:
    from equss.paths import data_root

    try:
        return (data_root() / "CamVid").is_dir()
    except Exception:  # noqa: BLE001 - EqussError or anything path-related
        return False


def need_data() -> None:
    if not data_available():
        raise SystemExit("this benchmark needs the CamVid images: set EQUSS_DATA to the data root "
                         "(the folder holding CamVid/), or run `equss prepare camvid`")
