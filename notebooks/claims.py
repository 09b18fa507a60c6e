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
# # The paper's claims, decided by the measurements
#
# **What to look for.** The verdict column of the reviewer's table: **holds** / **contradicted** (the adjusted p below 0.05, with or against the paper), **equivalent** (a "does not fall" claim shown within its margin), **inconclusive** (no evidence either way at these runs). Then, for an inconclusive claim, the power and the seeds needed: they say whether more runs could decide it. The conclusion at the end counts the verdicts per table and names the decided claims with their numbers.
#
# **How the claims are decided.** Reads the per-seed tables the other notebooks wrote into the results folder, the run records' configs and their evaluation files, and decides each claim with `equss.paper.claims` (its docstring gives every choice). In short:
#
# * **The unit of replication is a training run.** Classes, grid cells and images are aggregated within a run first. Arms whose seed-s runs share the batches and kNN positives (checked from the record configs: the same `train.seed`, dataset, batch size, backbone, kNN settings) are compared **paired by seed**; Table 3's five arms by a **mixed model** (arm fixed, seed random); arms without a shared batch stream (the raw-backbone baseline) by **Welch**. The `test` column says which and why.
# * **Arms that differ in one thing** (the study's protocol: `docs/study.md`). "EQUSS > STEGO" is decided against both STEGO (its own recipe) and M1 (STEGO's 70-d head on EQUSS's recipe): it holds only if it holds against each (intersection-union), and the two comparisons are shown under it. The `arms` column says whether a claim's arms are recipe- and tuning-matched, or names the mismatch (read from the run configs and `tuning.json`).
# * **Families, Holm-Bonferroni in each.** The primary family is the official protocol (online probes, the table's evaluation resolution); two secondary families re-estimate claims with converged post-hoc probes and at the training resolution (224), each corrected on its own so that they do not dilute the primary one (`family` column). `p` is the raw p-value, `p (Holm)` the one adjusted within its family; the verdict uses the adjusted one: **holds** / **contradicted** (adjusted p < 0.05, estimate with / against the claimed sign), **equivalent** (a "does not fall" claim shown within its stated margin by TOST), **inconclusive** (no evidence either way at these runs, which is not evidence of no effect). The interval is the unadjusted 95 % one (90 % for TOST).
# * **The paper's metric**: Table 3 on linear probing first (unsupervised as a secondary row), Fig. 4c on per-class accuracy (from each run's matched confusion matrix) with Spearman's rho and a leave-one-class-out check, Fig. 4a with both entropies divided by their maximum.
# * **Power**: the power at the runs it had to see the paper's own effect, the minimum detectable effect (MDE) at 80 % power, and the seeds per arm needed for the paper's effect, at the family's level (0.05 / number of claims).
#
# Writes `claims.csv` (every column, full precision) and `claims.md` (copied into the README by `tools/update_readme.py`). Run it last (`make reproduce` does); it trains nothing.

# %% jupyter={"source_hidden": true} tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # unused here (kept so every notebook takes the same parameters)
device = "auto"        # unused here
seeds = None           # unused here: the tables carry their seeds
overrides = []         # unused here

# %%
from collections import Counter

from equss import paper as ex
from equss.paper import claims, conclude
out, cfg = ex.setup(scale, results_dir, data_root, device, overrides)
tables = claims.load_tables(out)
print("reading", out, "| tables:", ", ".join(tables) or "none")

# %%
verdicts = claims.paper_claims(tables)
claims.write(verdicts, out)
counts = Counter(v.verdict for v in verdicts)
print(f"{len(verdicts)} claims, {sum(v.p == v.p for v in verdicts)} with a test (the Holm family);",
      ", ".join(f"{counts[k]} {k}" for k in claims.VERDICTS))

# %% [markdown]
# The table for a reviewer: the verdict (coloured), the estimate in the claim's orientation (A - B for "A > B"; a slope or rho where the claim is a trend or a correlation) with its interval, the adjusted p, the replication units, the power to see the paper's effect and the MDE at the family's level, the seeds per arm needed for the paper's effect, the test and what each arm ran.

# %%
claims.styled(verdicts)

# %% [markdown]
# Every column as written to `claims.csv` (raw and adjusted p, power at the family's level and for the claim alone, the paper's effect used):

# %%
claims.frame(verdicts)

# %%
conclude.overall(verdicts, out)
