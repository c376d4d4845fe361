"""Shared test configuration.  Keep tests from touching the repo's data/ by default."""

from __future__ import annotations

import os
import tempfile

import pytest

# Matplotlib must never try to open a window in tests.
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session", autouse=True)
def _isolated_data_dir():
    """Point LOOTLAB_DATA at a session temp dir unless a test sets its own."""
    if os.environ.get("LOOTLAB_KEEP_DATA_DIR"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="lootlab-test-data-") as tmp:
        old = os.environ.get("LOOTLAB_DATA")
        os.environ["LOOTLAB_DATA"] = tmp
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("LOOTLAB_DATA", None)
            else:
                os.environ["LOOTLAB_DATA"] = old
