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
# # Table 2: (a) Cityscapes-27 and (b) Potsdam-3 (proxy: CamVid and Dubai aerial)
#
# STEGO vs EQUSS, unsupervised Acc / mIoU. At proxy scale 2a uses CamVid (the runs are shared with Table 1) and 2b the Dubai aerial tiles (5 classes: Land, Water, Building, Vegetation, Road).

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
runs_a = {n: ex.run(cfg(f"cityscapes27-{n.lower()}")) for n in ("STEGO", "EQUSS")}
runs_b = {n: ex.run(cfg(f"potsdam3-{n.lower()}")) for n in ("STEGO", "EQUSS")}

# %%
ds_a, ds_b = cfg("cityscapes27-equss").data.dataset, cfg("potsdam3-equss").data.dataset
rows = [dict(ex.row(f"{n} [{ds_a}]", r), table="2a") for n, r in runs_a.items()]
rows += [dict(ex.row(f"{n} [{ds_b}]", r), table="2b") for n, r in runs_b.items()]
rows += [dict(r, table="2a") for r in paper.quoted_rows(paper.TABLE2A, " [Cityscapes-27, ViT-B/8]")]
rows += [dict(r, table="2b") for r in paper.quoted_rows(paper.TABLE2B, " [Potsdam-3]")]
ex.save_table(rows, out, "table2", caption=f"Table 2 ({scale}): STEGO vs EQUSS (%)")
ex.save_provenance(out, "table2", scale, {**{f"2a {k}": v for k, v in runs_a.items()}, **{f"2b {k}": v for k, v in runs_b.items()}})
ex.show(rows)
