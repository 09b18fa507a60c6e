import os
import tempfile
from pathlib import Path

import pytest

from equss.cpus import cap_threads

cap_threads()  # before torch or numpy start their thread pools: no more threads than a CPU quota allows


def run_cli(argv, capsys):
    """``(exit code, the "equss: ..." lines of stderr)`` of ``equss ARGV`` run in this process (the
    shared CLI helper of the tests); a traceback on stderr fails the test."""
    from equss import cli

    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, [ln[ln.index("equss: "):] for ln in err.replace("\r", "\n").splitlines() if "equss: " in ln]


def error_line(capsys, argv) -> str:
    """``equss ARGV`` fails with exit 2 and exactly one ``equss: error:`` line, the last of stderr, and no
    traceback; returns that line."""
    from equss import cli

    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("equss: error: ")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]), err  # one line, the last
    return lines[0]


def one_line(code, err, text, exit_code=2):
    """``run_cli``'s result is exactly one error line containing ``text``, with ``exit_code``."""
    errors = [ln for ln in err if ln.startswith("equss: error: ")]
    assert code == exit_code, (code, err)
    assert len(errors) == 1 and text in errors[0], err


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data root (EQUSS_DATA); tests that need it skip without it."""
    root = os.environ.get("EQUSS_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("EQUSS_DATA not set to the real data root")
    return Path(root)


SMOKE_NOTEBOOKS = ("table1_cocostuff", "fig4_entropy", "learning_curves")


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory, data_root):
    """A smoke-scale results folder made once per test session by executing these notebooks with the
    papermill runner (the real pipeline: trainings, evaluations with and without the CRF, the baseline,
    kept checkpoints, Fig. 4's analysis); shared by the traceability and per-image tests."""
    pytest.importorskip("papermill")
    from equss.paper.notebooks import execute

    out = tmp_path_factory.mktemp("smoke-results")
    for name in SMOKE_NOTEBOOKS:
        execute(name, "smoke", results=str(out), data_root=str(data_root), device="cpu", progress=False)
    return out


def pytest_configure(config):
    """Every test session gets its own cache folder, set before any fixture runs (tests that
    count backbone calls need fresh caches); the offline weights are converted once per
    session (~5 s).  EQUSS_CACHE from the environment is deliberately not used here."""
    os.environ["EQUSS_CACHE"] = tempfile.mkdtemp(prefix="equss-test-cache-")


def pytest_unconfigure(config):
    """Remove the session's cache folder (converted weights and feature caches)."""
    import shutil

    path = os.environ.get("EQUSS_CACHE", "")
    if "equss-test-cache-" in path:
        shutil.rmtree(path, ignore_errors=True)
