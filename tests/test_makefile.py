"""What the Makefile would run, read from ``make -n`` (a dry run: nothing executes)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")
TUNING = (ROOT / "notebooks" / "tuning.ipynb").is_file()  # the tuned shifts come first where the notebook exists
FIRST = ["tuning?"] if TUNING else []


def dry_run(*args: str, venv: Path, lines: bool = False) -> list[str]:
    """The notebooks ``make -n`` would execute (names; ``NAME?`` where the recipe runs it only if its output is
    still missing then), with a venv marker newer than every file."""
    (venv / ".installed").touch()
    later = time.time() + 60
    os.utime(venv / ".installed", (later, later))  # like a fresh clone's `make setup`: newer than the checkout
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # under `make test`
    p = subprocess.run(["make", "-n", "--no-print-directory", *args, f"VENV={venv}"], cwd=ROOT, env=env,
                       capture_output=True, text=True, check=True)
    runs = [line for line in p.stdout.splitlines() if "-m equss reproduce " in line]
    if lines:
        return runs
    return [line.split("-m equss reproduce ", 1)[1].split()[0] + ("?" if line.startswith("test -f") else "")
            for line in runs]


def test_a_committed_step_choice_is_reused_not_retrained(tmp_path):
    """A fresh clone's `make reproduce-table1` must not retrain the learning curves (hours at proxy scale)
    just because its venv is newer than the committed learning_curves.json."""
    results = tmp_path / "results"
    results.mkdir()
    for name in ("learning_curves.json", "tuning.json"):  # the committed choices (the tuned shifts, the curves')
        (results / name).write_text("{}")
        os.utime(results / name, (0, 0))  # older than the notebooks and the sources
    assert dry_run("reproduce-table1", "SCALE=proxy", f"RESULTS={results}", f"COMMITTED={results}",
                   venv=tmp_path) == ["table1_cocostuff"]


def test_a_missing_step_choice_is_made_first_when_regenerating(tmp_path):
    none = tmp_path / "none"
    assert dry_run("reproduce-table1", "SCALE=proxy", f"RESULTS={none}", f"COMMITTED={none}", venv=tmp_path) == [
        *FIRST, "learning_curves?", "table1_cocostuff"]


def test_a_users_reproduction_writes_beside_the_committed_results(tmp_path):
    """By default `make reproduce-table1` writes into results/local/<scale> (the committed results are never
    overwritten) and takes the committed step choice instead of retraining the curves."""
    runs = dry_run("reproduce-table1", "SCALE=proxy", venv=tmp_path, lines=True)
    assert len(runs) == 1 and "table1_cocostuff" in runs[0] and "--results results/local/proxy" in runs[0], runs


def test_smoke_scale_needs_no_learning_curves(tmp_path):
    assert dry_run("reproduce-fig6", "SCALE=smoke", f"RESULTS={tmp_path / 'none'}", venv=tmp_path) == ["fig6_mk_grid"]


def test_reproduce_order_curves_first_claims_last(tmp_path):
    none = tmp_path / "none"
    order = dry_run("reproduce-all", "SCALE=proxy", f"RESULTS={none}", f"COMMITTED={none}", venv=tmp_path)
    if TUNING:  # the tuned shifts before the curves (they change every proxy config), made once
        assert order[:2] == ["tuning", "tuning?"]
        order = order[2:]
    assert order[0] == "learning_curves" and order[-1] == "claims"
    assert order[1] == "learning_curves?"  # made once: already there when the tables ask for it
    # every notebook but the demo (it segments images with a shipped model; it reproduces nothing)
    assert sorted(["tuning"] * TUNING + order[:1] + order[2:]) == sorted(
        p.stem for p in (ROOT / "notebooks").glob("*.ipynb") if p.stem != "demo")


def test_regenerate_pins_the_thread_count_whatever_the_executor(tmp_path):
    """The study's records are made at 1 intra-op thread per run (2 workers on 2 cores): `make regenerate`
    passes --threads 1 to every notebook (the numbers depend on it), with or without a pool of workers;
    THREADS= overrides it."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)  # `make -n` runs the sub-make under tools/measure.py
    for extra in ([], ["EXECUTOR=local", "WORKERS=4"]):
        runs = dry_run("regenerate", "SCALE=smoke", *extra, venv=tmp_path, lines=True)
        assert runs and all("--threads 1" in r for r in runs), runs
        if extra:
            assert all("--executor local" in r and "--workers 4" in r for r in runs), runs
    assert all("--threads 2" in r for r in dry_run("regenerate", "SCALE=smoke", "THREADS=2", venv=tmp_path, lines=True))
    assert not any("--threads" in r for r in dry_run("reproduce-table1", "SCALE=smoke", venv=tmp_path, lines=True))


def test_plan_runs_every_notebook_with_plan(tmp_path):
    runs = dry_run("plan", "SCALE=proxy", venv=tmp_path, lines=True)
    assert len(runs) == 1 and " all --plan " in runs[0], runs
    runs = dry_run("plan", "NAMES=table1 fig6", "THREADS=2", venv=tmp_path, lines=True)
    assert " table1 fig6 --plan " in runs[0] and "--threads 2" in runs[0], runs
