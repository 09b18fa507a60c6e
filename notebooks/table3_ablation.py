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
# # Table 3: ablation of dimension and PQ (proxy: CamVid)
#
# **What to look for.** The contrast rows (`M1 − M2`, `M2 − M3`: a wider head without PQ; `Q2 − M2`, `Q3 − M3`: PQ at the same width) and the lower row of the dot chart, linear mIoU first (the paper states the ordering for linear probing): the paper's contrasts are the red diamonds. The paper's story is that width alone hurts and PQ recovers more than it lost at 1024; a measured contrast with the opposite sign and an interval clear of zero contradicts it. The conclusion at the end gives the verdicts.
#
# **How it was measured.** M1 = 70 no PQ, M2 = 384 no PQ, M3 = 1024 no PQ, Q2 = 384 + PQ, Q3 = 1024 + PQ (= the EQUSS row of Table 1, same cached run), all on one recipe; per seed, mean ± std in the Markdown.

# %% jupyter={"source_hidden": true} tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # default: $EQUSS_DATA
device = "auto"        # auto | cpu | cuda
seeds = None           # default: 0-5 at proxy (M1 and Q3: Table 1's 0-9), [0, 1, 2] at paper, [0] at smoke
overrides = []         # config overrides for every run (strings section.key:value, written with an equals sign)
run_options = {}       # how the runs are fanned out (run_many's keywords), e.g. {"executor": "local", "workers": 2, "threads": 1}; default: equss reproduce's --executor/--workers/--threads, else serial
plan_only = False      # True: print the runs (cached / new) and their predicted wall time, then stop before any run (equss reproduce --plan)

# %%
# %matplotlib inline
from equss import paper as ex
from equss.paper import conclude, plots, tables
from equss.paper import quoted as paper
out, cfg = ex.setup(scale, results_dir, data_root, device, overrides)
seeds_given, records = seeds, out / "runs"
seeds = ex.seeds_for(scale, seeds, proxy=list(range(6)))  # every run's record goes to runs/<run>/
print("writing to", out, "| seeds", seeds)

# %%
variants = {"M1 (70, no PQ)": "M1", "M2 (384, no PQ)": "M2", "M3 (1024, no PQ)": "M3", "Q2 (384, PQ)": "Q2", "Q3 (1024, PQ)": "Q3"}
# the runs this notebook needs: each variant per seed; M1 and Q3 are Table 1's M1 and EQUSS (same configs),
# so they take all of Table 1's seeds at no cost (the claims' mixed model handles the unequal counts)
shared = {"M1", "Q3"}
seeds_of = {v: (ex.seeds_for(scale, None, proxy=list(range(10))) if v in shared and seeds_given is None else seeds) for v in variants.values()}
requests = {(name, s): ex.Request.run(cfg(f"cocostuff27-{v}", s)) for name, v in variants.items() for s in seeds_of[v]}

# %%
runs = ex.run_all(requests, records, "table3", plan_only, **run_options)

# %%
dataset = cfg("cocostuff27-Q3").data.dataset
rows = [ex.row(n, r, dataset, s) for (n, s), r in runs.items()] + paper.quoted_rows(paper.TABLE3, " [CocoStuff-27]")
ex.save_table(rows, out, "table3", caption=f"Table 3 ({scale}): dimension and PQ ablation (%), mean ± std over seeds")
ex.save_provenance(out, "table3", scale, {r["run"]: r for r in runs.values()}, seeds=seeds)
tables.versus_paper(rows, tables.CONTRASTS["table3"])

# %%
fig = plots.table_dots(*tables.dots(rows, tables.CONTRASTS["table3"]), title=f"Table 3 ({scale}, {dataset}) beside the paper (CocoStuff-27)")
plots.save(fig, out / "table3.png", dpi=110)

# %%
conclude.conclusion(out, "Table 3")
