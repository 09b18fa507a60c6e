"""tools/measure.py: the wall time and peak memory of `make reproduce`, kept across interruptions."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURE = [sys.executable, str(ROOT / "tools" / "measure.py")]
# a grandchild (python under sh) that holds ~200 MiB for a moment: peak RSS must see it
HOG = [sys.executable, "-c", "import time; b = bytes([1]) * (200 << 20); time.sleep(0.5)"]


def test_peak_rss_of_a_grandchild_and_exit_status(tmp_path):
    out = tmp_path / "reproduce.json"
    cmd = ["sh", "-c", " ".join(f"'{a}'" for a in HOG) + "; exit 3"]
    rc = subprocess.call(MEASURE + [str(out), "--"] + cmd, cwd=ROOT)
    doc = json.loads(out.read_text())
    assert rc == 3 and doc["segments"][-1]["exit_status"] == 3 and not doc["finished"]
    assert 200 <= doc["peak_rss_mib"] < 400, doc["peak_rss_mib"]
    assert doc["wall_s"] >= 0.5 and len(doc["git_commit"]) >= 7


def test_an_interrupted_record_is_continued_and_a_finished_one_restarted(tmp_path):
    out = tmp_path / "reproduce.json"
    # first segment: killed with SIGKILL after its first heartbeat (as a machine going away)
    env = {**os.environ, "EQUSS_MEASURE_HEARTBEAT_S": "0.2"}
    p = subprocess.Popen(MEASURE + [str(out), "--", "sleep", "30"], cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if out.is_file() and json.loads(out.read_text())["segments"][0]["wall_s"] > 0:
            break
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    first = json.loads(out.read_text())
    assert first["segments"][0]["exit_status"] is None and first["wall_s"] > 0
    # second segment continues the record; it finishes
    assert subprocess.call(MEASURE + [str(out), "--", "sleep", "0.3"], cwd=ROOT, env=env) == 0
    doc = json.loads(out.read_text())
    assert len(doc["segments"]) == 2 and doc["finished"]
    assert abs(doc["wall_s"] - sum(s["wall_s"] for s in doc["segments"])) < 0.2
    # a new invocation after a finished record starts a new record
    assert subprocess.call(MEASURE + [str(out), "--", "true"], cwd=ROOT, env=env) == 0
    assert len(json.loads(out.read_text())["segments"]) == 1
