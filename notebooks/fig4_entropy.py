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
# # Figure 4: entropy and codeword analyses
#
# **What to look for.** (a) whether EQUSS's bars sit far below STEGO's, as the paper's averages (dashed lines) do, keeping in mind that the two entropies have different maxima (the claim compares them as fractions of their maxima); (b) whether each class uses few codewords (a few bright cells per row); (c) whether low-entropy classes are the accurate ones (a falling cloud, negative Spearman rho); (d) whether the diagonal (same class) is darker than the rest. The conclusion at the end gives the verdicts of the claims on (a), (c) and (d).
#
# **How it was measured.** (a) per-class entropy: EQUSS = sum over codebooks of the codeword entropy (Eq. 6-7, bits); STEGO = summed per-dimension histogram entropy of its continuous 70-d output (256 bins; the official script defines no bins, see `equss.eval.analysis.histogram_entropy`). (b) codeword frequency per class (one codebook, the first seed's run). (c) per-class accuracy (the paper's metric, from each run's matched confusion matrix) vs entropy, class means over seeds. (d) inter-class codeword distance (Eq. 8-9), mean over seeds. Test-split patches at the feature resolution, per seed (the runs of Table 1). `fig4.csv` holds the per-class entropy and IoU, `fig4_distance.csv` the distance matrix; both trace to `fig4.json` in each run's record.

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
from equss.paper import conclude, figures, plots
from equss.paper import quoted as paper
out, cfg = ex.setup(scale, results_dir, data_root, device, overrides)
seeds, records = ex.seeds_for(scale, seeds), out / "runs"  # every run's record goes to runs/<run>/
print("writing to", out, "| seeds", seeds)

# %%
# the runs this notebook needs (Table 1's): STEGO and EQUSS per seed
requests = {(n, s): ex.Request.run(cfg(f"cocostuff27-{n.lower()}", s)) for n in ("STEGO", "EQUSS") for s in seeds}

# %%
runs = ex.run_all(requests, records, "fig4", plan_only, **run_options)
dataset = cfg("cocostuff27-equss").data.dataset
per_seed = {s: ex.entropy_analysis(runs["STEGO", s], runs["EQUSS", s], s, dataset, records=records) for s in seeds}

# %%
rows = [r for a in per_seed.values() for r in a["entropy_rows"]]
rows += [{"method": m, "class": "average (quoted, CocoStuff-27)", "entropy_bits": b, "source": paper.QUOTED} for m, b in paper.ENTROPY_BITS.items()]
ex.save_table(rows, out, "fig4", caption=f"Figure 4 ({scale}): per-class entropy (bits) and IoU (%), mean ± std over seeds", metrics=("entropy_bits", "iou"))
ex.save_table([r for a in per_seed.values() for r in a["distance_rows"]], out, "fig4_distance", metrics=("distance",),
              caption=f"Figure 4d ({scale}): mean codeword distance between classes (Eq. 9, codebooks that differ)")
ex.save_provenance(out, "fig4", scale, {r["run"]: r for r in runs.values()}, seeds=seeds, histogram_bins=256)
ex.show(rows, metrics=("entropy_bits", "iou"))

# %%
f4 = figures.fig4_data(out)  # read back from fig4.csv, fig4_distance.csv and the records' confusion matrices
fig = plots.entropy_panels(f4["entropy"], per_seed[seeds[0]]["class_freq"], f4["per_class"], f4["dist"], f4["class_names"], f4["rho"],
                           paper_bits=paper.ENTROPY_BITS, title=f"Figure 4 ({scale}, {dataset})")
plots.save(fig, out / "fig4.png", dpi=110)

# %%
conclude.conclusion(out, "Fig. 4")
