"""Cold start and swaps: a cold page cache costs major faults, a warm or prefaulted one
none; every combination is measured; and ``open_index(prefault=)`` brings a generation in
before it serves, at open and at a swap."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

from lootlab.build import build_index
from lootlab.experiments.cold_start import COLUMNS, cold_start
from lootlab.experiments.cold_start_pagecache import drop_file_cache, read_ahead_kb, resident_share
from lootlab.index import open_index
from lootlab.world import generate_world


def _records_beyond_read_ahead() -> int:
    """Enough records that the file is 4 read-ahead windows long: one fault then cannot
    bring it all in, so "resident after open" tells prefaulting from not."""
    ra = read_ahead_kb(Path(__file__)) or 128
    return max(30_000, 4 * ra * 1024 // 24)


def _fresh_cold_index(path, seed=3, generation=None):
    build_index(generate_world(_records_beyond_read_ahead(), seed), path,
                generation=generation)
    return drop_file_cache(path)


def test_populate_brings_the_whole_generation_in_at_open_and_at_a_swap(tmp_path):
    path = tmp_path / "loot.idx"
    if _fresh_cold_index(path) > 0.05:
        pytest.skip("posix_fadvise(DONTNEED) does not evict here")
    with open_index(path, refresh_interval=None) as plain:
        assert plain.prefault == "none"
        assert resident_share(path) < 0.9      # opening reads the header and tables, not all
    drop_file_cache(path)
    with open_index(path, refresh_interval=None, prefault="populate") as idx:
        assert resident_share(path) == 1.0
        old = os.stat(path).st_ino
        _fresh_cold_index(path, seed=4, generation=idx.generation + 1)
        assert os.stat(path).st_ino != old and resident_share(path) < 0.05
        idx.refresh()
        assert resident_share(path) == 1.0      # before the new generation's first query


def test_willneed_starts_read_ahead_and_bad_values_are_refused(tmp_path):
    path = tmp_path / "loot.idx"
    if _fresh_cold_index(path) > 0.05:
        pytest.skip("posix_fadvise(DONTNEED) does not evict here")
    with open_index(path, prefault="willneed"):
        deadline = time.monotonic() + 30
        while resident_share(path) < 1.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert resident_share(path) == 1.0
    with pytest.raises(ValueError, match="prefault must be one of"):
        open_index(path, prefault="everything")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return cold_start(30_000, window=0.2, workdir=tmp_path_factory.mktemp("cold-start"))


def test_every_combination_has_a_row_with_a_positive_first_answer(run):
    rows = run.rows
    assert list(rows.columns) == COLUMNS
    combos = set(zip(rows["prefault"], rows["cache"], rows["after"]))
    assert combos == set(itertools.product(("none", "populate", "willneed"), ("cold", "warm"),
                                           ("start", "swap")))
    assert (rows["first_answer_s"] > 0).all()
    assert (rows["first_answer_s"] >= rows["open_s"]).all()
    assert (rows["queries_count"] > 0).all()
    assert (rows["p99_ms"] >= rows["p50_ms"]).all()
    starts = rows[rows["after"] == "start"]
    assert (starts["process_start_s"] > 0).all()
    assert rows[rows["after"] == "swap"]["process_start_s"].isna().all()
    assert run.meta["loadavg_before"] and "drop_caches" in run.meta


def test_a_cold_cache_costs_major_faults_and_a_warm_or_prefaulted_one_none(run):
    rows = run.rows.set_index(["prefault", "cache", "after"])
    faults = rows["majflt_open_count"] + rows["majflt_count"]
    for after in ("start", "swap"):
        cold = rows.loc[("none", "cold", after)]
        if cold["resident_share_before"] > 0.05:
            pytest.skip("posix_fadvise(DONTNEED) does not evict here")
        assert faults[("none", "cold", after)] > 0
        # ~0 per query: a stray fault (a library page evicted under memory pressure from the
        # other processes on a shared machine) must not fail the test, a cold index would
        for prefault in ("none", "populate", "willneed"):
            assert rows.loc[(prefault, "warm", after), "majflt_per_query"] < 1e-3
        # populated before serving: the queries themselves do not wait for the disk
        assert rows.loc[("populate", "cold", after), "majflt_per_query"] < 1e-3
    assert run.meta["fadvise_drop_worked"] is True
