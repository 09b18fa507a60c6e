"""The notebooks are the source: each ``notebooks/NAME.ipynb`` is paired with ``NAME.py``
(jupytext percent format), the two hold the same cells, and the ``.ipynb`` carries no
outputs (nbstripout).  Also: figures render inline (no forced Agg backend)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NB_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
FIGURES = [p for p in NOTEBOOKS if p.stem.startswith("fig")]


def test_every_notebook_has_its_pair():
    assert len(NOTEBOOKS) == 11  # the paper's nine, the loss-shift tuning and the demo
    assert sorted(p.stem for p in NB_DIR.glob("*.py")) == [p.stem for p in NOTEBOOKS]
    assert not (NB_DIR.parent / "tools" / "make_notebooks.py").exists()  # the notebooks are the source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_in_sync(path):
    jupytext = pytest.importorskip("jupytext")
    nb = nbformat.read(path, as_version=4)
    script = jupytext.read(path.with_suffix(".py"))
    cells = lambda n: [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in n.cells]  # noqa: E731
    assert cells(script) == cells(nb), f"{path.name} and {path.stem}.py differ: run `make nb-sync`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs kept; run `make nb-sync`"
    assert nb.cells[1].metadata.get("tags") == ["parameters"]  # papermill's parameters cell


def test_nbstripout_verify():
    pytest.importorskip("nbstripout")
    res = subprocess.run([sys.executable, "-m", "nbstripout", "--verify", *map(str, NOTEBOOKS)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("path", FIGURES, ids=lambda p: p.stem)
def test_figures_render_inline(path):
    src = path.with_suffix(".py").read_text()
    assert 'use("Agg")' not in src and "# %matplotlib inline" in src
    assert "plots." in src  # plotting lives in equss.paper.plots
