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
"""
from __future__ import annotations

import argparse
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
              progress: bool = True, compare: bool = True) -> list[Path]:
    """Execute the notebooks ``names``; returns the executed copies.  Prints the comparison with the
    committed results at the end (unless ``compare`` is false or the folder is the committed one)."""
    from equss.paper.compare import against_committed
    from equss.paper.notebooks import check_overrides, execute

    stems = notebook_names(names)
    check_overrides(list(overrides or []), scale)
    out = Path(results) if results else default_results(scale)
    extra = {}
    if overrides:
        extra["overrides"] = list(overrides)
    if seeds:
        extra["seeds"] = [int(s) for s in seeds]
    done = []
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


def _cmd_reproduce(args) -> int:
    reproduce(args.names, args.scale, args.results, args.data_root, args.device, args.seeds, args.set,
              progress=not args.no_progress, compare=not args.no_compare)
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
    p.set_defaults(func=_cmd_reproduce)
