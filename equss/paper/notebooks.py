"""Execute a reproduction notebook with papermill: ``python -m equss.paper.notebooks table1_cocostuff --scale proxy``.

The executed copy goes to ``RESULTS/notebooks/NAME.ipynb`` (``RESULTS`` defaults to
``results/<scale>``); the notebook itself writes its tables, figures and provenance to
``RESULTS``.  Notebooks in ``notebooks/`` are kept without outputs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def execute(name: str, scale: str = "proxy", results: str | None = None, data_root: str | None = None,
            device: str = "auto", extra: dict | None = None) -> Path:
    import papermill as pm

    src = NOTEBOOK_DIR / f"{name}.ipynb"
    if not src.is_file():
        raise SystemExit(f"equss: error: no notebook {src}; valid: {', '.join(p.stem for p in sorted(NOTEBOOK_DIR.glob('*.ipynb')))}")
    results_path = Path(results or f"results/{scale}").resolve()
    (results_path / "notebooks").mkdir(parents=True, exist_ok=True)
    params = {"scale": scale, "results_dir": str(results_path), "device": device}
    if data_root:
        params["data_root"] = data_root
    params.update(extra or {})
    dst = results_path / "notebooks" / f"{name}.ipynb"
    pm.execute_notebook(str(src), str(dst), parameters=params, cwd=str(NOTEBOOK_DIR), progress_bar=True,
                        kernel_name="python3")
    return dst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m equss.paper.notebooks", description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="notebook name without .ipynb (e.g. table1_cocostuff)")
    p.add_argument("--scale", default="proxy", choices=["smoke", "proxy", "paper"])
    p.add_argument("--results", help="output folder (default: results/<scale>)")
    p.add_argument("--data-root", help="datasets folder (default: $EQUSS_DATA)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    print(execute(args.name, args.scale, args.results, args.data_root, args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
