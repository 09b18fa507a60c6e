"""The figures of the reproduction notebooks (seaborn on matplotlib).

Each function takes long-form rows (a list of dicts or a DataFrame, one row per
measurement) and returns the matplotlib ``Figure``; the notebook shows it inline and
saves it with :func:`save`.  Rows may carry a ``seed`` column: repeated measurements of
one point become an error bar (``errorbar="sd"``), so multi-seed results need no new
plotting code.
"""
from __future__ import annotations

from pathlib import Path

THEME = {"style": "whitegrid", "context": "notebook"}


def _sns():
    import seaborn as sns

    sns.set_theme(**THEME)
    return sns


def _frame(rows):
    import pandas as pd

    return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))


def save(fig, path: str | Path, dpi: int = 110) -> None:
    """Write ``fig`` as PNG (the figure stays open, so the notebook still shows it inline;
    returns nothing, so a notebook cell ending with it shows no path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")


def _t_errorbar(level: float = 0.95):
    """A seaborn ``errorbar`` callable: the ``level`` t-interval of the mean (none with one value)."""
    from equss.paper.tables import t_interval

    def interval(values):
        low, high = t_interval(list(values), level)
        return (low, high) if low == low else (float("nan"), float("nan"))

    return interval


def _seed_text(df, level: float = 0.95) -> str:
    """"1 seed (seed 0): each point one run, no error bars" or "3 seeds: error bars = 95% t-interval"."""
    seeds = sorted(int(s) for s in df["seed"].dropna().unique()) if "seed" in df else []
    if len(seeds) <= 1:
        return f"1 seed{f' (seed {seeds[0]})' if seeds else ''}: each point one run, no error bars"
    return f"{len(seeds)} seeds: error bars = {level:.0%} t-interval of the mean"


def _legend_outside(ax, **kw):
    """The axes' legend to the right of the axes (off the data)."""
    handles, labels = ax.get_legend_handles_labels()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False, **kw)


def dimension_curves(rows, title: str = "", metrics=(("unsup_acc", "unsupervised (cluster probe) Acc"),
                                                       ("linear_acc", "linear probe Acc")), level: float = 0.95):
    """Fig. 2: accuracy against head dimension, one line per method (point plot; the dimensions are
    powers of two, evenly spaced = a log2 axis).  The title says how many seeds each point has; with
    several, the error bars are the ``level`` t-interval of the mean."""
    import matplotlib.pyplot as plt

    sns, df = _sns(), _frame(rows)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics) + 2.2, 4.2), squeeze=False)
    for ax, (key, label) in zip(axes[0], metrics):
        sns.pointplot(data=df, x="dim", y=key, hue="method", errorbar=_t_errorbar(level), dodge=0.2, markers="o",
                      capsize=0.1, ax=ax, legend=ax is axes[0][-1])
        ax.set(xlabel="head dimension (log2 axis)", ylabel="%", title=label)
    _legend_outside(axes[0][-1], title="method")
    fig.suptitle((f"{title}\n" if title else "") + _seed_text(df, level))
    fig.tight_layout()
    return fig


def heatmap(grid, row_labels, col_labels, ax=None, annot: bool = True, fmt: str = ".1f", cmap: str = "viridis",
            cbar_label: str = "", xlabel: str = "", ylabel: str = "", title: str = "", **kwargs):
    """A labelled seaborn heatmap (annotated cells by default); returns the axes."""
    import matplotlib.pyplot as plt
    import pandas as pd

    sns = _sns()
    if ax is None:
        _, ax = plt.subplots(figsize=(1.3 * len(col_labels) + 2.5, 0.7 * len(row_labels) + 2))
    data = pd.DataFrame(grid, index=list(row_labels), columns=list(col_labels))
    sns.heatmap(data, annot=annot, fmt=fmt, cmap=cmap, ax=ax, cbar_kws={"label": cbar_label} if cbar_label else None,
                **kwargs)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    return ax


BEST = "#d62728"  # the paper's best region / the paper's numbers


