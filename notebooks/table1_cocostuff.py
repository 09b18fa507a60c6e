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
# # Table 1: CocoStuff-27 (proxy: CamVid)
#
# **What to look for.** The `EQUSS − STEGO` rows of the table and the lower row of the dot chart: the paper reports a gain on all four metrics (its value is the red diamond, its quoted number the `paper` column); whether the measured gain has the same sign, and how wide its seed interval is, says whether the proxy reproduces it. `measured − paper` says by how much each number departs. The conclusion at the end gives the verdicts of the paper's claims on this table, with their numbers.
#
# **How it was measured.** DINO row = spherical k-means and a linear probe on the raw backbone features (its k-means and probe seeded by the seed); STEGO and EQUSS measured with their presets, each seed a separate training (head/codebook/probe init, batch order, loss sampling). Numbers without and with the dense CRF (the official protocol reports both; the claims use the numbers without it). The CSV has every seed's row and the run record it comes from (`runs/<run>/`); the Markdown shows mean ± std over seeds. The paper's numbers are quoted beside them and marked as quoted. At `proxy` scale the data is CamVid and the backbone the offline DINOv2 ViT-S/14, not CocoStuff-27 with DINO ViT-S/8.

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

# %%
# %matplotlib inline
from equss import paper as ex
from equss.paper import conclude, plots, tables
from equss.paper import quoted as paper
out, cfg = ex.setup(scale, results_dir, data_root, device, overrides)
seeds, records = ex.seeds_for(scale, seeds), out / "runs"  # every run's record goes to runs/<run>/
print("writing to", out, "| seeds", seeds)

# %%
# the runs this notebook needs: the raw-feature baseline per seed; STEGO and EQUSS per seed, without and with the CRF
cfgs = {(n, s): cfg(f"cocostuff27-{n.lower()}", s) for n in ("STEGO", "EQUSS") for s in seeds}
requests = {("DINO", s): ex.Request.baseline(cfg("cocostuff27-equss", s)) for s in seeds}
requests |= {k: ex.Request.run(c) for k, c in cfgs.items()}
requests |= {(*k, "CRF"): ex.Request.run(c, crf=True) for k, c in cfgs.items()}

# %%
results = ex.run_all(requests, records, "table1", plan_only, **run_options)
base = {s: results["DINO", s] for s in seeds}
runs = {k: results[k] for k in cfgs}
runs_crf = {k: results[(*k, "CRF")] for k in cfgs}

# %%
dataset = cfg("cocostuff27-equss").data.dataset
rows = [ex.row("DINO (raw features)", base[s], dataset, s) for s in seeds]
rows += [ex.row(n, r, dataset, s) for (n, s), r in runs.items()]
rows += [ex.row(n, r, dataset, s, crf=True) for (n, s), r in runs_crf.items()]
rows += paper.quoted_rows(paper.TABLE1, " [CocoStuff-27, ViT-S/8]")
ex.save_table(rows, out, "table1", caption=f"Table 1 ({scale}): unsupervised and linear-probe Acc / mIoU (%), mean ± std over seeds")
ex.save_provenance(out, "table1", scale, {r["run"]: r for r in [*base.values(), *runs.values()]}, seeds=seeds)
tables.versus_paper(rows, tables.CONTRASTS["table1"])

# %%
fig = plots.table_dots(*tables.dots(rows, tables.CONTRASTS["table1"]), title=f"Table 1 ({scale}, {dataset}) beside the paper (CocoStuff-27)")
plots.save(fig, out / "table1.png", dpi=110)

# %%
conclude.conclusion(out, "Table 1")
