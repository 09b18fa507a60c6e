"""The figures and dot charts redrawn from a results folder's CSVs, without training or a checkpoint.

``python -m equss.paper.preview results/proxy results/proxy/figures_preview`` draws, with the same
:mod:`equss.paper.plots` functions the notebooks call, every figure whose numbers the CSVs (and the
records' evaluation files) hold: Tables 1-3 as dot charts, Fig. 2, Fig. 4 (without panel (b): the
per-class codeword counts need the checkpoint), Fig. 6 (with Table 2a's STEGO rows of the same seeds as
its baseline) and the learning curves.  Fig. 5 needs the checkpoints and is not drawn.  Used to look at
the figures of a committed results folder drawn by the current code before the folder is regenerated.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _rows(path: Path) -> list[dict]:
    import pandas as pd

    return pd.read_csv(path).to_dict("records")


def draw(results_dir, out_dir) -> list[Path]:
    """Draw what ``results_dir``'s CSVs allow into ``out_dir``; returns the PNGs written."""
    from equss.paper import figures, plots, quoted, tables

    res, out = Path(results_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    scale = res.name

    def save(fig, name):
        import matplotlib.pyplot as plt

        plots.save(fig, out / name)
        plt.close(fig)
        written.append(out / name)

    titles = {"table1": "Table 1", "table2": "Table 2", "table3": "Table 3"}
    for name, title in titles.items():
        if (res / f"{name}.csv").is_file():
            rows = _rows(res / f"{name}.csv")
            group = "table" if name == "table2" else None
            save(plots.table_dots(*tables.dots(rows, tables.CONTRASTS[name], group=group),
                                  title=f"{title} ({scale}) beside the paper"), f"{name}.png")
    if (res / "fig2.csv").is_file():
        save(plots.dimension_curves(_rows(res / "fig2.csv"), title=f"Figure 2 ({scale}): accuracy vs dimension"),
             "fig2.png")
    if (res / "fig4.csv").is_file():
        f4 = figures.fig4_data(res)
        save(plots.entropy_panels(f4["entropy"], None, f4["per_class"], f4["dist"], f4["class_names"], f4["rho"],
                                  paper_bits=quoted.ENTROPY_BITS, title=f"Figure 4 ({scale})"), "fig4.png")
    if (res / "fig6.csv").is_file():
        rows = _rows(res / "fig6.csv")
        seeds = {r["seed"] for r in rows}
        base = [r for r in (_rows(res / "table2.csv") if (res / "table2.csv").is_file() else [])
                if r.get("method") == "STEGO" and r.get("table") == "2a" and r.get("source") == "measured"
                and r.get("seed") in seeds]
        save(plots.mk_grid(rows, baseline=base or None, best=quoted.FIG6, title=f"Figure 6 ({scale}, d_E 512)"),
             "fig6.png")
    if (res / "learning_curves.csv").is_file():
        doc = json.loads((res / "learning_curves.json").read_text()) if (res / "learning_curves.json").is_file() else {}
        save(plots.learning_curves(_rows(res / "learning_curves.csv"), doc.get("chosen"),
                                   title=f"Learning curves ({scale}); star: the step chosen on validation"),
             "learning_curves.png")
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m equss.paper.preview RESULTS_DIR OUT_DIR")
    for p in draw(sys.argv[1], sys.argv[2]):
        print(p)