def mk_grid(rows, value: str = "unsup_miou", title: str = "", baseline=None, best: dict | None = None,
            level: float = 0.95):
    """Fig. 6 as the paper draws it: (a) ``value`` against the number of codebooks M (log2 axis), one line
    per codeword count K, the seeds' ``level`` t-interval where a cell has several seeds, the STEGO
    baseline (``baseline``: its per-seed rows; a band = its interval) as a dashed line, and the paper's
    best region (``best``: ``quoted.FIG6``'s ``best_M`` / ``best_K``) shaded, its K drawn thicker;
    (b) the grid as a heatmap (mean over seeds), the paper's best region boxed."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    from equss.paper.tables import t_interval

    sns, df = _sns(), _frame(rows)
    best = best or {}
    bm, bk = list(best.get("best_M", [])), list(best.get("best_K", []))
    fig, (ax, hx) = plt.subplots(1, 2, figsize=(15, 5.2), gridspec_kw={"width_ratios": [1.15, 1]})
    Ks = sorted(df["K"].unique())
    colours = dict(zip(Ks, sns.color_palette("deep", n_colors=len(Ks))))
    for k in Ks:
        cells = df[df["K"] == k].groupby("M")[value]
        Ms = np.array(sorted(cells.groups))
        mean = np.array([cells.get_group(m).mean() for m in Ms])
        iv = np.array([t_interval(cells.get_group(m).tolist(), level) for m in Ms])
        thick = k in bk
        ax.plot(Ms, mean, marker="o", color=colours[k], linewidth=2.6 if thick else 1.3,
                label=f"K = {k}" + (" (paper's best K)" if thick else ""))
        if np.isfinite(iv).any():
            ax.fill_between(Ms, iv[:, 0], iv[:, 1], color=colours[k], alpha=0.15, linewidth=0)
    if baseline is not None and len(_frame(baseline)):
        b = _frame(baseline)[value].astype(float)
        low, high = t_interval(b.tolist(), level)
        ax.axhline(b.mean(), color="black", linestyle="--", linewidth=1.4,
                   label=f"STEGO (measured, {len(b)} seed{'s' if len(b) > 1 else ''})")
        if low == low:
            ax.axhspan(low, high, color="black", alpha=0.08, linewidth=0)
    Ms_all = sorted(df["M"].unique())
    if bm and min(bm) >= min(Ms_all) and max(bm) <= max(Ms_all):
        ax.axvspan(min(bm), max(bm), color=BEST, alpha=0.08, linewidth=0,
                   label=f"paper's best region: M {min(bm)}-{max(bm)}, K {'/'.join(map(str, bk))} (quoted)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(Ms_all, [str(m) for m in Ms_all])
    ax.minorticks_off()
    seeds = df["seed"].nunique() if "seed" in df else 1
    ax.set(xlabel="M (codebooks)", ylabel="unsupervised mIoU (%)",
           title="(a) mIoU vs M per K" + (f", bands: {level:.0%} t-interval over {seeds} seeds" if seeds > 1
                                           else " (1 seed: each point one run)"))
    _legend_outside(ax, fontsize=9)
    grid = df.pivot_table(index="M", columns="K", values=value, aggfunc="mean")
    heatmap(grid.values, grid.index, grid.columns, ax=hx, cbar_label="unsupervised mIoU (%)",
            xlabel="K (codewords per codebook)", ylabel="M (codebooks)",
            title="(b) the grid, mean over seeds" + ("; box: paper's best region" if bm and bk else ""))
    rows_in, cols_in = [list(grid.index).index(m) for m in bm if m in grid.index], \
        [list(grid.columns).index(k) for k in bk if k in grid.columns]
    if rows_in and cols_in and len(rows_in) == len(bm) and len(cols_in) == len(bk):
        hx.add_patch(Rectangle((min(cols_in), min(rows_in)), max(cols_in) - min(cols_in) + 1,
                               max(rows_in) - min(rows_in) + 1, fill=False, edgecolor=BEST, linewidth=3))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _place_labels(ax, xs, ys, labels, fontsize: int = 9):
    """Point labels that do not overprint: each label takes the first of a ring of offsets whose box
    overlaps no label placed before it and no point (greedy, in display space; call it after the layout
    is final).  A label with no free place gets the farthest offset and a leader line."""
    renderer = ax.figure.canvas.get_renderer()
    pts = ax.transData.transform(list(zip(xs, ys)))
    placed = []
    offsets = [(dx * r, dy * r) for r in (4, 10, 18, 28)
               for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))]
    for k in sorted(range(len(labels)), key=lambda i: -pts[i][1]):
        for dx, dy in offsets:
            ann = ax.annotate(labels[k], (xs[k], ys[k]), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                              ha="left" if dx > 0 else "right" if dx < 0 else "center",
                              va="bottom" if dy > 0 else "top" if dy < 0 else "center")
            box = ann.get_window_extent(renderer).expanded(1.04, 1.08)
            inside = ax.get_window_extent(renderer).contains(box.x0, box.y0) and \
                ax.get_window_extent(renderer).contains(box.x1, box.y1)
            if inside and not any(box.contains(qx, qy) for qx, qy in pts) and not any(box.overlaps(b) for b in placed):
                placed.append(box)
                break
            ann.remove()
        else:
            ann = ax.annotate(labels[k], (xs[k], ys[k]), xytext=offsets[-8], textcoords="offset points",
                              fontsize=fontsize, arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6})
            placed.append(ann.get_window_extent(renderer))


def entropy_panels(entropy_rows, class_freq, per_class, dist, class_names, rho: float, paper_bits: dict | None = None,
                   codebook: int = 0, title: str = "", level: float = 0.95):
    """Fig. 4: (a) per-class entropy, STEGO vs EQUSS (grouped bars, error bars the seeds' ``level``
    t-interval) with the paper's average bits per class (``paper_bits``: ``quoted.ENTROPY_BITS``) as dashed
    lines; (b) codeword frequency per class (``class_freq`` (C, M, K) counts, one run: each class's share of
    patches on each codeword of codebook ``codebook``, codewords sorted by overall use, the unused left
    out; None: not shown); (c) per-class accuracy against EQUSS entropy (``per_class``: class,
    entropy_bits, accuracy and their ``_sd`` over seeds; Spearman ``rho``), labels placed so they do not
    overprint; (d) inter-class codeword distance (Eq. 9, ``dist`` (C, C)), annotated."""
    import matplotlib.pyplot as plt
    import numpy as np

    sns = _sns()
    ent, pts = _frame(entropy_rows), _frame(per_class)
    fig, ax = plt.subplots(2, 2, figsize=(15, 12))
    methods = list(dict.fromkeys(ent["method"]))
    colours = dict(zip(methods, sns.color_palette(n_colors=len(methods))))
    averages = ent.groupby(["method", "seed"])["entropy_bits"].mean().groupby("method").mean()
    sns.barplot(data=ent, x="class", y="entropy_bits", hue="method", errorbar=_t_errorbar(level), palette=colours,
                ax=ax[0, 0], legend=False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[m], label=f"{m}: measured, avg {averages[m]:.0f} bits")
               for m in methods]
    for m, bits in (paper_bits or {}).items():
        line = ax[0, 0].axhline(bits, color=colours.get(m, "0.3"), linestyle="--", linewidth=1.8,
                                label=f"{m}: paper's avg {bits:g} bits (quoted, CocoStuff-27)")
        handles.append(line)
    ax[0, 0].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, frameon=False,
                    fontsize=9)
    ax[0, 0].tick_params(axis="x", rotation=60)
    ax[0, 0].set(xlabel="", ylabel="bits per patch", title=f"(a) per-class entropy ({_seed_text(ent, level)})")
    if class_freq is not None:
        counts = np.asarray(class_freq, dtype=float)[:, codebook, :]  # (C, K)
        order = np.argsort(-counts.sum(0), kind="stable")
        order = order[counts.sum(0)[order] > 0]
        share = counts[:, order] / np.maximum(counts.sum(1, keepdims=True), 1)
        heatmap(share, class_names, [str(k) for k in order], ax=ax[0, 1], annot=False, cmap="viridis",
                cbar_label="share of the class's patches",
                xlabel=f"codeword of codebook {codebook} ({len(order)} used, sorted by overall use)",
                title=f"(b) codeword frequency per class (codebook {codebook}, one run)",
                xticklabels=max(1, len(order) // 12))
    else:
        ax[0, 1].axis("off")
        ax[0, 1].set_title("(b) codeword frequency per class: not in the records")
    e, a = pts["entropy_bits"].to_numpy(float), pts["accuracy"].to_numpy(float)
    ax[1, 0].errorbar(e, a, xerr=pts.get("entropy_bits_sd"), yerr=pts.get("accuracy_sd"), fmt="o",
                      color=colours.get("EQUSS", "C1"), ecolor="0.6", elinewidth=1, capsize=2)
    ax[1, 0].set(xlabel="EQUSS entropy (bits per patch)", ylabel="per-class accuracy (%)",
                 title=f"(c) accuracy vs entropy per class, Spearman rho = {rho:+.2f}")
    ax[1, 0].margins(0.12)
    heatmap(dist, class_names, class_names, ax=ax[1, 1], annot=len(class_names) <= 15, fmt=".0f", cmap="magma",
            cbar_label="codebooks that differ", title="(d) mean codeword distance (Eq. 9)", annot_kws={"fontsize": 7})
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _place_labels(ax[1, 0], e, a, pts["class"].tolist())
    return fig


def qualitative_grid(panels: list[list], titles: list[str], scores: list[dict] | None = None,
                     class_names=None, palette=None):
    """Fig. 5: one row per image, one column per panel (image, ground truth, predictions); ``scores``: per
    image ``{title: text}`` written in the corner of that panel (per-image mIoU / Acc); a legend of the
    class colours (``class_names``, ``palette`` (C, 3) uint8) under the grid."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Patch

    n = len(panels)
    fig, ax = plt.subplots(n, len(titles), figsize=(3 * len(titles), 3 * n + 0.9), squeeze=False)
    for i, row in enumerate(panels):
        for j, (img, t) in enumerate(zip(row, titles)):
            ax[i, j].imshow(img)
            ax[i, j].axis("off")
            if i == 0:
                ax[i, j].set_title(t)
            text = (scores[i] if scores else {}).get(t)
            if text:
                ax[i, j].text(0.02, 0.02, text, transform=ax[i, j].transAxes, fontsize=8, va="bottom",
                              bbox={"facecolor": "white", "alpha": 0.8, "pad": 2, "edgecolor": "none"})
    fig.tight_layout(rect=(0, 0.06 if class_names is not None else 0, 1, 1))
    if class_names is not None and palette is not None:
        pal = np.asarray(palette, dtype=float) / 255
        handles = [Patch(facecolor=pal[c], edgecolor="0.3", label=name) for c, name in enumerate(class_names)]
        handles.append(Patch(facecolor="black", edgecolor="0.3", label="unlabelled / unmatched"))
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), frameon=False, fontsize=9)
    return fig


