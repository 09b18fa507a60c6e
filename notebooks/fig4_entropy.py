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
# (a) per-class entropy: EQUSS = sum over codebooks of the codeword entropy (Eq. 6-7, bits); STEGO = summed per-dimension histogram entropy of its continuous 70-d output (256 bins; the official script defines no bins, see `equss.eval.analysis.histogram_entropy`). (b) codeword frequency per codebook. (c) per-class IoU vs entropy. (d) inter-class codeword distance (Eq. 8-9). Test-split patches at the feature resolution, per seed (the runs of Table 1). `fig4.csv` holds the per-class entropy and IoU, `fig4_distance.csv` the distance matrix; both trace to `fig4.json` in each run's record.

# %% tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # default: $EQUSS_DATA
device = "auto"        # auto | cpu | cuda
seeds = None           # default: [0, 1, 2] at proxy and paper, [0] at smoke
overrides = []         # config overrides for every run (strings section.key:value, written with an equals sign)

# %%
# %matplotlib inline
from equss import paper as ex
from equss.paper import plots
import pandas as pd
from equss.paper import quoted as paper
out, cfg = ex.setup(scale, results_dir, data_root, device, overrides)
seeds, records = ex.seeds_for(scale, seeds), out / "runs"  # every run's record goes to runs/<run>/
print("writing to", out, "| seeds", seeds)

# %%
runs = {(n, s): ex.run(cfg(f"cocostuff27-{n.lower()}", s), records=records) for n in ("STEGO", "EQUSS") for s in seeds}
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
first = per_seed[seeds[0]]
pts = ex.summary([r for r in rows if r["method"] == "EQUSS"], metrics=("entropy_bits", "iou"))
iou_rows = [{"class": p["class"], "entropy_bits": p["entropy_bits"][0], "iou": p["iou"][0]} for p in pts]
r = float(pd.DataFrame(iou_rows)[["entropy_bits", "iou"]].corr().iloc[0, 1]) if len(iou_rows) > 2 else float("nan")
fig = plots.entropy_panels([r_ for r_ in rows if r_["source"] == "measured"], first["freq"], iou_rows, first["dist"], first["class_names"], pearson_r=r)
plots.save(fig, out / "fig4.png", dpi=110)
