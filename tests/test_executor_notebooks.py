"""The notebooks declare their runs and make them with one ``run_many`` (``ex.run_all``): a table
made serially and by a local pool of workers is byte-identical; ``equss reproduce --plan`` prints
each notebook's runs (cached / new) and predicted wall time and trains nothing; after a real run
the prediction sits beside the measured wall time in ``<results>/plans/<notebook>.json``."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from equss.paper import executor as ex

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TRAINING = ["learning_curves", "table1_cocostuff", "table2_cityscapes_potsdam", "table3_ablation", "fig2_dimension",
            "fig4_entropy", "fig5_qualitative", "fig6_mk_grid"]
pytestmark = pytest.mark.skipif(ex.cores() < 2, reason="the pool of 2 workers x 1 thread needs 2 cores")


def _cells(name: str) -> list[str]:
    return [c.strip() for c in (NOTEBOOKS / f"{name}.py").read_text().split("# %%")]


@pytest.mark.parametrize("name", TRAINING)
def test_each_notebook_declares_its_runs_then_makes_them_in_one_call(name):
    """One cell builds the requests; the next makes all of them with one ex.run_all (one run_many: the
    executor can fan them out), with the notebook's run_options and plan_only parameters; no run is
    made one by one any more."""
    src = (NOTEBOOKS / f"{name}.py").read_text()
    assert re.search(r"^run_options = \{\}", src, re.M) and re.search(r"^plan_only = False", src, re.M)
    assert not re.search(r"ex\.(run|baseline|step_evaluations)\(", src), "a run made outside run_all"
    cells = _cells(name)
    calls = [i for i, c in enumerate(cells) if "ex.run_all(" in c]
    assert len(calls) == 1, "exactly one run_all"
    assert re.search(r"ex\.run_all\(requests, records, \"\w+\", plan_only, \*\*run_options\)", cells[calls[0]])
    assert "ex.Request." in cells[calls[0] - 1] and "requests" in cells[calls[0] - 1]
    assert "ex.Request." not in cells[calls[0]]


def _seed_layout(cache: Path) -> None:
    """The layout measurement (minutes of proxy training steps on a busy machine) as if made here:
    1 x 1 thread, 2 x 1 thread (each 1.25x slower), 1 x 2 threads."""
    folder = cache / "executor"
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"workers": 1, "threads": 1, "step_s": 1.0, "startup_s": 3.0, "steps_per_s": 1.0},
            {"workers": 2, "threads": 1, "step_s": 1.25, "startup_s": 4.0, "steps_per_s": 1.6},
            {"workers": 1, "threads": 2, "step_s": 0.75, "startup_s": 3.0, "steps_per_s": 1.33}]
    (folder / f"layout-{ex._machine_key()}.json").write_text(json.dumps({"rows": rows, "cores": 2, "best": {
        "workers": 2, "threads": 1}}))


def _run_folders(cache: Path) -> list[str]:
    runs = cache / "runs"
    return sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """Table 1 at smoke scale, planned first (nothing trains), then made serially at 1 thread (the
    notebook's run_options parameter, with the prediction asked for), then planned again; in a cache
    of its own."""
    pytest.importorskip("papermill")
    from equss import cli
    from equss.paper.notebooks import execute

    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("serial")
    cache, results = base / "cache", base / "results"
    mp.setenv("EQUSS_CACHE", str(cache))
    _seed_layout(cache)
    argv = ["reproduce", "table1", "fig4", "claims", "--scale", "smoke", "--results", str(results), "--plan",
            "--threads", "1", "--device", "cpu", "--no-progress"]
    out = {}
    try:
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            out["plan_code"] = cli.main(argv)
        out["plan_before"] = buf.getvalue()
        out["runs_after_plan"] = _run_folders(cache)
        out["results_after_plan"] = sorted(str(p.relative_to(results)) for p in results.rglob("*"))
        execute("table1_cocostuff", "smoke", results=str(results), device="cpu", progress=False,
                extra={"run_options": {"executor": "serial", "threads": 1, "predict": True}})
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            out["replan_code"] = cli.main(argv)
        out["plan_after"] = buf.getvalue()
    finally:
        mp.undo()
    out.update(results=results, cache=cache)
    return out


@pytest.mark.slow
def test_the_plan_says_what_is_new_and_what_it_costs_and_trains_nothing(serial):
    text = serial["plan_before"]
    assert serial["plan_code"] == 0, text
    assert "equss: plan of table1_cocostuff:" in text
    # Table 1 at smoke: the baseline; STEGO, M1 and EQUSS without and with the CRF and their post-hoc probes;
    # jobs: caches, baseline, 3 trainings (a training's evaluations are its job)
    assert "  10 requests: 0 cached, 0 to evaluate, 10 new; 5 jobs" in text
    assert re.search(r"predicted wall time: serial \dm\d\ds \(2 threads\); 2 workers x 1 threads \dm\d\ds", text), text
    # Fig. 4 reuses Table 1's runs: made by the earlier notebook, cached by the time it runs
    assert "equss: plan of fig4_entropy (3 jobs made by an earlier notebook):" in text
    assert "  2 requests: 2 cached, 0 to evaluate, 0 new; 0 jobs" in text
    assert "equss: plan of claims: no runs declared" in text
    assert "equss: plan of 2 notebooks: 12 requests: 2 cached, 0 to evaluate, 10 new; 5 jobs; predicted wall time" in text
    # nothing trained, nothing written but the results folder's empty runs/
    assert serial["runs_after_plan"] == []
    assert serial["results_after_plan"] == ["runs"]
    # after the run: everything cached
    assert serial["replan_code"] == 0
    assert "  10 requests: 10 cached, 0 to evaluate, 0 new; 0 jobs" in serial["plan_after"]


@pytest.mark.slow
def test_the_prediction_is_recorded_beside_the_measured_wall_time(serial):
    results = serial["results"]
    doc = json.loads((results / "plans" / "table1.json").read_text())
    assert doc["notebook"] == "table1" and doc["executor"] == "serial" and doc["layout"]["threads"] == 1
    assert doc["counts"] == {"cached": 0, "evaluate": 0, "new": 10}
    pred = doc["prediction"]
    assert pred["serial"]["wall_s"] > 0 and pred["parallel"]["wall_s"] > 0
    assert {j["name"] for j in pred["jobs"]} == {j["name"] for j in doc["jobs"]}
    assert doc["actual"]["wall_s"] > 0 and doc["actual"]["failed"] == []
    text = (results / "plans" / "table1.json").read_text()
    assert str(serial["cache"]) not in text and "logs" not in doc  # no machine path
    # the runs' provenance names the executor and the thread count
    prov = [json.loads(p.read_text()) for p in (results / "runs").glob("*/provenance.json")]
    assert prov and all(p["threads"] == 1 and p["executor"] == "serial" for p in prov)


@pytest.mark.slow
def test_a_table_made_by_the_pool_is_byte_identical_to_the_serial_one(serial, tmp_path, monkeypatch):
    """`equss reproduce table1 --executor local --workers 2 --threads 1` in a cache of its own: every run
    trained again by 2 worker processes, the same table1.csv byte for byte as the serial run at 1 thread."""
    from equss import cli

    monkeypatch.setenv("EQUSS_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "results"
    assert cli.main(["reproduce", "table1", "--scale", "smoke", "--results", str(results), "--device", "cpu",
                     "--executor", "local", "--workers", "2", "--threads", "1", "--no-progress", "--no-compare"]) == 0
    assert (results / "table1.csv").read_bytes() == (serial["results"] / "table1.csv").read_bytes()
    doc = json.loads((results / "plans" / "table1.json").read_text())
    assert doc["executor"] == "local" and doc["layout"]["workers"] == 2 and doc["layout"]["threads"] == 1
    assert doc["counts"]["new"] == 10 and doc["actual"]["failed"] == []  # as the serial plan: 10 requests, 5 jobs
    prov = [json.loads(p.read_text()) for p in (results / "runs").glob("*/provenance.json")]
    assert prov and all(p["threads"] == 1 and p["executor"] == "local" for p in prov)
