"""Fixtures for the profiling tests: a small index of their own, in a temp data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

import lootlab


@pytest.fixture(scope="module")
def small_index(tmp_path_factory) -> Path:
    """A 20 k-record index (about 0.5 MB), built once per test module."""
    d = tmp_path_factory.mktemp("profiling-index")
    path = d / "loot.idx"
    lootlab.build_index(lootlab.generate_world(n=20_000, seed=3), path)
    return path


@pytest.fixture
def data_env(tmp_path, monkeypatch) -> Path:
    """LOOTLAB_DATA in a temp dir; child processes inherit it."""
    monkeypatch.setenv("LOOTLAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data"
