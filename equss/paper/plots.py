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


def dimension_curves(rows, title: str = "", metrics=(("unsup_acc", "unsupervised (cluster probe) Acc"),
                                                       ("linear_acc", "linear probe Acc"))):
    """Fig. 2: accuracy against head dimension, one line per method (point plot; the
    dimensions are powers of two, evenly spaced = a log2 axis; seed spread as error bars)."""
    import matplotlib.pyplot as plt

    sns, df = _sns(), _frame(rows)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, (key, label) in zip(axes[0], metrics):
        sns.pointplot(data=df, x="dim", y=key, hue="method", errorbar="sd", dodge=0.2, markers="o", ax=ax,
                      legend=ax is axes[0][0])
        ax.set(xlabel="head dimension", ylabel="%", title=label)
    if title:
        fig.suptitle(title)
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


def mk_grid(rows, value: str = "unsup_miou", title: str = ""):
    """Fig. 6: ``value`` over codebooks M (rows) x codewords K (columns), annotated; the
    mean over seeds where rows repeat a cell."""
    df = _frame(rows)
    grid = df.pivot_table(index="M", columns="K", values=value, aggfunc="mean")
    ax = heatmap(grid.values, grid.index, grid.columns, cbar_label="unsupervised mIoU (%)",
                 xlabel="K (codewords per codebook)", ylabel="M (codebooks)", title=title)
    ax.figure.tight_layout()
    return ax.figure


def entropy_panels(entropy_rows, freq, iou_rows, dist, class_names, pearson_r: float, title: str = ""):
    """Fig. 4: (a) per-class entropy, STEGO vs EQUSS (grouped bars; error bars over seeds);
    (b) codeword frequency per codebook; (c) per-class IoU against EQUSS entropy;
    (d) inter-class codeword distance (Eq. 9), annotated.

    ``entropy_rows``: rows with ``class``, ``method``, ``entropy_bits`` (a ``seed`` column gives error bars); ``iou_rows``: rows with
    ``class``, ``entropy_bits``, ``iou``; ``freq`` (M, K) counts; ``dist`` (C, C)."""
    import matplotlib.pyplot as plt
    import numpy as np

    sns = _sns()
    ent, pts = _frame(entropy_rows), _frame(iou_rows)
    fig, ax = plt.subplots(2, 2, figsize=(14, 11))
    averages = ent.groupby("method", sort=False)["entropy_bits"].mean()
    ent = ent.assign(method=ent["method"].map(lambda m: f"{m} (avg {averages[m]:.0f} bits)"))
    sns.barplot(data=ent, x="class", y="entropy_bits", hue="method", errorbar="sd", ax=ax[0, 0])
    ax[0, 0].tick_params(axis="x", rotation=60)
    ax[0, 0].set(xlabel="", ylabel="bits", title="(a) per-class entropy")
    share = freq / np.maximum(freq.sum(1, keepdims=True), 1)
    sns.heatmap(share, cmap="viridis", ax=ax[0, 1], xticklabels=max(1, share.shape[1] // 8),
                yticklabels=max(1, share.shape[0] // 8), cbar_kws={"label": "share of patches"})
    ax[0, 1].set(xlabel="codeword", ylabel="codebook", title="(b) codeword frequency per codebook")
    sns.scatterplot(data=pts, x="entropy_bits", y="iou", ax=ax[1, 0])
    for _, p in pts.iterrows():
        ax[1, 0].annotate(p["class"], (p["entropy_bits"], p["iou"]), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax[1, 0].set(xlabel="EQUSS entropy (bits)", ylabel="per-class IoU (%)",
                 title=f"(c) IoU vs entropy, Pearson r = {pearson_r:.2f}")
    heatmap(dist, class_names, class_names, ax=ax[1, 1], annot=len(class_names) <= 15, fmt=".0f", cmap="magma",
            cbar_label="codebooks that differ", title="(d) mean codeword distance (Eq. 9)", annot_kws={"fontsize": 7})
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def qualitative_grid(panels: list[list], titles: list[str]):
    """Fig. 5: one row per image, one column per panel (image, ground truth, predictions)."""
    import matplotlib.pyplot as plt

    n = len(panels)
    fig, ax = plt.subplots(n, len(titles), figsize=(3 * len(titles), 3 * n), squeeze=False)
    for i, row in enumerate(panels):
        for j, (img, t) in enumerate(zip(row, titles)):
            ax[i, j].imshow(img)
            ax[i, j].axis("off")
            if i == 0:
                ax[i, j].set_title(t)
    fig.tight_layout()
    return fig


def learning_curves(rows, chosen: dict | None = None, title: str = "",
                    metrics=(("val_unsup_miou", "validation cluster mIoU"), ("val_linear_miou", "validation linear mIoU"))):
    """Learning curves: validation cluster and linear mIoU against the step, one colour per
    method, one line style per seed; a dotted vertical line at each method's chosen step."""
    import matplotlib.pyplot as plt

    sns, df = _sns(), _frame(rows)
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    palette = dict(zip(df["method"].unique(), sns.color_palette(n_colors=df["method"].nunique())))
    for ax, (key, label) in zip(axes[0], metrics):
        sns.lineplot(data=df, x="step", y=key, hue="method", style="seed", markers=True, palette=palette, ax=ax,
                     legend=ax is axes[0][0])
        for method, c in (chosen or {}).items():
            ax.axvline(c["step"], color=palette.get(method, "k"), linestyle=":", linewidth=1)
        ax.set(xlabel="training step", ylabel="%", title=label)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
