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
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Figure 5: qualitative results
#
# Image, ground truth, STEGO and EQUSS (cluster probe, clusters mapped to classes by the Hungarian assignment of the whole test split).

# %% tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # default: $EQUSS_DATA
device = "auto"        # auto | cpu | cuda
n_images = 4

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
from equss import paper as ex
from equss.paper import plots
from equss.paper import quoted as paper
out = ex.results_dir(scale, results_dir)
cfg = lambda preset, **ov: ex.config(ex.preset_for(preset, scale), scale, overrides=ov, data_root=data_root, device=device)
print("writing to", out)

# %%
from equss.data import dataset_info
runs = {"STEGO": ex.run(cfg("cocostuff27-stego")), "EQUSS": ex.run(cfg("cocostuff27-equss"))}
palette = dataset_info(cfg("cocostuff27-equss").data.dataset).palette
preds = {k: ex.predictions(r, list(range(n_images))) for k, r in runs.items()}

# %%
panels = [[preds["EQUSS"]["image"][i], ex.colorize(preds["EQUSS"]["label"][i], palette),
           ex.colorize(preds["STEGO"]["pred"][i], palette), ex.colorize(preds["EQUSS"]["pred"][i], palette)]
          for i in range(n_images)]
fig = plots.qualitative_grid(panels, ["image", "ground truth", "STEGO", "EQUSS"])
plots.save(fig, out / "fig5.png", dpi=100)
ex.save_provenance(out, "fig5", scale, runs, images=list(range(n_images)))
