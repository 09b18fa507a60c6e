# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Learning curves and checkpoint selection (camvid-stego, camvid-equss)
#
# **What to look for.** Where each method's seed-mean validation curve (thick line) flattens, and the star: the step the written rule chose on validation, which the proxy's tables then train for. The right panel shows the same checkpoints on test: a star near the test curve's top means validation picked well. The table below the curves and the conclusion at the end give, per seed, how well validation ranks the checkpoints on test and what best-on-validation gives against the last checkpoint.
#
# **How it was measured.** Each method and seed is trained for `max_steps` with a validation every `val_every` steps, keeping the checkpoint of every validation (`train.keep_checkpoints`). The step count for the proxy is chosen on **validation only** by a written rule: the smallest validated step whose seed-mean validation cluster mIoU is within `tolerance` points of the curve's maximum. Checkpoint selection is then measured on test: every kept checkpoint is evaluated on the test split, Spearman's rank correlation between validation and test cluster mIoU across the checkpoints is reported per seed, and the test numbers of the best-on-validation checkpoint, the last one and the mean of the last `last_k` are compared. The preset's step count is not changed here; this notebook states the count the rule chooses.

# %% jupyter={"source_hidden": true} tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # default: $EQUSS_DATA
device = "auto"        # auto | cpu | cuda
seeds = None           # default: [0, 1, 2] at proxy and paper, [0] at smoke
overrides = []         # config overrides for every run (strings section.key:value, written with an equals sign)
run_options = {}       # how the runs are fanned out (run_many's keywords), e.g. {"executor": "local", "workers": 2, "threads": 1}; default: equss reproduce's --executor/--workers/--threads, else serial
plan_only = False      # True: print the runs (cached / new) and their predicted wall time, then stop before any run (equss reproduce --plan)
max_steps = None       # default: 600 at proxy, the preset's at smoke and paper
val_every = None       # default: 50 at proxy, 1 at smoke, the preset's at paper
last_k = 3             # checkpoints averaged for "mean of the last k"
tolerance = 0.5        # points of seed-mean val cluster mIoU below the maximum that still count

# %%
# %matplotlib inline
from equss import paper as ex
import pandas as pd
from equss.paper import conclude, curves, plots
out, cfg = ex.setup(scale, results_dir, data_root, device, overrides)
seeds, records = ex.seeds_for(scale, seeds), out / "runs"  # every run's record goes to runs/<run>/
max_steps = max_steps or (600 if scale == "proxy" else None)
val_every = val_every or {"proxy": 50, "smoke": 1}.get(scale)
dense = {"train.keep_checkpoints": True, **({"train.steps": max_steps} if max_steps else {}),
         **({"train.val_every": val_every, "train.ckpt_every": val_every} if val_every else {})}
print("writing to", out, "| seeds", seeds, "| steps", max_steps or "preset's", "| validation every", val_every or "preset's")

# %%
# the runs this notebook needs: each method and seed trained once; then every kept checkpoint evaluated on test
arms = {"STEGO": "cocostuff27-stego", "M1": "cocostuff27-M1", "EQUSS": "cocostuff27-equss"}  # Table 1's trained arms
cfgs = {(n, s): cfg(p, s, **dense) for n, p in arms.items() for s in seeds}
requests = {("run", *k): ex.Request.run(c) for k, c in cfgs.items()}
requests |= {("steps", *k): ex.Request.steps(c) for k, c in cfgs.items()}

# %%
results = ex.run_all(requests, records, "learning_curves", plan_only, **run_options)
runs = {k: results[("run", *k)] for k in cfgs}
tests = {k: results[("steps", *k)] for k in cfgs}

# %%
dataset = cfg("cocostuff27-equss").data.dataset
rows = [ex.row(n, tests[n, s][v["step"]], dataset, s, step=v["step"], val_unsup_miou=v["cluster_mIoU"], val_linear_miou=v["linear_mIoU"])
        for (n, s), r in runs.items() for v in ex.validation_curve(r) if v["step"] in tests[n, s]]
chosen, selected = curves.choose_steps(rows, tolerance), curves.selection(rows, last_k)
ex.save_table(rows, out, "learning_curves", metrics=("val_unsup_miou", "val_linear_miou", "unsup_miou", "linear_miou"), by=("method", "dataset", "step"),
              caption=f"Learning curves ({scale}, {dataset}): validation and test (that step's checkpoint) mIoU (%), mean ± std over seeds")
curves.write(out, rows, chosen, selected, seeds=seeds, max_steps=max_steps, val_every=val_every, last_k=last_k, tolerance=tolerance)
ex.save_provenance(out, "learning_curves", scale, {r["run"]: r for r in runs.values()}, seeds=seeds, chosen_steps={m: c["step"] for m, c in chosen.items()})
print("\n".join(f"{m}: chosen step {c['step']} (seed-mean val cluster mIoU {c['at_step']:.2f}; max {c['max']:.2f} at step {c['max_step']})" for m, c in chosen.items()))
pd.DataFrame(selected)

# %%
fig = plots.learning_curves(rows, chosen, title=f"Learning curves ({scale}, {dataset}); star: the step chosen on validation")
plots.save(fig, out / "learning_curves.png", dpi=110)

# %%
conclude.curves(chosen, selected)
