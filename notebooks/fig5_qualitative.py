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
# # Figure 5: qualitative results
#
# **What to look for.** Whether EQUSS's segments follow the ground truth's objects better than STEGO's, with and without the CRF; the colours are the classes of the legend under the grid, and each prediction carries its per-image mIoU and accuracy in the corner. A few images show what the errors look like; the tables decide which method is better.
#
# **How it was measured.** Test images spread evenly over the test split (not consecutive frames): image, ground truth, STEGO and EQUSS without and with the dense CRF (cluster probe, clusters mapped to classes by the Hungarian assignment of the whole test split; black: unlabelled pixels or clusters left unmatched). The first seed's runs. Per-image scores over the labelled pixels: accuracy, and mIoU over the classes present in the image's ground truth or prediction.

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
n_images = 4

# %%
# %matplotlib inline
from equss import paper as ex
from equss.paper import conclude, figures, plots
from equss.paper import quoted as paper
out, cfg = ex.setup(scale, results_dir, data_root, device, overrides)
seeds, records = ex.seeds_for(scale, seeds), out / "runs"  # every run's record goes to runs/<run>/
print("writing to", out, "| seeds", seeds)

# %%
# the runs this notebook needs: STEGO and EQUSS of the first seed, evaluated with the CRF
requests = {n: ex.Request.run(cfg(f"cocostuff27-{n.lower()}", seeds[0]), crf=True) for n in ("STEGO", "EQUSS")}

# %%
from equss.data import dataset_info
runs = ex.run_all(requests, records, "fig5", plan_only, **run_options)
info = dataset_info(cfg("cocostuff27-equss").data.dataset)
images = ex.spread_indices(ex.n_test_images(runs["EQUSS"]), n_images)
preds = {k: ex.predictions(r, images, crf=True) for k, r in runs.items()}
print("test images", images)

# %%
ex.save_provenance(out, "fig5", scale, {r["run"]: r for r in runs.values()}, images=images, seed=seeds[0])
panels, titles, scores = figures.fig5_panels(preds, info.palette)
fig = plots.qualitative_grid(panels, titles, figures.score_text(scores), info.class_names, info.palette)
plots.save(fig, out / "fig5.png", dpi=100)

# %%
conclude.qualitative(scores, images, seeds[0])
