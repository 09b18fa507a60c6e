"""A notebook run (``equss reproduce``) that fails or is interrupted is recorded, exits non-zero with one line, and is
never counted as finished (issue 21, item 3); bad ``--set`` values stop before any kernel starts.

Runs the real papermill runner (``equss.paper.notebooks``) on small notebooks written here.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("papermill")

from equss import cli  # noqa: E402
from equss.paper import notebooks  # noqa: E402

RUNNER = ("import sys; from pathlib import Path; import equss.paper.notebooks as n; from equss import cli; "
          "n.NOTEBOOK_DIR = Path(sys.argv[1]); sys.exit(cli.main(['reproduce'] + sys.argv[2:]))")


def write_notebook(folder: Path, name: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('scale = "smoke"\nresults_dir = None\ndevice = "auto"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body), nbformat.v4.new_code_cell("x = 1")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def runner(folder: Path, *argv, **kw):
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(folder), *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def executed(results: Path, name: str) -> dict:
    return json.loads((results / "notebooks" / f"{name}.ipynb").read_text())


@pytest.mark.slow
def test_failing_cell_is_recorded_and_exits_1(tmp_path):
    nbs, results = tmp_path / "nbs", tmp_path / "results"
    write_notebook(nbs, "boom", "raise ValueError('no table for you')")
    proc = runner(nbs, "boom", "--scale", "paper", "--results", results, "--no-progress")
    out, err = proc.communicate(timeout=300)
    lines = [ln for ln in err.splitlines() if ln.startswith("equss: error")]
    assert proc.returncode == 1 and len(lines) == 1 and "failed" in lines[0] and "ValueError" in lines[0], err
    nb = executed(results, "boom")
    assert notebooks.run_state(nb) == "failed"
    assert nb["metadata"]["equss"]["status"] == "failed" and "no table for you" in nb["metadata"]["equss"]["error"]


@pytest.mark.slow
def test_ctrl_c_is_recorded_as_interrupted_and_exits_130(tmp_path):
    nbs, results = tmp_path / "nbs", tmp_path / "results"
    started = tmp_path / "started"
    write_notebook(nbs, "slow", f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(120)")
    proc = runner(nbs, "slow", "--scale", "paper", "--results", results, "--no-progress")
    deadline = time.time() + 120
    while not started.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert started.exists(), proc.communicate(timeout=30)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
    out, err = proc.communicate(timeout=120)
    lines = [ln for ln in err.splitlines() if ln.startswith("equss: error")]
    assert proc.returncode == 130 and len(lines) == 1 and "interrupted" in lines[0], err
    assert "Traceback" not in err, err
    nb = executed(results, "slow")
    assert notebooks.run_state(nb) == "interrupted"


def test_finished_run_is_stamped_and_only_that_counts(tmp_path, monkeypatch):
    nbs, results = tmp_path / "nbs", tmp_path / "results"
    write_notebook(nbs, "fine", "y = 2")
    monkeypatch.setattr(notebooks, "NOTEBOOK_DIR", nbs)
    dst = notebooks.execute("fine", "paper", results=str(results), progress=False)
    nb = json.loads(dst.read_text())
    assert notebooks.run_state(nb) == "finished" and nb["metadata"]["equss"]["git_commit"]
    # opening it changes nothing: the installed kernel's spec, no jupytext pairing, nbformat's layout,
    # and no machine path (results_dir is passed relative to notebooks/, the data root as EQUSS_DATA)
    text = dst.read_text()
    assert nb["metadata"]["kernelspec"] == notebooks.installed_kernelspec() and "jupytext" not in nb["metadata"]
    assert nbformat.writes(nbformat.reads(text, as_version=4)) + "\n" == text
    assert str(results) not in text and str(Path.cwd()) not in text and str(notebooks.NOTEBOOK_DIR.parent) not in text
    # the same cells without the runner's stamp (an older runner, or a copy saved by hand): not finished
    del nb["metadata"]["equss"]
    assert notebooks.run_state(nb) == "unstamped"
    nb["cells"][1]["outputs"] = [{"output_type": "error", "ename": "KeyboardInterrupt", "evalue": "", "traceback": []}]
    assert notebooks.run_state(nb) == "failed"


@pytest.mark.parametrize("setting, message", [("train.lr=-1", "train.lr must be > 0"),
                                              ("train.nope=3", "nope"), ("lr=3", "section.key=value")])
def test_bad_set_values_are_one_line_before_any_kernel(setting, message, tmp_path, capsys, monkeypatch):
    def no_kernel(*a, **kw):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(notebooks, "execute", no_kernel)
    assert cli.main(["reproduce", "table1", "--scale", "smoke", "--set", setting]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("equss: error: ") and message in err[0], err
