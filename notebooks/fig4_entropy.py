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
# # Figure 4: entropy and codeword analyses
#
# (a) per-class entropy: EQUSS = sum over codebooks of the codeword entropy (Eq. 6-7, bits); STEGO = summed per-dimension histogram entropy of its continuous 70-d output (256 bins; the official script defines no bins, see `equss.eval.analysis.histogram_entropy`). (b) codeword frequency per codebook. (c) per-class IoU vs entropy. (d) inter-class codeword distance (Eq. 8-9). Test-split patches at the feature resolution.

# %% tags=["parameters"]
# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # default: $EQUSS_DATA
device = "auto"        # auto | cpu | cuda

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
from equss import paper as ex
from equss.paper import plots
from equss.paper import quoted as paper
out = ex.results_dir(scale, results_dir)
cfg = lambda preset, **ov: ex.config(ex.preset_for(preset, scale), scale, overrides=ov, data_root=data_root, device=device)
print("writing to", out)

# %%
from equss.eval import analysis
runs = {"STEGO": ex.run(cfg("cocostuff27-stego")), "EQUSS": ex.run(cfg("cocostuff27-equss"))}
eq, st = ex.collect_codes(runs["EQUSS"]), ex.collect_codes(runs["STEGO"])
names = eq["class_names"]; C = len(names); K = eq["codebook_size"]
ent_eq = analysis.per_class_entropy(eq["codes"], eq["labels"], K)
ent_st = {c: analysis.histogram_entropy(st["features"][st["labels"] == c], bins=256) for c in np.unique(st["labels"])}

# %%
classes = [c for c in range(C) if c in ent_eq and c in ent_st]
avg_eq, avg_st = float(np.mean([ent_eq[c] for c in classes])), float(np.mean([ent_st[c] for c in classes]))
iou = np.asarray(runs["EQUSS"]["cluster"]["per_class_iou"], dtype=float)
freq = analysis.codeword_frequency(eq["codes"], K)
dist = analysis.class_distance_matrix(eq["codes"], eq["labels"], C, samples_per_class=2000, seed=0)
e = np.array([ent_eq[c] for c in classes]); a = iou[classes]; ok = ~np.isnan(a)
r = float(np.corrcoef(e[ok], a[ok])[0, 1]) if ok.sum() > 2 else float("nan")
rows = [{"class": names[c], "entropy_equss_bits": round(ent_eq[c], 1), "entropy_stego_bits": round(ent_st[c], 1),
         "equss_iou": round(float(iou[c]), 1)} for c in classes]
rows.append({"class": "average", "entropy_equss_bits": round(avg_eq, 1), "entropy_stego_bits": round(avg_st, 1), "equss_iou": None})
rows.append({"class": "paper average (quoted, CocoStuff-27)", "entropy_equss_bits": paper.ENTROPY_BITS["EQUSS"], "entropy_stego_bits": paper.ENTROPY_BITS["STEGO"], "equss_iou": None})
ex.save_table(rows, out, "fig4", caption=f"Figure 4 ({scale}): per-class entropy (bits); Pearson r(entropy, IoU) = {r:.2f}")
ex.save_provenance(out, "fig4", scale, runs, pearson_r=r, histogram_bins=256, n_patches=int(len(eq["labels"])))
ex.show(rows)

# %%
entropy_rows = [{"class": names[c], "method": method, "bits": ent[c]}
                for method, ent in (("STEGO (hist.)", ent_st), ("EQUSS (codes)", ent_eq)) for c in classes]
iou_rows = [{"class": names[c], "entropy_bits": xe, "iou": ya} for c, xe, ya in zip(np.asarray(classes)[ok], e[ok], a[ok])]
fig = plots.entropy_panels(entropy_rows, freq, iou_rows, dist, names, pearson_r=r)
plots.save(fig, out / "fig4.png", dpi=110)
