"""equss.paper.executor: runs fanned out serially, by a local process pool and through submitit
give bitwise the same records at the same thread count; a worker that dies is an error line
naming the run, never a hang; bad options are one line; the plan says what is cached and new."""
import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import one_line, run_cli
from equss.errors import EqussError
from equss.paper import executor as ex
from equss.paper import jobs, runs
from equss.paper.executor import Request, run_many
from test_reliability import write_camvid

TINY = ["data.resolution=28", "data.eval_resolution=28", "data.probe_label_size=0", "train.batch_size=2",
        "train.steps=2", "train.val_every=1"]


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    return write_camvid(tmp_path_factory.mktemp("executor-camvid"))


def tiny(root, seed=0, preset="camvid-equss", *extra):
    return runs.config(preset, "smoke", overrides=TINY + [f"train.seed={seed}", *extra], data_root=str(root),
                       device="cpu")


def fresh_cache(monkeypatch, folder: Path, weights_from: Path | None = None) -> Path:
    """A new EQUSS_CACHE (the workers inherit it); the converted backbone weights copied in."""
    folder.mkdir(parents=True)
    if weights_from is not None and (weights_from / "weights").is_dir():
        shutil.copytree(weights_from / "weights", folder / "weights")
    monkeypatch.setenv("EQUSS_CACHE", str(folder))
    return folder