def learning_curves(rows, chosen: dict | None = None, title: str = "",
                    metrics=(("val_unsup_miou", "validation cluster mIoU"),
                             ("val_linear_miou", "validation linear mIoU"),
                             ("unsup_miou", "test cluster mIoU (that step's checkpoint)"))):
    """Learning curves: each metric against the step, one colour per method: each seed a thin line, the
    seed mean a thick one, and a star on the mean at the step chosen on validation (``chosen``:
    ``curves.choose_steps``); the legend to the right of the panels."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    sns, df = _sns(), _frame(rows)
    metrics = [(k, label) for k, label in metrics if k in df]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics) + 2.6, 4.2), squeeze=False)
    methods = list(dict.fromkeys(df["method"]))
    palette = dict(zip(methods, sns.color_palette(n_colors=len(methods))))
    for ax, (key, label) in zip(axes[0], metrics):
        for method in methods:
            d = df[df["method"] == method]
            for _, s in d.groupby("seed"):
                s = s.sort_values("step")
                ax.plot(s["step"], s[key], color=palette[method], linewidth=0.9, alpha=0.35)
            mean = d.groupby("step")[key].mean()
            ax.plot(mean.index, mean.values, color=palette[method], linewidth=2.4, marker="o", markersize=4)
            c = (chosen or {}).get(method)
            if c and c["step"] in mean.index:
                ax.plot(c["step"], mean[c["step"]], marker="*", markersize=19, color=palette[method],
                        markeredgecolor="black", markeredgewidth=1.2, linestyle="", zorder=5)
        ax.set(xlabel="training step", ylabel="%", title=label)
    n_seeds = df["seed"].nunique()
    handles = [Line2D([], [], color=palette[m], linewidth=2.4, marker="o", markersize=4,
                      label=f"{m}: mean of {n_seeds} seed{'s' if n_seeds > 1 else ''}") for m in methods]
    handles += [Line2D([], [], color="0.5", linewidth=0.9, alpha=0.5, label="one seed"),
                Line2D([], [], marker="*", markersize=14, color="0.8", markeredgecolor="black", linestyle="",
                       label="step chosen on validation")]
    for m, c in (chosen or {}).items():
        handles.append(Line2D([], [], linestyle="", label=f"  {m}: step {c['step']}"))
    axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


PAPER = {"marker": "D", "color": "#d62728", "s": 55, "zorder": 5, "label": "paper (quoted)"}


def table_dots(points, summary, title: str = "", level: float = 0.95):
    """Tables 1-3 as a dot chart: one panel per metric, configurations above and contrasts (A - B) below;
    each seed a point, the mean with its ``level`` t-interval, the paper's value as a red diamond.

    ``points`` / ``summary``: the frames of :func:`equss.paper.tables.dots`."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D

    _sns()
    pts, summ = _frame(points), _frame(summary)
    panels = [p for p in ("configurations", "contrasts") if (summ["panel"] == p).any()]
    metrics = list(dict.fromkeys(summ["metric"]))
    sizes = [summ[summ["panel"] == p]["label"].nunique() for p in panels]
    fig, axes = plt.subplots(len(panels), len(metrics), figsize=(3.6 * len(metrics) + 2.2, 0.42 * sum(sizes) + 2.4),
                             squeeze=False, gridspec_kw={"height_ratios": sizes}, sharey="row")
    colour = "#1f77b4"
    for i, panel in enumerate(panels):
        labels = list(dict.fromkeys(summ[summ["panel"] == panel]["label"]))
        ypos = {lab: k for k, lab in enumerate(labels)}
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            s = summ[(summ["panel"] == panel) & (summ["metric"] == metric)]
            p = pts[(pts["panel"] == panel) & (pts["metric"] == metric)]
            if panel == "contrasts":
                ax.axvline(0, color="0.4", linewidth=1)
            seeds = sorted(p["seed"].unique())
            jitter = {sd: (k - (len(seeds) - 1) / 2) * 0.12 for k, sd in enumerate(seeds)}
            ax.scatter(p["value"], [ypos[lab] + jitter[sd] for lab, sd in zip(p["label"], p["seed"])],
                       s=18, color=colour, alpha=0.55, zorder=3)
            for _, r in s.iterrows():
                y = ypos[r["label"]]
                if np.isfinite(r["low"]):
                    ax.errorbar(r["mean"], y, xerr=[[r["mean"] - r["low"]], [r["high"] - r["mean"]]], fmt="none",
                                ecolor="black", elinewidth=1.4, capsize=4, zorder=4)
                if np.isfinite(r["mean"]):
                    ax.plot(r["mean"], y, "|", color="black", markersize=14, markeredgewidth=2.2, zorder=4)
                if np.isfinite(r["paper"]):
                    ax.scatter(r["paper"], y, **{k: v for k, v in PAPER.items() if k != "label"})
            ax.set_yticks(range(len(labels)), labels)
            ax.set_ylim(len(labels) - 0.5, -0.5)
            ax.set(xlabel="points (A − B)" if panel == "contrasts" else "%", ylabel="")
            if i == 0:
                ax.set_title(metric)
    handles = [Line2D([], [], marker="o", linestyle="", color=colour, alpha=0.55, label="one seed"),
               Line2D([], [], marker="|", color="black", markersize=12, markeredgewidth=2,
                      label=f"mean, {level:.0%} t-interval over seeds"),
               Line2D([], [], marker=PAPER["marker"], linestyle="", color=PAPER["color"], label=PAPER["label"])]
    fig.legend(handles=handles, loc="upper center", ncol=3, frameon=False, bbox_to_anchor=(0.5, 1.0))
    if title:
        fig.suptitle(title, y=1.05)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig
