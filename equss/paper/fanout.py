"""A notebook's runs: declared by name in one cell, made by one :func:`~equss.paper.executor.run_many`.

A notebook builds a dict of named requests (:class:`~equss.paper.executor.Request`), then::

    results = ex.run_all(requests, records, "table1", plan_only, **run_options)

makes every one of them with one ``run_many`` call (so an executor can fan them out: serial, a
local pool, SLURM) and returns ``{name: result}``, each result exactly as
:func:`~equss.paper.runs.run` / :func:`~equss.paper.runs.step_evaluations` /
:func:`~equss.paper.runs.baseline` return it; the notebook indexes them as it indexed those calls.
``run_options`` (a notebook parameter, default ``{}``) are ``run_many``'s keywords (``executor``,
``workers``, ``threads``, ``slurm``, ``predict``); not given, ``run_many`` takes the ones that
``equss reproduce --executor/--workers/--threads`` put in the kernel's environment.

Prediction beside outcome: every call writes ``<results>/plans/<notebook>.json``: the plan
(requests cached / to evaluate / new, the jobs), the wall time predicted before the runs started
(serially and in the pool, :func:`~equss.paper.executor.plan`; predicted unless at smoke scale or
``predict=False``), the executor and layout used, and ``actual``: the measured wall time of the
runs (``tools/measure.py`` sums them into ``reproduce.json``).  No machine path is kept in it.

Plan only (``plan_only=True``, what ``equss reproduce --plan`` passes): nothing runs; the plan
with its prediction is printed and :class:`PlanOnly` stops the notebook (Run All / papermill) at
that cell.  With ``EQUSS_PLAN_DIR`` set (the runner does), the plan is also written there as
``<notebook>.json``, and the jobs that a notebook planned there before will already be made when
this one runs (they count as cached here: ``made_earlier``).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

PLAN_DIR_ENV = "EQUSS_PLAN_DIR"  # set by `equss reproduce --plan`: where the notebooks' plans go
PLAN_KEYS = ("notebook", "executor", "layout", "counts", "requests", "jobs", "made_earlier", "prediction", "actual",
             "cores", "time_utc")  # what a plan record keeps (not run_many's machine path of the logs)


class PlanOnly(Exception):
    """Raised by :func:`run_all` with ``plan_only``: the plan is printed, no run is started, and
    the notebook stops here (``equss reproduce --plan`` expects it)."""


def run_all(requests: dict, records: str | os.PathLike, notebook: str, plan_only: bool = False,
            **run_options) -> dict:
    """Make every request of ``{name: Request}`` (one ``run_many`` call) and return ``{name: result}``
    in the same order; the plan and its outcome go to ``<records>/../plans/<notebook>.json``."""
    from equss.paper import executor as ex

    named = dict(requests)
    reqs = list(named.values())
    if plan_only:
        p = plan(reqs, notebook, records, **run_options)
        ex.print_plan(p)
        raise PlanOnly(f"plan only: {notebook} stopped before its runs ({p['counts']['new']} new, "
                       f"{p['counts']['evaluate']} to evaluate, {p['counts']['cached']} cached); "
                       "set plan_only = False to run them")
    from equss.paths import cache_dir

    scale = reqs[0].cfg.scale if reqs else "smoke"
    options = {"predict": scale != "smoke", **run_options}
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{notebook}"
    logs = Path(options.pop("logs", None) or cache_dir("jobs") / stamp)
    try:
        results = ex.run_many(reqs, records=records, logs=logs, **options)
    finally:  # also when a run failed: run_many wrote which, and how long it took
        keep(logs / "plan.json", Path(records).parent / "plans" / f"{notebook}.json", notebook)
    return dict(zip(named, results))


def keep(src: Path, dest: Path, notebook: str) -> Path | None:
    """``run_many``'s plan file ``src`` copied to ``dest`` without machine paths (the logs folder)."""
    from equss.io import read_json, write_json

    doc = read_json(src)
    if not isinstance(doc, dict):
        return None
    doc["notebook"] = notebook
    return write_json(dest, {k: doc[k] for k in PLAN_KEYS if k in doc})


def plan(reqs: list, notebook: str, records: str | os.PathLike | None = None, **run_options) -> dict:
    """The plan of ``reqs`` with its prediction for the layout the runs would get (``run_options``,
    else the environment of ``equss reproduce``, else :func:`~equss.paper.executor.layout`);
    what the run ``records`` hold counts as cached (as ``run_many`` treats it), and jobs that an
    earlier notebook planned in ``$EQUSS_PLAN_DIR`` are left to it."""
    from equss.paper import executor as ex

    executor, workers, threads = _layout_options(run_options)
    folder = os.environ.get(PLAN_DIR_ENV)
    earlier = set()
    if folder:
        for f in sorted(Path(folder).glob("*.json")):
            if f.stem != notebook:
                earlier |= set(json.loads(f.read_text()).get("will_make", []))
    todo = ex.jobs_for(reqs, records=records)
    mine = [j for j in todo if j["name"] not in earlier]
    p = ex.plan(reqs, workers=workers, threads=threads, predict=True, jobs=mine, records=records)
    p.update(notebook=notebook, executor=executor, made_earlier=[j["name"] for j in todo if j["name"] in earlier],
             will_make=[j["name"] for j in todo])
    if folder:
        from equss.io import write_json

        write_json(Path(folder) / f"{notebook}.json", p)
    return p


def _layout_options(run_options: dict) -> tuple[str, int | None, int | None]:
    """(executor, workers, threads) from the notebook's ``run_options``, else ``run_many``'s environment."""
    from equss.paper.executor import ENV

    env = os.environ
    executor = run_options.get("executor") or env.get(ENV["executor"]) or "serial"
    workers = run_options.get("workers") or (int(env[ENV["workers"]]) if env.get(ENV["workers"]) else None)
    threads = run_options.get("threads") or (int(env[ENV["threads"]]) if env.get(ENV["threads"]) else None)
    return executor, workers, threads
