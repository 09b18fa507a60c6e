"""Run a command and record its wall time and peak memory: ``python tools/measure.py OUT.json -- CMD ...``.

``make reproduce`` wraps the whole reproduction in it, so ``results/<scale>/reproduce.json``
says how long the run took and how much memory it needed.  Peak RSS is ``ru_maxrss`` of the
waited-for descendants (``RUSAGE_CHILDREN``): the largest single process of the tree (the
notebook kernels), not the sum of concurrent ones.  The exit status is the command's.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    out, cmd = Path(argv[0]), argv[2:]
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.monotonic()
    rc = subprocess.call(cmd)
    wall = time.monotonic() - t0
    flags = os.environ.get("MAKEFLAGS", "").split(" ")[0]
    if "n" in flags and not flags.startswith("-"):  # `make -n reproduce`: nothing ran, nothing to record
        return rc
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    from equss.io import write_json
    from equss.provenance import code_fingerprint, git_commit

    write_json(out, {"command": " ".join(cmd), "exit_status": rc, "started_utc": started,
                     "wall_s": round(wall, 1), "wall_h": round(wall / 3600, 3),
                     "peak_rss_mib": round(peak_kib / 1024, 1), "peak_rss_what": "largest process of the tree (ru_maxrss)",
                     "git_commit": git_commit(), "code_fingerprint": code_fingerprint(),
                     "host": platform.platform(), "cpus": os.cpu_count()})
    print(f"measure: {wall / 60:.1f} min, peak RSS {peak_kib / 1024:.0f} MiB -> {out}")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
