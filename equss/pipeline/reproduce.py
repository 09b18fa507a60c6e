"""``equss reproduce NAME... | all``: execute the paper's notebooks (papermill) at a scale.

``equss reproduce table1 --scale proxy`` runs ``notebooks/table1_cocostuff.ipynb`` and writes
its tables, figures, run records and the executed notebook into the results folder, by default
``results/local/<scale>/``: a user's reproduction never overwrites the committed results in
``results/<scale>/``; it ends by printing its numbers beside the committed ones (difference, and
whether within the committed seeds' range; :mod:`equss.paper.compare`).  Regenerating the
committed results is the explicit ``--results results/<scale>`` (``make regenerate``).

Names: ``table1 table2 table3 fig2 fig4 fig5 fig6 learning-curves claims`` (or a notebook's file
name); ``all`` runs them in the order of ``make reproduce`` (the learning curves first: at proxy
scale they choose the step count; the claims last).  At proxy scale a results folder without its
own ``learning_curves.json`` uses the committed choice.  The data root is resolved once
(:func:`equss.paths.data_root`: ``--data-root`` > ``EQUSS_DATA`` > ``./data``) and passed to the
notebooks explicitly.

Runs in parallel (``--executor local|submitit|submitit-local``, ``--workers N``, ``--threads T``,
``--slurm-config FILE`` and ``--partition/--time-min/--gpus/--array-parallelism``): checked here, then
handed to the notebooks' kernels in the environment (``EQUSS_RUN_EXECUTOR``, ``EQUSS_RUN_WORKERS``,
``EQUSS_RUN_THREADS``, ``EQUSS_RUN_SLURM``), where :func:`equss.paper.executor.run_many` takes them
as its defaults (:mod:`equss.paper.executor`).  ``--threads T`` also sets the serial path's thread
count (``OMP_NUM_THREADS`` of the kernel): the numbers depend on it, not on the executor.
"""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from equss.errors import EqussError

NAMES = {
    "learning-curves": "learning_curves", "table1": "table1_cocostuff", "table2": "table2_cityscapes_potsdam",
    "table3": "table3_ablation", "fig4": "fig4_entropy", "fig5": "fig5_qualitative", "fig2": "fig2_dimension",
    "fig6": "fig6_mk_grid", "claims": "claims",
}
ORDER = list(NAMES)  # the curves first (they choose the proxy step count), the large grids late, the claims last
TABLES = {  # what each notebook writes that can be compared with the committed results
    "learning_curves": ["learning_curves.csv"], "table1_cocostuff": ["table1.csv"],
    "table2_cityscapes_potsdam": ["table2.csv"], "table3_ablation": ["table3.csv"],
    "fig4_entropy": ["fig4.csv", "fig4_distance.csv"], "fig5_qualitative": [], "fig2_dimension": ["fig2.csv"],
    "fig6_mk_grid": ["fig6.csv"], "claims": [],
}
REPO = Path(__file__).resolve().parents[2]


def notebook_names(requested: list[str]) -> list[str]:
    """Notebook file names (without .ipynb) for the names given on the command line."""
    from equss.paper.notebooks import NOTEBOOK_DIR

    if "all" in requested:
        return [NAMES[n] for n in ORDER]
    out = []
    available = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
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
    reproduce(args.names, args.scale, args.results, args.data_root, args.device, args.seeds, args.set,
              progress=not args.no_progress, compare=not args.no_compare, executor=args.executor,
              workers=args.workers, threads=args.threads, slurm=slurm or None)
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
