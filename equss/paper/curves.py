"""Learning curves: choose a step count on validation, and measure checkpoint selection.

Input: long-form rows, one per (method, seed, validated step), with the validation numbers
(``val_unsup_miou``, ``val_linear_miou``) and the test numbers of that step's checkpoint
(``unsup_miou``, ``linear_miou``).

* :func:`choose_steps`: the written rule, on validation only: the smallest validated step
  whose seed-mean validation cluster mIoU is within ``tolerance`` points of the maximum of
  that seed-mean curve.
* :func:`selection`: per (method, seed), the test cluster mIoU of the best-on-validation
  checkpoint, of the last one and the mean of the last ``k`` checkpoints, and Spearman's rank
  correlation between validation and test cluster mIoU across the checkpoints.
"""
from __future__ import annotations

import math

VAL, TEST = "val_unsup_miou", "unsup_miou"


def _frame(rows):
    import pandas as pd

    return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))


def choose_steps(rows, tolerance: float = 0.5, value: str = VAL) -> dict:
    """Per method: ``{"step", "max_step", "max", "curve": {step: seed-mean}}`` by the rule above."""
    df = _frame(rows)
    out = {}
    for method, g in df.groupby("method", sort=False):
        curve = g.groupby("step")[value].mean().sort_index()
        best = float(curve.max())
        chosen = int(curve[curve >= best - tolerance].index.min())
        out[method] = {"step": chosen, "max_step": int(curve.idxmax()), "max": best,
                       "at_step": float(curve[chosen]), "seeds": int(g["seed"].nunique()),
                       "curve": {int(k): float(v) for k, v in curve.items()}}
    return out


def selection(rows, last_k: int = 3, val: str = VAL, test: str = TEST) -> list[dict]:
    """Per (method, seed): test cluster mIoU of best-on-validation / last / mean of the last k
    checkpoints, and Spearman's rho between validation and test across the checkpoints."""
    from scipy import stats

    df = _frame(rows)
    out = []
    for (method, seed), g in df.groupby(["method", "seed"], sort=False):
        g = g.sort_values("step")
        best = g.loc[g[val].idxmax()]
        rho = stats.spearmanr(g[val], g[test]).statistic if len(g) >= 3 else math.nan
        out.append({"method": method, "seed": int(seed), "checkpoints": len(g),
                    "best_val_step": int(best["step"]), "test_at_best_val": float(best[test]),
                    "last_step": int(g["step"].iloc[-1]), "test_at_last": float(g[test].iloc[-1]),
                    f"test_mean_last_{last_k}": float(g[test].iloc[-last_k:].mean()),
                    "best_test_step": int(g.loc[g[test].idxmax(), "step"]), "test_best_possible": float(g[test].max()),
                    "spearman_val_test": float(rho)})
    return out


RULE = ("the smallest validated step whose seed-mean validation cluster mIoU is within {tolerance} points of "
        "the maximum of that seed-mean curve (validation split only; the test split is not looked at)")


def write(out_dir, rows, chosen: dict, selected: list[dict], name: str = "learning_curves", **params) -> dict:
    """``name.json`` (rule, chosen steps, selection per seed, parameters) and the chosen steps and
    selection tables appended to ``name.md`` (written first by :func:`equss.paper.tables.save_table`)."""
    from pathlib import Path

    from equss.io import write_json

    out = Path(out_dir)
    tol = params.get("tolerance", 0.5)
    doc = {"rule": RULE.format(tolerance=tol), "chosen": chosen, "selection": selected, **params}
    write_json(out / f"{name}.json", doc)
    fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["", f"**Step count chosen on validation** (rule: {doc['rule']}):", "",
             "| method | chosen step | seed-mean val cluster mIoU there | max (at step) | seeds |", "|---|---|---|---|---|"]
    for m, c in chosen.items():
        lines.append(f"| {m} | **{c['step']}** | {c['at_step']:.2f} | {c['max']:.2f} ({c['max_step']}) | {c['seeds']} |")
    if selected:
        cols = list(selected[0])
        lines += ["", "**Checkpoint selection** (test cluster mIoU of the best-on-validation, the last and the mean "
                  "of the last k checkpoints; Spearman's rho between validation and test cluster mIoU across the "
                  "checkpoints of a seed):", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(fmt(s[c]) for c in cols) + " |" for s in selected]
    with open(out / f"{name}.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")
    return doc
