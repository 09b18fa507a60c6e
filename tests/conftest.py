import os
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data root (EQUSS_DATA); tests that need it skip without it."""
    root = os.environ.get("EQUSS_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("EQUSS_DATA not set to the real data root")
    return Path(root)


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
