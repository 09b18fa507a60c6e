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
# Test images spread evenly over the test split (not consecutive frames): image, ground truth, STEGO and EQUSS without and with the dense CRF (cluster probe, clusters mapped to classes by the Hungarian assignment of the whole test split). The first seed's runs.

# %% tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # default: $EQUSS_DATA
device = "auto"        # auto | cpu | cuda
seeds = None           # default: [0, 1, 2] at proxy and paper, [0] at smoke
overrides = []         # config overrides for every run (strings section.key:value, written with an equals sign)
n_images = 4

# %%
# %matplotlib inline
from equss import paper as ex
from equss.paper import plots
from equss.paper import quoted as paper
out, cfg = ex.setup(scale, results_dir, data_root, device, overrides)
seeds, records = ex.seeds_for(scale, seeds), out / "runs"  # every run's record goes to runs/<run>/
print("writing to", out, "| seeds", seeds)

# %%
from equss.data import dataset_info
runs = {n: ex.run(cfg(f"cocostuff27-{n.lower()}", seeds[0]), crf=True, records=records) for n in ("STEGO", "EQUSS")}
palette = dataset_info(cfg("cocostuff27-equss").data.dataset).palette
images = ex.spread_indices(ex.n_test_images(runs["EQUSS"]), n_images)
preds = {k: ex.predictions(r, images, crf=True) for k, r in runs.items()}
print("test images", images)

# %%
col = lambda x: ex.colorize(x, palette)
panels = [[preds["EQUSS"]["image"][i], col(preds["EQUSS"]["label"][i]), col(preds["STEGO"]["pred"][i]), col(preds["STEGO"]["pred_crf"][i]),
           col(preds["EQUSS"]["pred"][i]), col(preds["EQUSS"]["pred_crf"][i])] for i in range(len(images))]
fig = plots.qualitative_grid(panels, ["image", "ground truth", "STEGO", "STEGO + CRF", "EQUSS", "EQUSS + CRF"])
plots.save(fig, out / "fig5.png", dpi=100)
ex.save_provenance(out, "fig5", scale, {r["run"]: r for r in runs.values()}, images=images, seed=seeds[0])
