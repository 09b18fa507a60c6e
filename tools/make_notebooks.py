"""Write the reproduction notebooks (outputs empty) from the cell sources below.

The notebooks are thin: a papermill ``parameters`` cell with smoke defaults, then calls
into :mod:`equss.paper.runs`.  Run ``python tools/make_notebooks.py`` after editing.
"""
from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent.parent / "notebooks"

PARAMS = '''# Parameters (papermill overrides these; defaults are the CI smoke settings)
scale = "smoke"        # smoke | proxy | paper
results_dir = None     # default: results/<scale> (a temporary folder at smoke scale)
data_root = None       # default: $EQUSS_DATA
device = "auto"        # auto | cpu | cuda
'''

SETUP = '''import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from equss.paper import runs as ex
from equss.paper import quoted as paper
out = ex.results_dir(scale, results_dir)
cfg = lambda preset, **ov: ex.config(ex.preset_for(preset, scale), scale, overrides=ov, data_root=data_root, device=device)
print("writing to", out)'''

NOTEBOOKS = {
"table1_cocostuff": [
"# Table 1: CocoStuff-27 (proxy: CamVid)\n\nDINO row = spherical k-means and a linear probe on the raw backbone features; STEGO and EQUSS measured with their presets. The paper's numbers are quoted beside them and marked as quoted. At `proxy` scale the data is CamVid and the backbone the offline DINOv2 ViT-S/14, not CocoStuff-27 with DINO ViT-S/8.",
PARAMS, SETUP,
'''cfgs = {"STEGO": cfg("cocostuff27-stego"), "EQUSS": cfg("cocostuff27-equss")}
base = ex.baseline(cfgs["EQUSS"])
runs = {name: ex.run(c) for name, c in cfgs.items()}''',
'''dataset = cfgs["EQUSS"].data.dataset
rows = [ex.row(f"DINO (raw features) [{dataset}]", base)] + [ex.row(f"{n} [{dataset}]", r) for n, r in runs.items()]
rows += paper.quoted_rows(paper.TABLE1, " [CocoStuff-27, ViT-S/8]")
ex.save_table(rows, out, "table1", caption=f"Table 1 ({scale}): unsupervised and linear-probe Acc / mIoU (%)")
ex.save_provenance(out, "table1", scale, {"DINO": base, **runs})
ex.show(rows)''',
],
"table2_cityscapes_potsdam": [
"# Table 2: (a) Cityscapes-27 and (b) Potsdam-3 (proxy: CamVid and Dubai aerial)\n\nSTEGO vs EQUSS, unsupervised Acc / mIoU. At proxy scale 2a uses CamVid (the runs are shared with Table 1) and 2b the Dubai aerial tiles (5 classes: Land, Water, Building, Vegetation, Road).",
PARAMS, SETUP,
'''runs_a = {n: ex.run(cfg(f"cityscapes27-{n.lower()}")) for n in ("STEGO", "EQUSS")}
runs_b = {n: ex.run(cfg(f"potsdam3-{n.lower()}")) for n in ("STEGO", "EQUSS")}''',
'''ds_a, ds_b = cfg("cityscapes27-equss").data.dataset, cfg("potsdam3-equss").data.dataset
rows = [dict(ex.row(f"{n} [{ds_a}]", r), table="2a") for n, r in runs_a.items()]
rows += [dict(ex.row(f"{n} [{ds_b}]", r), table="2b") for n, r in runs_b.items()]
rows += [dict(r, table="2a") for r in paper.quoted_rows(paper.TABLE2A, " [Cityscapes-27, ViT-B/8]")]
rows += [dict(r, table="2b") for r in paper.quoted_rows(paper.TABLE2B, " [Potsdam-3]")]
ex.save_table(rows, out, "table2", caption=f"Table 2 ({scale}): STEGO vs EQUSS (%)")
ex.save_provenance(out, "table2", scale, {**{f"2a {k}": v for k, v in runs_a.items()}, **{f"2b {k}": v for k, v in runs_b.items()}})
ex.show(rows)''',
],
"table3_ablation": [
"# Table 3: ablation of dimension and PQ (proxy: CamVid)\n\nM1 = STEGO (70, no PQ), M2 = 384 no PQ, M3 = 1024 no PQ, Q2 = 384 + PQ, Q3 = 1024 + PQ (= the EQUSS row of Table 1, same cached run).",
PARAMS, SETUP,
'''variants = {"M1 (70, no PQ)": "M1", "M2 (384, no PQ)": "M2", "M3 (1024, no PQ)": "M3", "Q2 (384, PQ)": "Q2", "Q3 (1024, PQ)": "Q3"}
runs = {name: ex.run(cfg(f"cocostuff27-{v}")) for name, v in variants.items()}''',
'''rows = [ex.row(n, r) for n, r in runs.items()] + paper.quoted_rows(paper.TABLE3, " [CocoStuff-27]")
ex.save_table(rows, out, "table3", caption=f"Table 3 ({scale}): dimension and PQ ablation (%)")
ex.save_provenance(out, "table3", scale, runs)
ex.show(rows)''',
],
"fig2_dimension": [
"# Figure 2: accuracy vs feature dimension\n\nA supervised head (trained through the linear probe's cross-entropy, an upper reference), the STEGO head (no PQ) and EQUSS (PQ, M = 16 codebooks of K = 256) at several head widths. At proxy scale: CamVid, fewer widths and steps than the paper (see the `dims` and `steps` parameters).",
PARAMS + 'dims = None           # default: [64, 512] at proxy (smoke: [32, 64])\nsteps = None          # default: 100 at proxy, else the preset\'s\n',
SETUP,
'''dims = dims or ([32, 64] if scale == "smoke" else [64, 512] if scale == "proxy" else [64, 128, 256, 512, 1024])
steps = steps or (100 if scale == "proxy" else None)
methods = {"supervised head": {"model.pq": False, "model.objective": "supervised"},
           "STEGO head": {"model.pq": False},
           "EQUSS (PQ)": {"model.pq": True, "model.num_codebooks": 16, "model.codebook_size": 256}}
extra = {"train.steps": steps, "train.val_every": steps} if steps else {}
runs = {(m, d): ex.run(cfg("cocostuff27-equss", **{"model.head_dim": d, **ov, **extra}), flip=False) for m, ov in methods.items() for d in dims}''',
'''rows = [{"method": m, "dim": d, "unsup_acc": round(r["cluster"]["Accuracy"], 1), "unsup_miou": round(r["cluster"]["mIoU"], 1),
         "linear_acc": round(r["linear"]["Accuracy"], 1), "linear_miou": round(r["linear"]["mIoU"], 1), "source": "measured"}
        for (m, d), r in runs.items()]
ex.save_table(rows, out, "fig2", caption=f"Figure 2 ({scale}): accuracy vs head dimension (%)")
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for m in methods:
    pts = [(r["dim"], r) for r in rows if r["method"] == m]
    for ax, key, title in ((axes[0], "unsup_acc", "unsupervised (cluster probe) Acc"), (axes[1], "linear_acc", "linear probe Acc")):
        ax.plot([p[0] for p in pts], [p[1][key] for p in pts], marker="o", label=m)
        ax.set_xscale("log", base=2); ax.set_xlabel("head dimension"); ax.set_ylabel("%"); ax.set_title(title)
axes[0].legend()
fig.suptitle(f"Figure 2 ({scale}, {cfg('cocostuff27-equss').data.dataset}): accuracy vs dimension")
fig.tight_layout(); fig.savefig(out / "fig2.png", dpi=120)
ex.save_provenance(out, "fig2", scale, {f"{m} {d}": r for (m, d), r in runs.items()})
ex.show(rows)''',
],
"fig4_entropy": [
"# Figure 4: entropy and codeword analyses\n\n(a) per-class entropy: EQUSS = sum over codebooks of the codeword entropy (Eq. 6-7, bits); STEGO = summed per-dimension histogram entropy of its continuous 70-d output (256 bins; the official script defines no bins, see `equss.eval.analysis.histogram_entropy`). (b) codeword frequency per codebook. (c) per-class IoU vs entropy. (d) inter-class codeword distance (Eq. 8-9). Test-split patches at the feature resolution.",
PARAMS, SETUP,
'''from equss.eval import analysis
runs = {"STEGO": ex.run(cfg("cocostuff27-stego")), "EQUSS": ex.run(cfg("cocostuff27-equss"))}
eq, st = ex.collect_codes(runs["EQUSS"]), ex.collect_codes(runs["STEGO"])
names = eq["class_names"]; C = len(names); K = eq["codebook_size"]
ent_eq = analysis.per_class_entropy(eq["codes"], eq["labels"], K)
ent_st = {c: analysis.histogram_entropy(st["features"][st["labels"] == c], bins=256) for c in np.unique(st["labels"])}''',
'''classes = [c for c in range(C) if c in ent_eq and c in ent_st]
avg_eq, avg_st = float(np.mean([ent_eq[c] for c in classes])), float(np.mean([ent_st[c] for c in classes]))
iou = np.asarray(runs["EQUSS"]["cluster"]["per_class_iou"], dtype=float)
freq = analysis.codeword_frequency(eq["codes"], K)
dist = analysis.class_distance_matrix(eq["codes"], eq["labels"], C, samples_per_class=2000, seed=0)
fig, ax = plt.subplots(2, 2, figsize=(13, 10))
x = np.arange(len(classes))
ax[0, 0].bar(x - 0.2, [ent_st[c] for c in classes], 0.4, label=f"STEGO (hist., avg {avg_st:.0f} bits)")
ax[0, 0].bar(x + 0.2, [ent_eq[c] for c in classes], 0.4, label=f"EQUSS (codes, avg {avg_eq:.0f} bits)")
ax[0, 0].set_xticks(x, [names[c] for c in classes], rotation=60); ax[0, 0].set_ylabel("bits"); ax[0, 0].legend(); ax[0, 0].set_title("(a) per-class entropy")
im = ax[0, 1].imshow(freq / freq.sum(1, keepdims=True), aspect="auto", cmap="viridis"); fig.colorbar(im, ax=ax[0, 1])
ax[0, 1].set_xlabel("codeword"); ax[0, 1].set_ylabel("codebook"); ax[0, 1].set_title("(b) codeword frequency per codebook")
e = np.array([ent_eq[c] for c in classes]); a = iou[classes]; ok = ~np.isnan(a)
r = float(np.corrcoef(e[ok], a[ok])[0, 1]) if ok.sum() > 2 else float("nan")
ax[1, 0].scatter(e[ok], a[ok])
for c, xe, ya in zip(np.asarray(classes)[ok], e[ok], a[ok]): ax[1, 0].annotate(names[c], (xe, ya), fontsize=8)
ax[1, 0].set_xlabel("EQUSS entropy (bits)"); ax[1, 0].set_ylabel("per-class IoU (%)"); ax[1, 0].set_title(f"(c) IoU vs entropy, Pearson r = {r:.2f}")
im = ax[1, 1].imshow(dist, cmap="magma"); fig.colorbar(im, ax=ax[1, 1])
ax[1, 1].set_xticks(range(C), names, rotation=60); ax[1, 1].set_yticks(range(C), names); ax[1, 1].set_title("(d) mean codeword distance (Eq. 9)")
fig.tight_layout(); fig.savefig(out / "fig4.png", dpi=110)
rows = [{"class": names[c], "entropy_equss_bits": round(ent_eq[c], 1), "entropy_stego_bits": round(ent_st[c], 1),
         "equss_iou": round(float(iou[c]), 1)} for c in classes]
rows.append({"class": "average", "entropy_equss_bits": round(avg_eq, 1), "entropy_stego_bits": round(avg_st, 1), "equss_iou": None})
rows.append({"class": "paper average (quoted, CocoStuff-27)", "entropy_equss_bits": paper.ENTROPY_BITS["EQUSS"], "entropy_stego_bits": paper.ENTROPY_BITS["STEGO"], "equss_iou": None})
ex.save_table(rows, out, "fig4", caption=f"Figure 4 ({scale}): per-class entropy (bits); Pearson r(entropy, IoU) = {r:.2f}")
ex.save_provenance(out, "fig4", scale, runs, pearson_r=r, histogram_bins=256, n_patches=int(len(eq["labels"])))
ex.show(rows)''',
],
"fig5_qualitative": [
"# Figure 5: qualitative results\n\nImage, ground truth, STEGO and EQUSS (cluster probe, clusters mapped to classes by the Hungarian assignment of the whole test split).",
PARAMS + 'n_images = 4\n', SETUP,
'''from equss.data import dataset_info
runs = {"STEGO": ex.run(cfg("cocostuff27-stego")), "EQUSS": ex.run(cfg("cocostuff27-equss"))}
palette = dataset_info(cfg("cocostuff27-equss").data.dataset).palette
preds = {k: ex.predictions(r, list(range(n_images))) for k, r in runs.items()}''',
'''fig, ax = plt.subplots(n_images, 4, figsize=(12, 3 * n_images), squeeze=False)
for i in range(n_images):
    panels = [preds["EQUSS"]["image"][i], ex.colorize(preds["EQUSS"]["label"][i], palette),
              ex.colorize(preds["STEGO"]["pred"][i], palette), ex.colorize(preds["EQUSS"]["pred"][i], palette)]
    for j, (p, t) in enumerate(zip(panels, ["image", "ground truth", "STEGO", "EQUSS"])):
        ax[i, j].imshow(p); ax[i, j].axis("off")
        if i == 0: ax[i, j].set_title(t)
fig.tight_layout(); fig.savefig(out / "fig5.png", dpi=100)
ex.save_provenance(out, "fig5", scale, runs, images=list(range(n_images)))''',
],
"fig6_mk_grid": [
"# Figure 6: unsupervised mIoU over M x K (d_E = 512)\n\nThe paper's grid is Cityscapes, M in 1..64, K up to 128. At proxy scale: CamVid, a reduced grid and fewer steps (parameters `Ms`, `Ks`, `steps`).",
PARAMS + 'Ms = None              # default: [2, 32] at proxy (smoke: [1, 4])\nKs = None              # default: [8, 64] at proxy (smoke: [8])\nsteps = None           # default: 100 at proxy, else the preset\'s\n',
SETUP,
'''Ms = Ms or ([1, 4] if scale == "smoke" else [2, 32] if scale == "proxy" else [1, 2, 4, 8, 16, 32, 64])
Ks = Ks or ([8] if scale == "smoke" else [8, 64] if scale == "proxy" else [8, 16, 32, 64, 128])
steps = steps or (100 if scale == "proxy" else None)
extra = {"train.steps": steps, "train.val_every": steps} if steps else {}
runs = {(m, k): ex.run(cfg("cityscapes27-equss", **{"model.head_dim": 512, "model.num_codebooks": m, "model.codebook_size": k, **extra}), flip=False)
        for m in Ms for k in Ks}''',
'''grid = np.array([[runs[(m, k)]["cluster"]["mIoU"] for k in Ks] for m in Ms])
fig, ax = plt.subplots(figsize=(1.6 * len(Ks) + 2, 0.8 * len(Ms) + 2))
im = ax.imshow(grid, cmap="viridis"); fig.colorbar(im, ax=ax, label="unsupervised mIoU (%)")
ax.set_xticks(range(len(Ks)), Ks); ax.set_yticks(range(len(Ms)), Ms); ax.set_xlabel("K (codewords)"); ax.set_ylabel("M (codebooks)")
for i in range(len(Ms)):
    for j in range(len(Ks)): ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", color="w")
ax.set_title(f"Figure 6 ({scale}, {cfg('cityscapes27-equss').data.dataset}, d_E 512)")
fig.tight_layout(); fig.savefig(out / "fig6.png", dpi=110)
rows = [{"M": m, "K": k, "unsup_miou": round(runs[(m, k)]["cluster"]["mIoU"], 1), "unsup_acc": round(runs[(m, k)]["cluster"]["Accuracy"], 1), "source": "measured"} for m in Ms for k in Ks]
ex.save_table(rows, out, "fig6", caption=f"Figure 6 ({scale}): unsupervised mIoU over M x K, d_E 512")
ex.save_provenance(out, "fig6", scale, {f"M{m} K{k}": r for (m, k), r in runs.items()})
ex.show(rows)''',
],
}


def build():
    for name, cells in NOTEBOOKS.items():
        nb = nbf.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        out = [nbf.v4.new_markdown_cell(cells[0])]
        for i, src in enumerate(cells[1:]):
            cell = nbf.v4.new_code_cell(src)
            if i == 0:
                cell.metadata["tags"] = ["parameters"]
            out.append(cell)
        nb.cells = out
        for c in nb.cells:  # deterministic files: no random cell ids
            c.pop("id", None)
        nb.nbformat, nb.nbformat_minor = 4, 4
        nbf.write(nb, HERE / f"{name}.ipynb")
        print("wrote", HERE / f"{name}.ipynb")


if __name__ == "__main__":
    build()
