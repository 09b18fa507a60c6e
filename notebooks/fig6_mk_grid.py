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
# # Figure 6: unsupervised mIoU over M x K (d_E = 512)
#
# The paper's grid is Cityscapes, M in 1..64, K up to 128. At proxy scale: CamVid, a reduced grid and fewer steps (parameters `Ms`, `Ks`, `steps`).

# %% tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # default: $EQUSS_DATA
device = "auto"        # auto | cpu | cuda
Ms = None              # default: [2, 32] at proxy (smoke: [1, 4])
Ks = None              # default: [8, 64] at proxy (smoke: [8])
steps = None           # default: 100 at proxy, else the preset's

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
Ms = Ms or ([1, 4] if scale == "smoke" else [2, 32] if scale == "proxy" else [1, 2, 4, 8, 16, 32, 64])
Ks = Ks or ([8] if scale == "smoke" else [8, 64] if scale == "proxy" else [8, 16, 32, 64, 128])
steps = steps or (100 if scale == "proxy" else None)
extra = {"train.steps": steps, "train.val_every": steps} if steps else {}
runs = {(m, k): ex.run(cfg("cityscapes27-equss", **{"model.head_dim": 512, "model.num_codebooks": m, "model.codebook_size": k, **extra}), flip=False)
        for m in Ms for k in Ks}

# %%
rows = [{"M": m, "K": k, "unsup_miou": round(runs[(m, k)]["cluster"]["mIoU"], 1), "unsup_acc": round(runs[(m, k)]["cluster"]["Accuracy"], 1), "source": "measured"} for m in Ms for k in Ks]
ex.save_table(rows, out, "fig6", caption=f"Figure 6 ({scale}): unsupervised mIoU over M x K, d_E 512")
ex.save_provenance(out, "fig6", scale, {f"M{m} K{k}": r for (m, k), r in runs.items()})
ex.show(rows)

# %%
fig = plots.mk_grid(rows, title=f"Figure 6 ({scale}, {cfg('cityscapes27-equss').data.dataset}, d_E 512)")
plots.save(fig, out / "fig6.png", dpi=110)
