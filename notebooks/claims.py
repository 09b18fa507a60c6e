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
# # The paper's claims, decided by the measurements
#
# Reads the per-seed CSVs the other notebooks wrote into the results folder and decides each claim with `equss.paper.claims` (Welch's 95 % interval over seeds for comparisons and contrasts, Fisher-z for the correlation, the OLS slope's t interval for trends): **holds** (interval above zero), **contradicted** (below), **inconclusive** (contains zero, or too few seeds). Writes `claims.md` (copied into the README by `tools/update_readme.py`) and `claims.csv`. Run it last (`make reproduce` does).

# %% tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # unused here (kept so every notebook takes the same parameters)
device = "auto"        # unused here
seeds = None           # unused here: the tables carry their seeds
overrides = []         # unused here

# %%
import pandas as pd
from equss import paper as ex
from equss.paper import claims
out, cfg = ex.setup(scale, results_dir, data_root, device, overrides)
tables = claims.load_tables(out)
print("reading", out, "| tables:", ", ".join(tables) or "none")

# %%
verdicts = claims.paper_claims(tables)
claims.write(verdicts, out)
pd.DataFrame([v.row() for v in verdicts])[["claim", "source", "verdict", "estimate", "low", "high", "n", "note"]]
