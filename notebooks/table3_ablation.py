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
# # Table 3: ablation of dimension and PQ (proxy: CamVid)
#
# M1 = STEGO (70, no PQ), M2 = 384 no PQ, M3 = 1024 no PQ, Q2 = 384 + PQ, Q3 = 1024 + PQ (= the EQUSS row of Table 1, same cached run).

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
variants = {"M1 (70, no PQ)": "M1", "M2 (384, no PQ)": "M2", "M3 (1024, no PQ)": "M3", "Q2 (384, PQ)": "Q2", "Q3 (1024, PQ)": "Q3"}
runs = {name: ex.run(cfg(f"cocostuff27-{v}")) for name, v in variants.items()}

# %%
rows = [ex.row(n, r) for n, r in runs.items()] + paper.quoted_rows(paper.TABLE3, " [CocoStuff-27]")
ex.save_table(rows, out, "table3", caption=f"Table 3 ({scale}): dimension and PQ ablation (%)")
ex.save_provenance(out, "table3", scale, runs)
ex.show(rows)
