"""What the reproduction notebooks call (``from equss import paper as ex``).

| module | what |
|---|---|
| :mod:`~equss.paper.runs` | presets per scale, the run cache (train + evaluate a config once) |
| :mod:`~equss.paper.executor` | many runs at once (serial, a local process pool, SLURM via submitit), their plan and cost |
| :mod:`~equss.paper.fanout` | a notebook's named requests made by one ``run_many`` (``run_all``), its plan beside the outcome |
| :mod:`~equss.paper.tables` | table rows, CSV / Markdown / provenance files |
| :mod:`~equss.paper.figures` | data for Fig. 4 (codes) and Fig. 5 (predictions), colouring |
| :mod:`~equss.paper.claims` | the paper's claims decided from the per-seed tables |
| :mod:`~equss.paper.curves` | learning curves: step choice on validation, checkpoint selection |
| :mod:`~equss.paper.trace` | every table number against its run record |
| :mod:`~equss.paper.quoted` | the paper's numbers, marked quoted |
| :mod:`~equss.paper.notebooks` | the papermill runner behind ``equss reproduce`` |
| :mod:`~equss.paper.compare` | a reproduction's numbers beside the committed ones |
| :mod:`~equss.paper.rebuild` | every committed table, Markdown and claim regenerated from the records |

In a notebook, an :class:`~equss.errors.EqussError` (missing data, a bad value) shows as its one line,
not a traceback through the package; the cell still fails, so Run All and papermill stop there.
So does :class:`~equss.paper.fanout.PlanOnly` (``plan_only=True``: the plan is printed, nothing runs),
shown as its one line without ``error``.
"""
from equss.paper.executor import Request, run_many, tune_arms
from equss.paper.fanout import PlanOnly, run_all
from equss.paper.figures import collect_codes, colorize, entropy_analysis, n_test_images, predictions, spread_indices
from equss.paper.runs import (baseline, config, preset_for, results_dir, run, run_dir, seeds_for, setup,
                              step_evaluations, validation_curve)
from equss.paper.tables import row, save_provenance, save_table, show, summary

__all__ = ["PlanOnly", "Request", "run_all", "run_many", "tune_arms", "baseline", "collect_codes", "colorize", "config", "entropy_analysis", "predictions", "preset_for", "results_dir",
           "row", "run", "run_dir", "save_provenance", "save_table", "seeds_for", "setup", "show",
           "n_test_images", "spread_indices", "step_evaluations", "summary", "validation_curve"]


def _one_line_errors() -> None:
    """Under IPython: show an EqussError as ``equss: error: ...`` (one line per problem)."""
    try:
        ip = get_ipython()  # noqa: F821 - defined inside IPython only
    except NameError:
        return
    from equss.errors import EqussError

    def handler(shell, etype, value, tb, tb_offset=None):
        prefix = "equss: " if issubclass(etype, PlanOnly) else "equss: error: "
        for line in str(value).splitlines() or [etype.__name__]:
            print(prefix + line)
        return []

    ip.set_custom_exc((EqussError, PlanOnly), handler)


_one_line_errors()
