"""Tables of results: one row per run (unsupervised and linear Acc / mIoU), CSV + Markdown
files, the provenance beside them, and a DataFrame for notebook display."""
from __future__ import annotations

from pathlib import Path

from equss.io import write_json
from equss.provenance import provenance


def row(name: str, result: dict, source: str = "measured") -> dict:
    """One table row: unsupervised and linear Acc / mIoU."""
    return {
        "method": name, "source": source,
        "unsup_acc": round(result["cluster"]["Accuracy"], 1), "unsup_miou": round(result["cluster"]["mIoU"], 1),
        "linear_acc": round(result["linear"]["Accuracy"], 1), "linear_miou": round(result["linear"]["mIoU"], 1),
    }


def save_table(rows: list[dict], out_dir: Path, name: str, caption: str = "") -> Path:
    """Write ``name.csv`` and ``name.md`` (a Markdown table)."""
    import csv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = list(rows[0].keys())
    with open(out_dir / f"{name}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    fmt = lambda v: "" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ([caption, ""] if caption else []) + ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    (out_dir / f"{name}.md").write_text("\n".join(lines) + "\n")
    return out_dir / f"{name}.csv"


def save_provenance(out_dir: Path, name: str, scale: str, runs: dict, **extra) -> Path:
    """``name.provenance.json``: the environment plus each run's own provenance."""
    runs_prov = {k: (v.get("provenance") if isinstance(v, dict) else v) for k, v in runs.items()}
    return write_json(Path(out_dir) / f"{name}.provenance.json",
                      provenance(scale=scale, artefact=name, runs=runs_prov, **extra))


def show(rows: list[dict]):
    """A pandas DataFrame of table rows (for notebook display)."""
    import pandas as pd

    return pd.DataFrame(rows)
