import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data root (EQUSS_DATA); tests that need it skip without it."""
    root = os.environ.get("EQUSS_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("EQUSS_DATA not set to the real data root")
    return Path(root)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep caches of one test session in one temporary folder unless EQUSS_CACHE is set."""
    if not os.environ.get("EQUSS_CACHE"):
        monkeypatch.setenv("EQUSS_CACHE", str(tmp_path_factory.getbasetemp() / "equss-cache"))