# ---------------------------------------------------------------------------- comparing records
VOLATILE = {"provenance", "time", "wall_s", "run_dir", "time_utc"}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _leaves(obj, prefix=""):
    """Every tensor, array and value of a checkpoint but its provenance and wall time."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k not in VOLATILE:
                out.update(_leaves(v, f"{prefix}/{k}"))
        return out
    if isinstance(obj, (list, tuple)):
        out = {}
        for i, v in enumerate(obj):
            out.update(_leaves(v, f"{prefix}/{i}"))
        return out
    return {prefix: obj}


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def differences(a: Path, b: Path) -> list[str]:
    """Files of two run-cache folders whose numbers differ (all eval JSONs, logged losses, per-image
    counts, checkpoint tensors and states); [] when bitwise the same."""
    out = []
    names = sorted(p.name for p in a.iterdir() if p.suffix in (".json", ".jsonl", ".npz", ".pt"))
    assert names == sorted(p.name for p in b.iterdir() if p.suffix in (".json", ".jsonl", ".npz", ".pt"))
    for name in names:
        f, g = a / name, b / name
        if name == "provenance.json":
            x, y = _strip(json.loads(f.read_text())), _strip(json.loads(g.read_text()))
            x.pop("executor"), y.pop("executor")
            same = x == y
        elif f.suffix == ".json":
            same = _strip(json.loads(f.read_text())) == _strip(json.loads(g.read_text()))
        elif f.suffix == ".jsonl":
            same = ([_strip(json.loads(ln)) for ln in f.read_text().splitlines()]
                    == [_strip(json.loads(ln)) for ln in g.read_text().splitlines()])
        elif f.suffix == ".npz":
            x, y = np.load(f), np.load(g)
            same = x.files == y.files and all(_same(x[k], y[k]) for k in x.files)
        else:
            x, y = _leaves(torch.load(f, weights_only=False)), _leaves(torch.load(g, weights_only=False))
            same = x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
        if not same:
            out.append(f"{a.name}/{name}")
    return out


def requests(root):
    return [Request.run(tiny(root, 0)), Request.run(tiny(root, 0), crf=True),
            Request.steps(tiny(root, 1, "camvid-equss", "train.keep_checkpoints=true")),
            Request.run(tiny(root, 2), flip=True), Request.baseline(tiny(root, 0))]


@pytest.mark.slow
def test_serial_pool_and_submitit_give_bitwise_the_same_records(camvid, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    caches, results = {}, {}
    for name, kw in [("serial", {}), ("local", {"workers": 2}), ("submitit-local", {"workers": 2})]:
        caches[name] = fresh_cache(monkeypatch, tmp_path / name, caches.get("serial"))
        before = ex.plan(requests(camvid), predict=False)
        assert before["counts"] == {"cached": 0, "evaluate": 0, "new": 5}
        assert [j["kind"] for j in before["jobs"]] == ["prepare", "run", "run", "run", "baseline"]
        results[name] = run_many(requests(camvid), executor=name, threads=1, records=tmp_path / f"rec-{name}",
                                 logs=tmp_path / f"logs-{name}", progress=False, **kw)
        after = ex.plan(requests(camvid), predict=False)
        assert after["counts"]["cached"] == 5 and after["jobs"] == []
        plan_file = json.loads((tmp_path / f"logs-{name}" / "plan.json").read_text())
        assert plan_file["executor"] == name and plan_file["actual"]["failed"] == [] and plan_file["actual"]["wall_s"] > 0
    for name in ("local", "submitit-local"):
        # what the notebooks get back is the same (the run names include the config key)
        assert [_strip(r) for r in results[name]] == [_strip(r) for r in results["serial"]], name
        folders = sorted((caches[name] / "runs").iterdir())
        assert [f.name for f in folders] == [f.name for f in sorted((caches["serial"] / "runs").iterdir())]
        for folder in folders:
            assert differences(caches["serial"] / "runs" / folder.name, folder) == [], name
            prov = json.loads((folder / ("baseline.json" if folder.name.startswith("baseline") else
                                         "provenance.json")).read_text())
            prov = prov.get("provenance", prov)
            assert (prov["threads"], prov["executor"]) == (1, name.split("-")[0] if name == "local" else "submitit")
        logs = {p.name for p in (tmp_path / f"logs-{name}").glob("*.log")}
        assert {r["run"] + ".log" for r in results["serial"] if "run" in r} <= logs  # every job's log gathered
    for rec in (tmp_path / "rec-local").iterdir():  # the run records (what results/ commits) hold the same numbers
        other = tmp_path / "rec-serial" / rec.name
        assert sorted(p.name for p in rec.iterdir()) == sorted(p.name for p in other.iterdir())
        assert differences(other, rec) == []
    steps = results["serial"][2]
    assert sorted(steps) == [1, 2] and all("cluster" in v for v in steps.values())


def test_prepare_builds_every_cache_the_runs_read(camvid, tmp_path, monkeypatch):
    """The runs fanned out after a prepare job only read caches (the feature cache has no lock)."""
    cache = fresh_cache(monkeypatch, tmp_path / "cache")
    reqs = [Request.run(tiny(camvid, 3), flip=True), Request.baseline(tiny(camvid, 3))]
    (prep,) = [j for j in ex.jobs_for(reqs) if j["kind"] == "prepare"]
    assert prep["flip"] and prep["baseline"]
    jobs.do(prep)

    def listing():
        return sorted(str(p.relative_to(cache)) for sub in ("features", "knn") for p in (cache / sub).rglob("*")
                      if p.is_file() and p.name not in ("meta.json",))

    made = listing()
    preproc = [json.loads(m.read_text())["preproc_id"] for m in (cache / "features").glob("*/meta.json")]
    assert len(preproc) == 4 and sum("hflip" in p for p in preproc) == 1  # train, val, test, flipped test
    mtimes = {m: (cache / m).stat().st_mtime_ns for m in made}
    run_many(reqs, executor="serial", progress=False, logs=tmp_path / "logs")
    assert listing() == made and {m: (cache / m).stat().st_mtime_ns for m in made} == mtimes


# ---------------------------------------------------------------------------- workers that die
def exit_or_echo(item):
    """A job for the pool tests (module level: the spawned workers import it)."""
    if item == "exit":
        os._exit(1)
    if item == "sleep":
        time.sleep(120)
    if item == "raise":
        raise EqussError("no such thing; give another")
    return {"item": item, "threads": torch.get_num_threads(), "executor": os.environ.get(jobs.ENV_EXECUTOR)}


def test_a_worker_that_exits_fails_its_job_and_the_others_finish(tmp_path):
    items = ["a", "exit", "raise", "b"]
    outs = ex.run_local(exit_or_echo, items, items, workers=1, threads=1, logs=tmp_path)
    assert [o.ok for o in outs] == [True, False, False, True]
    assert outs[1].error == "the worker exited with status 1 without a result"
    assert outs[2].error == "no such thing; give another"
    assert "EqussError" in Path(outs[2].log).read_text()  # the traceback is in the job's log
    assert outs[0].value == {"item": "a", "threads": 1, "executor": "local"} and outs[3].value["item"] == "b"


def test_a_killed_worker_is_an_error_line(tmp_path):
    killed = []

    def kill(name, pid):
        if name == "sleep":
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    items = ["a", "sleep", "b"]
    outs = ex.run_local(exit_or_echo, items, items, workers=2, threads=1, logs=tmp_path, on_start=kill)
    assert killed and [o.ok for o in outs] == [True, False, True]
    assert outs[1].error == "the worker was killed by SIGKILL (out of memory?)"


@pytest.mark.slow
def test_a_run_whose_worker_is_killed_is_an_error_line_naming_it(camvid, tmp_path, monkeypatch, capsys):
    fresh_cache(monkeypatch, tmp_path / "cache")
    cfg = tiny(camvid, 4, "camvid-equss", "train.steps=400")
    name = runs.run_name(cfg)
    logs = tmp_path / "logs"

    def killer():  # the OOM killer's part: SIGKILL the worker once the run has started
        while not (logs / f"{name}.log").exists():
            time.sleep(0.2)
        time.sleep(1.0)
        for child in mp.active_children():
            os.kill(child.pid, signal.SIGKILL)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    with pytest.raises(EqussError) as err:
        run_many([Request.run(cfg)], executor="local", workers=1, threads=1, logs=logs, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and name in msg and "killed by SIGKILL" in msg
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("equss: error: ")]
    assert lines == [f"equss: error: run {name}: the worker was killed by SIGKILL (out of memory?) "
                     f"(log: {logs / (name + '.log')})"]
    assert json.loads((logs / "plan.json").read_text())["actual"]["failed"] == [name]


def test_a_submitit_job_that_dies_is_an_error_line(tmp_path):
    pytest.importorskip("submitit")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job's process cannot import tests/
    items = ["a", "exit", "raise"]
    outs = ex.run_submitit(exit_or_echo, items, items, workers=3, threads=1, logs=tmp_path, settings={},
                           cluster="local", poll_s=0.2)
    assert [o.ok for o in outs] == [True, False, False]
    assert outs[0].value == {"item": "a", "threads": 1, "executor": "submitit"}
    assert outs[1].error.startswith("the worker died without a result (submitit job ")
    assert outs[2].error == "no such thing; give another"
    assert "stderr of submitit job" in Path(outs[2].log).read_text()  # logs gathered back


# ---------------------------------------------------------------------------- bad input: one line
def test_bad_options_are_one_line(tmp_path, monkeypatch, capsys):
    n = ex.cores()
    cases = [
        (lambda: run_many([], executor="ray"), "unknown executor 'ray'; valid: serial, local, submitit"),
        (lambda: run_many([], executor="local", workers=n + 1, threads=1), f"is more than the {n} cores"),
        (lambda: run_many([], executor="local", workers=1, threads=n + 1), f"is more than the {n} cores"),
        (lambda: run_many(["not a request"]), "run_many takes Request.run(cfg)"),
        (lambda: ex.slurm_settings({"partition": "gpu", "walltime": 5}), "unknown SLURM setting 'walltime'"),
        (lambda: ex.slurm_settings(tmp_path / "missing.yaml"), "no SLURM settings file"),
    ]
    for call, text in cases:
        with pytest.raises(EqussError) as err:
            call()
        assert text in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setitem(sys.modules, "submitit", None)  # not installed
    with pytest.raises(EqussError, match="needs the submitit package: pip install submitit"):
        run_many([], executor="submitit")
    code, err = run_cli(["reproduce", "table1", "--scale", "smoke", "--executor", "submitit-local"], capsys)
    one_line(code, err, "needs the submitit package")
    code, err = run_cli(["reproduce", "table1", "--scale", "smoke", "--executor", "dask"], capsys)
    one_line(code, err, "unknown executor 'dask'")
    code, err = run_cli(["reproduce", "table1", "--scale", "smoke", "--executor", "local", "--workers", n + 1,
                         "--threads", 1], capsys)
    one_line(code, err, f"is more than the {n} cores")


def test_reproduce_options_reach_run_many_through_the_environment(monkeypatch):
    env = ex.run_options("local", 1, 1, None)
    assert env == {"EQUSS_RUN_EXECUTOR": "local", "EQUSS_RUN_WORKERS": "1", "EQUSS_RUN_THREADS": "1",
                   "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert ex._defaults(None, None, None, None) == ("local", 1, 1, None)
    assert ex._defaults("serial", None, 2, None) == ("serial", 1, 2, None)  # given values win


def test_slurm_settings_from_yaml_and_flags(tmp_path):
    f = tmp_path / "slurm.yaml"
    f.write_text("partition: gpu\ntime_min: 120\ngpus_per_node: 1\nmem_gb: 32\nsetup: [module load cuda]\n")
    s = ex.slurm_settings(f, partition="long", array_parallelism=8)
    assert s == {"partition": "long", "time_min": 120, "gpus_per_node": 1, "mem_gb": 32,
                 "setup": ["module load cuda"], "array_parallelism": 8}
    assert {ex.SLURM_KEYS[k] for k in s} == {"slurm_partition", "timeout_min", "gpus_per_node", "mem_gb",
                                              "slurm_setup", "slurm_array_parallelism"}


# ---------------------------------------------------------------------------- layout and plan
def test_layout_given_values_and_their_checks():
    n = ex.cores()
    assert ex.layout(1, 1)["workers"] == 1 and ex.layout(threads=1, scale="smoke")["workers"] >= 1
    assert ex.layout(workers=1)["threads"] == n  # all cores to the one worker
    assert ex.layout(threads=n, scale="smoke") == {"workers": 1, "threads": n, "how": "given"}


def test_makespan_is_a_longest_first_schedule():
    assert ex._makespan([3, 3, 2, 2, 2], 2) == 7  # LPT: {3, 2, 2} and {3, 2}
    assert ex._makespan([5, 1, 1], 3) == 5 and ex._makespan([], 2) == 0 and ex._makespan([1, 2], 1) == 3


@pytest.mark.slow
def test_plan_predicts_from_a_cached_calibration(camvid, tmp_path, monkeypatch, capsys):
    fresh_cache(monkeypatch, tmp_path / "cache")
    n = ex.cores()
    layout = {"rows": [{"workers": 1, "threads": 1, "step_s": 1.0, "startup_s": 3.0},
                       {"workers": n, "threads": 1, "step_s": 1.25, "startup_s": 4.0},
                       {"workers": 1, "threads": n, "step_s": 0.75, "startup_s": 3.0}],
              "best": {"workers": n, "threads": 1}}  # measure_layout has its own test
    monkeypatch.setattr(ex, "measure_layout", lambda *a, **k: layout)
    reqs = [Request.run(tiny(camvid, 0)), Request.run(tiny(camvid, 1), crf=True), Request.baseline(tiny(camvid, 0))]
    p = ex.plan(reqs, workers=1, threads=1)
    assert p["counts"] == {"cached": 0, "evaluate": 0, "new": 3}
    pred = p["prediction"]
    assert [j["name"] for j in pred["jobs"]] == [j["name"] for j in p["jobs"]]
    assert all(j["serial_s"] > 0 and j["pool_s"] > 0 for j in pred["jobs"])
    assert pred["serial"]["wall_s"] == pytest.approx(sum(j["serial_s"] for j in pred["jobs"]), abs=0.2)
    # one worker: the pool's wall time is the sum of its jobs (prepare first, then the runs) and two start-ups
    assert pred["parallel"]["slowdown"] == 1.0 and pred["parallel"]["startup_s"] == 4.0
    assert pred["parallel"]["wall_s"] == pytest.approx(sum(j["pool_s"] for j in pred["jobs"]) + 8.0, abs=0.2)
    if n > 1:
        two = ex.plan(reqs, workers=n, threads=1)["prediction"]  # n workers at once: each job 1.25x slower
        assert two["parallel"]["slowdown"] == 1.25
        assert [j["pool_s"] for j in two["jobs"]] == pytest.approx([1.25 * j["pool_s"] for j in pred["jobs"]],
                                                                   abs=0.02)
    written = ex.plan(reqs, workers=1, threads=1, file=tmp_path / "plan.json")
    assert json.loads((tmp_path / "plan.json").read_text()) == json.loads(json.dumps(written))
    assert written["prediction"]["jobs"] == pred["jobs"]  # the calibration is cached: the same prediction
    ex.print_plan(p)
    out = capsys.readouterr().out
    assert "3 requests: 0 cached, 0 to evaluate, 3 new; 4 jobs" in out and "predicted wall time: serial" in out
    calibrations = sorted((tmp_path / "cache" / "executor").glob("calibration-*.json"))
    assert calibrations and all(json.loads(c.read_text())["shapes"] for c in calibrations)
    monkeypatch.setattr(ex, "run_local", lambda *a, **k: pytest.fail("calibrated again"))
    assert ex.plan(reqs, workers=1, threads=1)["prediction"]["jobs"] == pred["jobs"]  # cached, not measured again
    run_many(reqs[:1], progress=False, logs=tmp_path / "logs")
    assert ex.plan(reqs, predict=False)["counts"] == {"cached": 1, "evaluate": 0, "new": 2}


@pytest.mark.slow
def test_measured_layout_fills_the_cores(tmp_path, monkeypatch):
    fresh_cache(monkeypatch, tmp_path / "cache")
    m = ex.measure_layout(steps=1)
    n = ex.cores()
    assert {(r["workers"], r["threads"]) for r in m["rows"] if r["workers"] * r["threads"] == n} >= {(n, 1), (1, n)}
    best = m["best"]
    assert best["workers"] * best["threads"] == n
    full = [r for r in m["rows"] if r["workers"] * r["threads"] == n]
    assert max(full, key=lambda r: (round(r["steps_per_s"], 2), r["workers"]))["workers"] == best["workers"]
    assert ex.measure_layout() == m  # cached
    assert ex.layout(scale="smoke")["how"].startswith("measured")


def test_the_record_comparison_sees_one_ulp(tmp_path):
    """``differences`` (the check of the executor test) finds a checkpoint tensor one ulp off, a changed
    logged loss, evaluation number or per-image count, and ignores provenance and wall times."""
    a = tmp_path / "a"
    a.mkdir()
    torch.save({"model": {"w": torch.linspace(0, 1, 7)}, "rng": np.arange(3), "wall_s": 1.0}, a / "last.pt")
    (a / "log.jsonl").write_text(json.dumps({"step": 1, "time": 0.5, "total": 0.25}) + "\n")
    (a / "eval.json").write_text(json.dumps({"cluster": {"mIoU": 20.0}, "provenance": {"time_utc": "x"}}))
    np.savez(a / "eval.per_image.npz", counts=np.arange(4))
    changes = {
        "last.pt": lambda f: torch.save({"model": {"w": torch.nextafter(torch.linspace(0, 1, 7), torch.tensor(2.0))},
                                         "rng": np.arange(3), "wall_s": 1.0}, f),
        "log.jsonl": lambda f: f.write_text(json.dumps({"step": 1, "time": 0.5, "total": 0.25 + 1e-16 * 4}) + "\n"),
        "eval.json": lambda f: f.write_text(json.dumps({"cluster": {"mIoU": 20.000000000000004}})),
        "eval.per_image.npz": lambda f: np.savez(f, counts=np.arange(4) + np.array([0, 0, 0, 1])),
    }
    for name, change in changes.items():
        b = tmp_path / f"b-{name}"
        shutil.copytree(a, b)
        assert differences(a, b) == []
        change(b / name)
        assert differences(a, b) == [f"a/{name}"], name
    b = tmp_path / "b-volatile"
    shutil.copytree(a, b)
    torch.save({"model": {"w": torch.linspace(0, 1, 7)}, "rng": np.arange(3), "wall_s": 9.0}, b / "last.pt")
    (b / "eval.json").write_text(json.dumps({"cluster": {"mIoU": 20.0}, "provenance": {"time_utc": "y"}}))
    assert differences(a, b) == []
