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
# # Tuning the loss shifts on validation: every compared arm, one rule
#
# **What to look for.** How far apart the candidates of one arm lie (the spread of a column of the table, and the height of each line in the figure): that is how much the loss shifts alone move validation cluster mIoU, to be set beside the effects the tables test. Then whether the arms choose different levels (the stars): an arm whose best level is not the one its dataset's EQUSS arm chose was handicapped when it ran on EQUSS's shifts, and the last table gives by how much on validation ("gain of tuning"). Every later notebook at proxy scale trains each arm with the shifts chosen here.
#
# **How it was measured.** The correlation-loss shifts do not transfer from STEGO's backbone to the proxy's DINOv2 ViT-S/14, so they are chosen per arm with one rule (`equss.paper.tuning`): the pointwise-centred feature correlations of the three pair kinds are measured on the dataset's own training split; each candidate level q sets each term's shift to its q-quantile; every candidate trains the same number of steps from seed 0 and the one with the highest cluster mIoU on the dataset's own validation split is kept. The test split is not looked at. The same levels and steps for every arm (those EQUSS's own search had at proxy scale); at smoke scale fewer of both, on three of the arms, so that CI runs quickly. At paper scale nothing is tuned: the paper presets carry the official codes' shifts. Configurations derived from a tuned preset by keyword (Fig. 2's widths, Fig. 6's M x K grid) take that preset's shifts.

# %% jupyter={"source_hidden": true} tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # default: $EQUSS_DATA
device = "auto"        # auto | cpu | cuda
overrides = []         # config overrides for every run (strings section.key:value, written with an equals sign)
arms = None            # default: every tuned proxy preset (equss.paper.tuning.ARMS) at proxy, three of them at smoke, none at paper

# %%
# %matplotlib inline
from equss import paper as ex
from equss.paper import plots, tuning
out, cfg = ex.setup(scale, results_dir, data_root, device, overrides)
rule, arms = tuning.rule(scale), list(arms or tuning.arms_for(scale))
print("writing to", out, "| levels", ", ".join(rule["levels"]), "|", rule["steps_per_candidate"], "steps per candidate | seed", rule["seed"])

# %%
# every arm tuned once (a finished arm, cached or recorded in out/tuning/, is not trained again)
if scale == "paper":
    records = {}
    doc = tuning.write(out, records, "Paper scale: nothing tuned; the paper presets carry the official codes' shifts.")
else:
    records = ex.tune_arms(cfg, out, arms, rule)  # the arms fanned out over the local pool when asked for
    doc = tuning.write(out, records)
print(doc.get("note") or f"{len(records)} arms tuned by one rule (hash {doc['rule']['hash']}); records in {out.name}/tuning/")

# %%
# validation cluster mIoU (%) of every candidate level (rows) for every arm (columns)
tuning.candidates(records).round(2)

# %%
if records:
    fig = tuning.plot(records, title=f"Loss-shift tuning ({scale}): validation cluster mIoU per candidate level; star: chosen")
    plots.save(fig, out / "tuning.png", dpi=110)

# %%
# the chosen level per arm, its shifts, and what it gains on validation over the level its dataset's EQUSS arm chose
tuning.chosen_table(records).round(3)
