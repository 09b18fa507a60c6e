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
    """Every test session gets its own cache folder (tests that count backbone calls need
    fresh caches); the converted offline weights are rebuilt once per session (~5 s)."""
    monkeypatch.setenv("EQUSS_CACHE", str(tmp_path_factory.getbasetemp() / "equss-cache"))
