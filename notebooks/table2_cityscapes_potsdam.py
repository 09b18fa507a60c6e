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
# # Table 2: (a) Cityscapes-27 and (b) Potsdam-3 (proxy: CamVid and Dubai aerial)
#
# **What to look for.** The `EQUSS − STEGO` rows (one per sub-table) and the lower row of the dot chart: the paper reports EQUSS ahead of STEGO on both datasets (red diamonds; Table 2a quotes unsupervised Acc and mIoU, 2b unsupervised Acc only, so the other cells say —). The absolute numbers are not comparable across datasets (`measured − paper` is large by construction); the sign and size of the contrast is what carries over. The conclusion at the end gives the verdicts of the paper's claims on this table.
#
# **How it was measured.** STEGO vs EQUSS, per seed (mean ± std in the Markdown). At proxy scale 2a uses CamVid (the runs are shared with Table 1) and 2b the Dubai aerial tiles (5 classes: Land, Water, Building, Vegetation, Road).

# %% jupyter={"source_hidden": true} tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # default: $EQUSS_DATA
device = "auto"        # auto | cpu | cuda
seeds = None           # default: 0-5 at proxy (the power analysis of the claims: docs/study.md), [0, 1, 2] at paper, [0] at smoke
overrides = []         # config overrides for every run (strings section.key:value, written with an equals sign)
run_options = {}       # how the runs are fanned out (run_many's keywords), e.g. {"executor": "local", "workers": 2, "threads": 1}; default: equss reproduce's --executor/--workers/--threads, else serial
plan_only = False      # True: print the runs (cached / new) and their predicted wall time, then stop before any run (equss reproduce --plan)

# %%
# %matplotlib inline
from equss import paper as ex
from equss.paper import conclude, plots, tables
from equss.paper import quoted as paper
out, cfg = ex.setup(scale, results_dir, data_root, device, overrides)
seeds, records = ex.seeds_for(scale, seeds, proxy=list(range(6))), out / "runs"  # every run's record goes to runs/<run>/
print("writing to", out, "| seeds", seeds)

# %%
# the runs this notebook needs: per sub-table and seed, STEGO (its own recipe), M1 (STEGO's head on EQUSS's
# recipe) and EQUSS, each with its online probes and converged post-hoc probes
arms = {"STEGO": "stego", "M1": "M1", "EQUSS": "equss"}
parts = {"2a": "cityscapes27", "2b": "potsdam3"}
cfgs = {(t, n, s): cfg(f"{paper_ds}-{v}", s) for t, paper_ds in parts.items() for n, v in arms.items() for s in seeds}
requests = {k: ex.Request.run(c) for k, c in cfgs.items()}
requests |= {(*k, "post-hoc"): ex.Request.posthoc(c) for k, c in cfgs.items()}

# %%
results = ex.run_all(requests, records, "table2", plan_only, **run_options)
runs = {k: results[k] for k in cfgs}

# %%
ds = {"2a": cfg("cityscapes27-equss").data.dataset, "2b": cfg("potsdam3-equss").data.dataset}
rows = [ex.row(n, r, ds[t], s, table=t) for (t, n, s), r in runs.items()]
rows += [ex.row(n, results[t, n, s, "post-hoc"], ds[t], s, probe="post-hoc", table=t) for (t, n, s) in cfgs]
rows += [ex.row(n, results[t, n, s, "post-hoc"], ds[t], s, probe="post-hoc quantised", table=t) for (t, n, s) in cfgs if n == "EQUSS"]
rows += [dict(r, table="2a") for r in paper.quoted_rows(paper.TABLE2A, " [Cityscapes-27, ViT-B/8]")]
rows += [dict(r, table="2b") for r in paper.quoted_rows(paper.TABLE2B, " [Potsdam-3]")]
ex.save_table(rows, out, "table2", caption=f"Table 2 ({scale}): STEGO, M1 and EQUSS (%), mean ± std over seeds")
ex.save_provenance(out, "table2", scale, {r["run"]: r for r in runs.values()}, seeds=seeds)
official = [r for r in rows if r.get("probe", "online") == "online"]  # the official protocol's rows beside the paper
tables.versus_paper(official, tables.CONTRASTS["table2"], group="table")

# %%
fig = plots.table_dots(*tables.dots(official, tables.CONTRASTS["table2"], group="table"), title=f"Table 2 ({scale}) beside the paper (Cityscapes-27, Potsdam-3)")
plots.save(fig, out / "table2.png", dpi=110)

# %%
conclude.conclusion(out, "Table 2")
