"""notebooks/demo.ipynb: executed at its defaults (the shipped camvid-equss model on two CamVid test
images at smoke size) it shows the overlays and the codeword explorer (two inline figures and the
widget); without images it stops at its first code cell with one line; JupyterLab shows its figure in
headless Chromium (skipped without chromium + chromedriver).  The explorer's maps on a real image's
codes are held to a brute-force count."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import numpy as np
import pytest

from equss.errors import EqussError
from equss.pipeline import shipped

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "demo.ipynb"


def _need_model():
    try:
        shipped.resolve("camvid-equss")
    except EqussError:
        pytest.skip("models/camvid-equss is not committed yet (python -m equss.paper.ship)")


def _execute(dst: Path, env: dict | None = None) -> tuple[nbformat.NotebookNode, Exception | None]:
    """Run the notebook as Run All does (stopping at the first failing cell); the executed copy goes to dst."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(NOTEBOOK, as_version=4)
    old = dict(os.environ)
    os.environ.update(env or {})
    failure = None
    try:
        # nbclient's reply wait on a cell that opens widgets sometimes returns only at the cell's timeout
        # (jupyter/nbclient#312; nbval and JupyterLab are not affected): the widget cell, which only draws
        # one figure, gets 60 s
        NotebookClient(nb, timeout_func=lambda cell: 60 if ".widget(" in cell.source else 600,
                       kernel_name="python3", shutdown_kernel="immediate",
                       resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    except CellExecutionError as exc:
        failure = exc
    finally:
        os.environ.clear()
        os.environ.update(old)
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)
    return nb, failure


@pytest.fixture(scope="module")
def executed(data_root, tmp_path_factory) -> Path:
    _need_model()
    dst = tmp_path_factory.mktemp("demo") / "notebooks" / "demo.ipynb"
    _, failure = _execute(dst, {"EQUSS_DATA": str(data_root)})
    assert failure is None, str(failure)[-3000:]
    return dst


def test_demo_shows_overlays_and_explorer(executed):
    nb = nbformat.read(executed, as_version=4)
    outputs = [(i, o) for i, c in enumerate(nb.cells) for o in c.get("outputs", [])]
    assert not [o for _, o in outputs if o.output_type == "error"]
    pngs = [i for i, o in outputs if "image/png" in o.get("data", {})]
    src = [nb.cells[i].source for i in pngs]
    assert any("overlay_figure" in s for s in src) and any("explorer.figure" in s for s in src)
    widgets = [i for i, o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets and "explorer.widget" in nb.cells[widgets[-1]].source  # (progress bars are widgets too)


def test_demo_without_images_stops_at_its_first_cell_with_one_line(tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    nb, failure = _execute(tmp_path / "out" / "demo.ipynb", {"EQUSS_DATA": str(empty)})
    assert failure is not None  # the cell fails: Run All, papermill and nbval stop there
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    first = code[1]  # the first cell after the parameters
    text = "".join(o.get("text", "") for o in nb.cells[first].outputs if o.output_type == "stream")
    assert text.count("\n") == 1 and text.startswith("equss: error: no CamVid test images"), text
    assert "`images` parameter" in text and "Traceback" not in text
    assert not [o for o in nb.cells[first].outputs if o.output_type == "error" and o.get("traceback")]
    assert all(c.get("execution_count") is None for c in nb.cells[first + 1:] if c.cell_type == "code")


def test_explorer_maps_match_brute_force(data_root):
    _need_model()
    from equss.paper import demo

    seg = demo.load("camvid-equss", "cpu")
    item = demo.find_images(None, data_root, 1)[0]
    img, truth = demo.load_item(seg, item, 112)
    ex = demo.CodewordExplorer(seg, img, resolution=112, truth=truth)
    M, h, w = ex.codes.shape
    assert M == seg.cfg.model.num_codebooks and (h, w) == (-(-ex.size[0] // 14), -(-ex.size[1] // 14))
    y, x, k = ex.size[0] - 5, ex.size[1] // 3, M // 2
    got = ex.maps(y, x, k, codebook=3, source="ground truth")
    cy, cx = got["cell"]
    assert (cy, cx) == (y * h // ex.size[0], x * w // ex.size[1])
    for i in range(h):
        for j in range(w):
            same = sum(int(ex.codes[b, i, j] == ex.codes[b, cy, cx]) for b in range(M))
            assert got["shared"][i, j] == same and got["region"][i, j] == (same >= k)
    np.testing.assert_array_equal(got["code_map"], ex.codes[3])
    # each cell's class is the most frequent ground-truth class of its pixels
    gt = ex.class_maps["ground truth"]
    rows = np.arange(ex.size[0]) * h // ex.size[0]
    cols = np.arange(ex.size[1]) * w // ex.size[1]
    for i, j in [(0, 0), (h - 1, w - 1), (h // 2, w // 2)]:
        pix = gt[np.ix_(rows == i, cols == j)].ravel()
        pix = pix[pix >= 0]
        if pix.size:
            counts = np.bincount(pix, minlength=len(seg.class_names))
            assert counts[got["classes"][i, j]] == counts.max()
        else:
            assert got["classes"][i, j] == -1


def test_jupyterlab_shows_the_demo_figure(executed, tmp_path):
    from test_jupyterlab_browser import _need_browser, figure_shown, serve

    _need_browser()
    shot = Path(os.environ.get("EQUSS_SCREENSHOT_DIR") or tmp_path) / "jupyterlab_demo.png"
    with serve(executed.parent.parent, tmp_path) as (url, token):
        figure_shown(url, token, "notebooks/demo.ipynb", shot)
