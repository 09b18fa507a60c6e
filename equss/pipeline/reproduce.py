"""``equss reproduce NAME... | all``: execute the paper's notebooks (papermill) at a scale.

``equss reproduce table1 --scale proxy`` runs ``notebooks/table1_cocostuff.ipynb`` and writes
its tables, figures, run records and the executed notebook into the results folder, by default
``results/local/<scale>/``: a user's reproduction never overwrites the committed results in
``results/<scale>/``; it ends by printing its numbers beside the committed ones (difference, and
whether within the committed seeds' range; :mod:`equss.paper.compare`).  Regenerating the
committed results is the explicit ``--results results/<scale>`` (``make regenerate``).

Names: ``tuning learning-curves table1 table2 table3 fig2 fig4 fig5 fig6 claims`` (or a notebook's
file name); ``all`` runs those present in the order of ``make reproduce`` (the tuned shifts first,
then the learning curves: at proxy scale they choose the step count; the claims last).  At proxy scale a results folder without its
own ``learning_curves.json`` uses the committed choice.  The data root is resolved once
(:func:`equss.paths.data_root`: ``--data-root`` > ``EQUSS_DATA`` > ``./data``) and passed to the
notebooks explicitly.

Runs in parallel (``--executor local|submitit|submitit-local``, ``--workers N``, ``--threads T``,
``--slurm-config FILE`` and ``--partition/--time-min/--gpus/--array-parallelism``): checked here, then
handed to the notebooks' kernels in the environment (``EQUSS_RUN_EXECUTOR``, ``EQUSS_RUN_WORKERS``,
``EQUSS_RUN_THREADS``, ``EQUSS_RUN_SLURM``), where :func:`equss.paper.executor.run_many` takes them
as its defaults (:mod:`equss.paper.executor`).  ``--threads T`` also sets the serial path's thread
count (``OMP_NUM_THREADS`` of the kernel): the numbers depend on it, not on the executor.

``--plan``: nothing trains; each notebook runs up to its request list (``plan_only``) and its plan
is printed: the runs cached / to evaluate / new and the wall time predicted serially and in the
pool (:func:`plan`), then their sum.  After a real run each notebook's prediction and its measured
wall time are in ``RESULTS/plans/<notebook>.json`` (:mod:`equss.paper.fanout`).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from equss.errors import EqussError

NAMES = {
    "tuning": "tuning", "learning-curves": "learning_curves", "table1": "table1_cocostuff", "table2": "table2_cityscapes_potsdam",
    "table3": "table3_ablation", "fig4": "fig4_entropy", "fig5": "fig5_qualitative", "fig2": "fig2_dimension",
    "fig6": "fig6_mk_grid", "claims": "claims",
}
# the tuned shifts first (they change every proxy config), then the curves (they choose the proxy step count), the
# large grids late, the claims last
ORDER = list(NAMES)
TABLES = {  # what each notebook writes that can be compared with the committed results
    "tuning": [], "learning_curves": ["learning_curves.csv"], "table1_cocostuff": ["table1.csv"],
    "table2_cityscapes_potsdam": ["table2.csv"], "table3_ablation": ["table3.csv"],
    "fig4_entropy": ["fig4.csv", "fig4_distance.csv"], "fig5_qualitative": [], "fig2_dimension": ["fig2.csv"],
    "fig6_mk_grid": ["fig6.csv"], "claims": [],
}
REPO = Path(__file__).resolve().parents[2]


def notebook_names(requested: list[str]) -> list[str]:
    """Notebook file names (without .ipynb) for the names given on the command line."""
    from equss.paper.notebooks import NOTEBOOK_DIR

    available = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
    if "all" in requested:  # those present (a notebook still being written is not in the checkout yet)
        return [NAMES[n] for n in ORDER if NAMES[n] in available]
    out = []
    for name in requested:
        stem = NAMES.get(name, name)
        if stem not in available:
            raise EqussError(f"no notebook {name!r}; valid: all, {', '.join(NAMES)} "
                             f"(or a notebook name: {', '.join(available)})")
        out.append(stem)
    return out


def default_results(scale: str) -> Path:
    return Path("results") / "local" / scale


def committed_results(scale: str) -> Path:
    return REPO / "results" / scale


def reproduce(names: list[str], scale: str = "proxy", results: str | None = None, data_root: str | None = None,
              device: str = "auto", seeds: list[int] | None = None, overrides: list[str] | None = None,
              progress: bool = True, compare: bool = True, executor: str | None = None, workers: int | None = None,
              threads: int | None = None, slurm: dict | None = None) -> list[Path]:
    """Execute the notebooks ``names``; returns the executed copies.  Prints the comparison with the
    committed results at the end (unless ``compare`` is false or the folder is the committed one).
    ``executor`` / ``workers`` / ``threads`` / ``slurm``: how the notebooks' runs are fanned out
    (:func:`equss.paper.executor.run_options`, passed to the kernels in the environment)."""
    from equss.paper.compare import against_committed
    from equss.paper.executor import run_options
    from equss.paper.notebooks import check_overrides, execute

    stems = notebook_names(names)
    check_overrides(list(overrides or []), scale)
    env = run_options(executor, workers, threads, slurm)  # checked before any kernel starts
    out = Path(results) if results else default_results(scale)
    extra = {}
    if overrides:
        extra["overrides"] = list(overrides)
    if seeds:
        extra["seeds"] = [int(s) for s in seeds]
    done = []
    with _environment(env):  # the kernels inherit it
        for stem in stems:
            done.append(execute(stem, scale, results=str(out), data_root=data_root, device=device, extra=extra,
                                progress=progress))
    committed = committed_results(scale)
    if compare and committed.is_dir() and out.resolve() != committed.resolve():
        tables = [t for s in stems for t in TABLES.get(s, [])]
        lines = against_committed(out, committed, tables) if tables else []
        others = sorted({t for ts in TABLES.values() for t in ts} - set(tables))
        present = [Path(t).stem for t in others if (committed / t).is_file()]
        if present:
            lines.append("not re-run: " + ", ".join(present))
        if lines:
            print(f"equss: your numbers ({out}) beside the committed ones ({committed.relative_to(REPO)}):")
            for line in lines:
                print("  " + line)
    return done


def plan(names: list[str], scale: str = "proxy", results: str | None = None, data_root: str | None = None,
         device: str = "auto", seeds: list[int] | None = None, overrides: list[str] | None = None,
         progress: bool = True, executor: str | None = None, workers: int | None = None, threads: int | None = None,
         slurm: dict | None = None) -> list[dict]:
    """``equss reproduce NAME... --plan``: each notebook's plan, printed (requests cached / to evaluate /
    new, its jobs with their predicted seconds, the predicted wall time serially and in the pool;
    :func:`equss.paper.notebooks.plan`), then the sum over the notebooks, run one after another (a
    run that an earlier notebook makes counts as cached in the later ones).  Nothing trains."""
    import tempfile

    from equss.paper.executor import print_plan, run_options
    from equss.paper.fanout import PLAN_DIR_ENV
    from equss.paper.notebooks import check_overrides
    from equss.paper.notebooks import plan as plan_notebook

    stems = notebook_names(names)
    check_overrides(list(overrides or []), scale)
    env = run_options(executor, workers, threads, slurm)
    out = Path(results) if results else default_results(scale)
    extra = {**({"overrides": list(overrides)} if overrides else {}), **({"seeds": [int(s) for s in seeds]} if seeds else {})}
    plans = []
    with tempfile.TemporaryDirectory(prefix="equss-plan-") as folder, _environment({**env, PLAN_DIR_ENV: folder}):
        for stem in stems:
            p = plan_notebook(stem, scale, results=str(out), data_root=data_root, device=device, extra=extra,
                              progress=progress)
            if p is None:
                print(f"equss: plan of {stem}: no runs declared (no ex.run_all): not planned")
                continue
            print(f"equss: plan of {stem}" + (f" ({len(p['made_earlier'])} jobs made by an earlier notebook)"
                                              if p.get("made_earlier") else "") + ":")
            print_plan(p, file=_Indented())
            plans.append(p)
    if len(plans) > 1:
        print(total(plans))
    return plans


def total(plans: list[dict]) -> str:
    """One line: the plans of notebooks run one after another, summed."""
    counts = {k: sum(p["counts"][k] for p in plans) for k in ("cached", "evaluate", "new")}
    preds = [p["prediction"] for p in plans if p.get("prediction")]
    line = (f"equss: plan of {len(plans)} notebooks: {sum(len(p['requests']) for p in plans)} requests: "
            f"{counts['cached']} cached, {counts['evaluate']} to evaluate, {counts['new']} new; "
            f"{sum(len(p['jobs']) for p in plans)} jobs")
    if preds:
        par = preds[0]["parallel"]
        line += (f"; predicted wall time: serial {_hms(sum(q['serial']['wall_s'] for q in preds))}, "
                 f"{par['workers']} workers x {par['threads']} threads "
                 f"{_hms(sum(q['parallel']['wall_s'] for q in preds))}")
    return line


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class _Indented:
    """A file that indents what is printed to stdout (a notebook's plan under its heading)."""

    def write(self, text: str) -> int:
        return sys.stdout.write("".join("  " + line if line.strip() else line for line in text.splitlines(True)))

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def _environment(env: dict):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _cmd_reproduce(args) -> int:
    slurm = {k: v for k, v in (("partition", args.partition), ("time_min", args.time_min),
                               ("gpus_per_node", args.gpus), ("array_parallelism", args.array_parallelism))
             if v is not None}
    if args.slurm_config or slurm:
        from equss.paper.executor import slurm_settings

        slurm = slurm_settings(args.slurm_config, **slurm)
    options = dict(executor=args.executor, workers=args.workers, threads=args.threads, slurm=slurm or None)
    if args.plan:
        plan(args.names, args.scale, args.results, args.data_root, args.device, args.seeds, args.set,
             progress=not args.no_progress, **options)
        return 0
    reproduce(args.names, args.scale, args.results, args.data_root, args.device, args.seeds, args.set,
              progress=not args.no_progress, compare=not args.no_compare, **options)
    return 0


def register(sub):
    p = sub.add_parser("reproduce", help="execute the paper's notebooks (tables, figures, claims) at a scale",
                       description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="names: all, " + ", ".join(NAMES))
    p.add_argument("names", nargs="+", metavar="NAME", help="all, or one or more of: " + ", ".join(NAMES))
    p.add_argument("--scale", default="proxy", choices=["smoke", "proxy", "paper"])
    p.add_argument("--results", help="output folder (default: results/local/<scale>; the committed results "
                                     "are regenerated only with --results results/<scale>)")
    p.add_argument("--data-root", help="folder with the datasets (default: $EQUSS_DATA, else ./data)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--seeds", type=int, nargs="+", help="the notebooks' seeds (default: their own, 0 1 2 at proxy)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="a config override applied to every run (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on the terminal")
    p.add_argument("--no-compare", action="store_true", help="do not print the comparison with the committed results")
    p.add_argument("--plan", action="store_true", help="train nothing: print each notebook's runs (cached / new) and "
                                                        "their predicted wall time, serially and in parallel")
    g = p.add_argument_group("runs in parallel (equss.paper.executor)")
    g.add_argument("--executor", help="how the notebooks' runs are fanned out: serial (default), local, submitit, "
                                      "submitit-local")
    g.add_argument("--workers", type=int, help="local pool / SLURM array: runs at once (default: measured)")
    g.add_argument("--threads", type=int, help="intra-op threads of each run (the numbers depend on it)")
    g.add_argument("--slurm-config", metavar="FILE", help="YAML: partition, time_min, gpus_per_node, mem_gb, ...")
    g.add_argument("--partition", help="SLURM partition")
    g.add_argument("--time-min", type=int, help="SLURM time limit of one run, minutes")
    g.add_argument("--gpus", type=int, help="GPUs per SLURM job")
    g.add_argument("--array-parallelism", type=int, help="SLURM jobs of the array at once")
    p.set_defaults(func=_cmd_reproduce)
