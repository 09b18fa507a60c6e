"""Run every benchmark and write results/bench/README.md (what `make bench` calls).

    python benchmarks/run_all.py [--quick] [--device cuda] [--only pq knn ...]

Each ``bench_X.py`` runs in its own process and writes ``results/bench/bench_X.json``;
a failing benchmark is reported and the others still run (exit code 1 at the end).
``--quick`` passes ``--quick`` to each and skips ``bench_proxy`` (the full proxy Table 1
run; ``bench_executor --quick`` runs at smoke scale); without it ``bench_executor`` also predicts
the whole proxy study's wall time (``--study``).  The README table is built from the JSON files present, so it always shows the
latest figure of each benchmark and the machine it came from.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import benchlib as bl  # noqa: E402

BENCHES = ["pq", "train_step", "features", "eval", "knn", "proxy", "proxy_run", "executor"]


def fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 10 else f"{v:,.1f}"
    return "" if v is None else str(v)


def write_readme(out_dir: Path) -> Path:
    lines = ["# Benchmarks (latest figures)", "",
             "Written by `benchmarks/run_all.py` (`make bench`) from the `bench_*.json` files in this folder; "
             "each JSON holds every figure, the machine and the git commit.  Quick-mode figures "
             "(`--quick`: smaller sizes, fewer repeats) are sanity checks only.", "",
             "| benchmark | figure | value | target | met |", "|---|---|---|---|---|"]
    machines, notes = {}, []
    for name in [n + suffix for n in BENCHES for suffix in ("", "_cuda")]:
        path = out_dir / f"bench_{name}.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        m = data.get("machine", {})
        tag = f"`bench_{name}`" + (" (quick)" if data.get("quick") else "")
        for h in data.get("headline", []):
            met = "" if h.get("met") is None else ("yes" if h["met"] else "**no**")
            lines.append(f"| {tag} | {h['what']} | {fmt(h['value'])} {h.get('unit', '')} | {h.get('target') or ''} | {met} |")
        machines[f"bench_{name}"] = (f"{m.get('device', '?')}; torch {m.get('torch', '?')}; "
                                     f"{m.get('cpu_count', '?')} CPUs; load {', '.join(f'{x:.1f}' for x in m.get('load_avg', []))}; "
                                     f"commit `{m.get('git_commit', '?')}`; {m.get('time_utc', '')}")
        if data.get("note"):
            notes.append(f"- `bench_{name}`: {data['note']}")
    lines += ["", "## Machines", ""] + [f"- `{k}`: {v}" for k, v in machines.items()]
    if notes:
        lines += ["", "## Notes", ""] + notes
    path = out_dir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="quick mode of each benchmark; skips bench_proxy")
    p.add_argument("--device", default="cpu", help="cpu | cuda (passed to every benchmark)")
    p.add_argument("--only", nargs="+", choices=BENCHES, help="run only these")
    p.add_argument("--out-dir", default=str(bl.RESULTS))
    p.add_argument("--readme-only", action="store_true", help="only rebuild README.md from the JSON files")
    args = p.parse_args()
    out_dir = Path(args.out_dir)
    status = {}
    if not args.readme_only:
        for name in args.only or BENCHES:
            if args.quick and name == "proxy":
                print("== bench_proxy: skipped in --quick mode", flush=True)
                continue
            cmd = [sys.executable, str(HERE / f"bench_{name}.py"), "--device", args.device, "--out-dir", str(out_dir)]
            cmd += ["--quick"] if args.quick else (["--study"] if name == "executor" else [])
            print(f"\n== bench_{name}: {' '.join(cmd[1:])}", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.run(cmd, cwd=bl.ROOT).returncode
            status[name] = (rc, time.perf_counter() - t0)
    readme = write_readme(out_dir)
    print(f"\nwrote {readme}")
    for name, (rc, dt) in status.items():
        print(f"  bench_{name:<11} {'ok' if rc == 0 else f'FAILED (exit {rc})':<18} {dt:7.1f} s")
    return 1 if any(rc for rc, _ in status.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
