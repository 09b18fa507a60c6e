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
# # Table 1: CocoStuff-27 (proxy: CamVid)
#
# DINO row = spherical k-means and a linear probe on the raw backbone features; STEGO and EQUSS measured with their presets. The paper's numbers are quoted beside them and marked as quoted. At `proxy` scale the data is CamVid and the backbone the offline DINOv2 ViT-S/14, not CocoStuff-27 with DINO ViT-S/8.

# %% tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # default: $EQUSS_DATA
device = "auto"        # auto | cpu | cuda

# %%
from equss import paper as ex
from equss.paper import quoted as paper
out = ex.results_dir(scale, results_dir)
cfg = lambda preset, **ov: ex.config(ex.preset_for(preset, scale), scale, overrides=ov, data_root=data_root, device=device)
print("writing to", out)

# %%
cfgs = {"STEGO": cfg("cocostuff27-stego"), "EQUSS": cfg("cocostuff27-equss")}
base = ex.baseline(cfgs["EQUSS"])
runs = {name: ex.run(c) for name, c in cfgs.items()}

# %%
dataset = cfgs["EQUSS"].data.dataset
rows = [ex.row(f"DINO (raw features) [{dataset}]", base)] + [ex.row(f"{n} [{dataset}]", r) for n, r in runs.items()]
rows += paper.quoted_rows(paper.TABLE1, " [CocoStuff-27, ViT-S/8]")
ex.save_table(rows, out, "table1", caption=f"Table 1 ({scale}): unsupervised and linear-probe Acc / mIoU (%)")
ex.save_provenance(out, "table1", scale, {"DINO": base, **runs})
ex.show(rows)
