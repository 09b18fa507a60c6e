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
# # Figure 2: accuracy vs feature dimension
#
# **What to look for.** The slope of each line in the left panel (unsupervised accuracy): the paper's Fig. 2 has the supervised head rising with width, the STEGO head falling and EQUSS not falling. The figure's title says how many seeds each point has (one seed: each point is one run, no error bars, and one run's noise can make a line zig-zag). The conclusion at the end gives the verdicts of the three trend claims (OLS slopes over the widths; a TOST for "does not fall").
#
# **How it was measured.** A supervised head (trained through the linear probe's cross-entropy, an upper reference), the STEGO head (no PQ) and EQUSS (PQ, M = 16 codebooks of K = 256) at head widths 64 to 1024, each trained for the preset's steps (default one seed at proxy scale: 15 trainings per seed; with several seeds the error bars are their 95 % t-interval). At proxy scale widths 64, 256 and 1024 have three seeds (the claims' slopes), the others one. Every width takes `camvid-equss`'s loss shifts tuned on validation (`tuning.json`): the widths were not tuned one by one, a mismatch the claims' `arms` column names.

# %% jupyter={"source_hidden": true} tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # default: $EQUSS_DATA
device = "auto"        # auto | cpu | cuda
seeds = None           # default at proxy: [0] at every width and [0, 1, 2] at 64, 256 and 1024; [0, 1, 2] at paper, [0] at smoke
overrides = []         # config overrides for every run (strings section.key:value, written with an equals sign)
run_options = {}       # how the runs are fanned out (run_many's keywords), e.g. {"executor": "local", "workers": 2, "threads": 1}; default: equss reproduce's --executor/--workers/--threads, else serial
plan_only = False      # True: print the runs (cached / new) and their predicted wall time, then stop before any run (equss reproduce --plan)
dims = None           # default: [64, 128, 256, 512, 1024] (smoke: [32, 64])
steps = None          # default: the preset's

# %%
# %matplotlib inline
from equss import paper as ex
from equss.paper import conclude, plots
from equss.paper import quoted as paper
out, cfg = ex.setup(scale, results_dir, data_root, device, overrides)
seeds_given, records = seeds, out / "runs"
seeds = ex.seeds_for(scale, seeds, proxy=[0])  # every run's record goes to runs/<run>/
print("writing to", out, "| seeds", seeds)

# %%
dims = dims or ([32, 64] if scale == "smoke" else [64, 128, 256, 512, 1024])
methods = {"supervised head": {"model.pq": False, "model.objective": "supervised"},
           "STEGO head": {"model.pq": False},
           "EQUSS (PQ)": {"model.pq": True, "model.num_codebooks": 16, "model.codebook_size": 256}}
extra = {"train.steps": steps, "train.val_every": steps} if steps else {}
# the runs this notebook needs: each method at each width, per seed
# at proxy scale three seeds at widths 64, 256 and 1024 (the claims' slopes), one at the others
seeds_at = {d: (ex.seeds_for(scale, None, proxy=[0, 1, 2]) if d in (64, 256, 1024) and seeds_given is None else seeds) for d in dims}
requests = {(m, d, s): ex.Request.run(cfg("cocostuff27-equss", s, **{"model.head_dim": d, **ov, **extra}))
            for m, ov in methods.items() for d in dims for s in seeds_at[d]}

# %%
runs = ex.run_all(requests, records, "fig2", plan_only, **run_options)

# %%
dataset = cfg("cocostuff27-equss").data.dataset
rows = [ex.row(m, r, dataset, s, dim=d) for (m, d, s), r in runs.items()]
ex.save_table(rows, out, "fig2", caption=f"Figure 2 ({scale}): accuracy vs head dimension (%), mean ± std over seeds")
ex.save_provenance(out, "fig2", scale, {r["run"]: r for r in runs.values()}, seeds=seeds, dims=dims, seeds_at={str(d): v for d, v in seeds_at.items()})
ex.show(rows)

# %%
fig = plots.dimension_curves(rows, title=f"Figure 2 ({scale}, {dataset}): accuracy vs dimension")
plots.save(fig, out / "fig2.png", dpi=120)

# %%
conclude.conclusion(out, "Fig. 2")
