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


def _plan(notebook: str, executor: str, serial: float, parallel: float, actual: float, finished: str,
          new: int = 2) -> dict:
    """A plan record as equss.paper.fanout writes it."""
    return {"notebook": notebook, "executor": executor, "layout": {"workers": 2, "threads": 1},
            "counts": {"cached": 1, "evaluate": 0, "new": new},
            "prediction": {"serial": {"wall_s": serial}, "parallel": {"wall_s": parallel}} if new else None,
            "actual": {"wall_s": actual, "failed": [], "finished_utc": finished}}


def test_the_record_sets_each_notebooks_prediction_beside_its_measured_time(tmp_path):
    """reproduce.json's ``prediction``: per notebook the prediction for the executor that ran it (serial or the
    pool) beside the measured wall time of its runs, and their sums; a plan older than the record is left out."""
    sys.path.insert(0, str(ROOT / "tools"))
    import measure

    plans = tmp_path / "plans"
    plans.mkdir()
    rows = {"table1": _plan("table1", "local", 100.0, 60.0, 70.5, "2030-01-01T10:00:00+00:00"),
            "fig6": _plan("fig6", "serial", 400.0, 250.0, 390.0, "2030-01-01T11:00:00+00:00"),
            "fig4": _plan("fig4", "serial", 0.0, 0.0, 0.2, "2030-01-01T11:10:00+00:00", new=0),
            "old": _plan("old", "serial", 5.0, 5.0, 5.0, "2029-12-31T00:00:00+00:00")}
    for name, doc in rows.items():
        (plans / f"{name}.json").write_text(json.dumps(doc))
    got = measure.predictions(plans, "2030-01-01T09:00:00+00:00")
    by = {r["notebook"]: r for r in got["notebooks"]}
    assert sorted(by) == ["fig4", "fig6", "table1"]  # "old" finished before the record began
    assert (by["table1"]["predicted_s"], by["table1"]["actual_s"]) == (60.0, 70.5)  # the pool's prediction
    assert (by["fig6"]["predicted_s"], by["fig6"]["actual_s"]) == (400.0, 390.0)  # the serial one
    assert by["fig4"]["predicted_s"] == 0.0 and by["fig4"]["runs_to_do"] == 0  # everything cached
    assert got["predicted_s"] == 460.0 and got["actual_s"] == 460.7 and got["unpredicted"] == []
    # through the tool: the record beside the results folder's plans/
    out = tmp_path / "reproduce.json"
    for f in plans.glob("*.json"):  # finished after the record starts
        doc = json.loads(f.read_text())
        doc["actual"]["finished_utc"] = "2999-01-01T00:00:00+00:00"
        f.write_text(json.dumps(doc))
    p = subprocess.run(MEASURE + [str(out), "--", "true"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0
    doc = json.loads(out.read_text())
    assert doc["prediction"]["predicted_s"] == 465.0 and len(doc["prediction"]["notebooks"]) == 4
    assert "predicted 7.8 min, measured 7.8 min" in p.stdout, p.stdout
