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
# # Figure 2: accuracy vs feature dimension
#
# A supervised head (trained through the linear probe's cross-entropy, an upper reference), the STEGO head (no PQ) and EQUSS (PQ, M = 16 codebooks of K = 256) at several head widths. At proxy scale: CamVid, fewer widths and steps than the paper (see the `dims` and `steps` parameters).

# %% tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # default: $EQUSS_DATA
device = "auto"        # auto | cpu | cuda
dims = None           # default: [64, 512] at proxy (smoke: [32, 64])
steps = None          # default: 100 at proxy, else the preset's

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
dims = dims or ([32, 64] if scale == "smoke" else [64, 512] if scale == "proxy" else [64, 128, 256, 512, 1024])
steps = steps or (100 if scale == "proxy" else None)
methods = {"supervised head": {"model.pq": False, "model.objective": "supervised"},
           "STEGO head": {"model.pq": False},
           "EQUSS (PQ)": {"model.pq": True, "model.num_codebooks": 16, "model.codebook_size": 256}}
extra = {"train.steps": steps, "train.val_every": steps} if steps else {}
runs = {(m, d): ex.run(cfg("cocostuff27-equss", **{"model.head_dim": d, **ov, **extra}), flip=False) for m, ov in methods.items() for d in dims}

# %%
rows = [{"method": m, "dim": d, "unsup_acc": round(r["cluster"]["Accuracy"], 1), "unsup_miou": round(r["cluster"]["mIoU"], 1),
         "linear_acc": round(r["linear"]["Accuracy"], 1), "linear_miou": round(r["linear"]["mIoU"], 1), "source": "measured"}
        for (m, d), r in runs.items()]
ex.save_table(rows, out, "fig2", caption=f"Figure 2 ({scale}): accuracy vs head dimension (%)")
ex.save_provenance(out, "fig2", scale, {f"{m} {d}": r for (m, d), r in runs.items()})
ex.show(rows)

# %%
fig = plots.dimension_curves(rows, title=f"Figure 2 ({scale}, {cfg('cocostuff27-equss').data.dataset}): accuracy vs dimension")
plots.save(fig, out / "fig2.png", dpi=120)
