"""``lootlab compare`` of profiles and memory: a bucket whose share moved is changed, the
same profile is within noise, and memory per operation is judged by the ratio rule."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.cli import main
from lootlab.experiments import rundir
from lootlab.experiments.compare_shares import wilson
from lootlab.experiments.comparison import compare_runs

LOOP = ("<module> (workload.py)", "_measured_ops (lootlab/workload.py)")
NUMPY = (*LOOP, "near (lootlab/index.py)", "copyto (numpy/core/multiarray.py)")
SSL = (*LOOP, "near (lootlab/clients.py)", "SSL_read (libssl.so.3)")
SETUP = ("<module> (workload.py)", "import_module (importlib/__init__.py)")


def _run(path, numpy: int, ssl: int, allocs: float, with_memory: bool = True):
    """A run of two parts as notebooks 03 and 04 store them: a py-spy profile of mmap, and
    the memory table."""
    run = rundir.create(path, what="made up")
    flame = run.part("03-flamegraphs")
    flame.put_stacks("py-spy: mmap", {NUMPY: numpy, SSL: ssl, SETUP: 500})
    if with_memory:
        run.part("04-memory").put_rows("memory", [
            {"variant": "mmap", "ops": 1000, "allocs_per_op": allocs, "bytes_per_op": 512.0,
             "peak_heap_MiB": 30.0, "RssAnon_MiB": math.nan}])
    return path


def _row(frame, kind, figure):
    rows = frame[(frame["kind"] == kind) & (frame["figure"] == figure)]
    assert len(rows) == 1, (kind, figure, frame[["kind", "figure"]].values.tolist())
    return rows.iloc[0]


def test_a_profile_whose_bucket_moved_is_changed_and_the_same_one_is_not(tmp_path):
    a = _run(tmp_path / "a", numpy=800, ssl=200, allocs=0.4)
    same = _run(tmp_path / "same", numpy=800, ssl=200, allocs=0.4)
    moved = _run(tmp_path / "moved", numpy=300, ssl=700, allocs=2.1)
    frame = compare_runs(a, same)
    shares = frame[frame["kind"] == "profile"]
    assert set(shares["verdict"]) == {"within noise"}
    numpy = _row(frame, "profile", "share: numpy + libc copies")
    assert numpy["a"] == pytest.approx(0.8)       # set-up samples outside the loop left out
    assert numpy["n_a"] == 1000
    changed = compare_runs(a, moved)
    assert _row(changed, "profile", "share: numpy + libc copies")["verdict"] == "changed"
    assert _row(changed, "profile", "share: TLS/ssl")["ratio"] == pytest.approx(3.5)
    assert _row(changed, "memory", "allocs_per_op")["verdict"] == "changed"
    assert _row(changed, "memory", "bytes_per_op")["verdict"] == "within noise"
    assert not (changed["figure"] == "RssAnon_MiB").any()      # NaN: not measured, not shown


def test_memory_only_in_one_run_says_so(tmp_path):
    a = _run(tmp_path / "a", numpy=800, ssl=200, allocs=0.4)
    b = _run(tmp_path / "b", numpy=800, ssl=200, allocs=0.4, with_memory=False)
    frame = compare_runs(a, b)
    assert set(frame[frame["kind"] == "memory"]["verdict"]) == {"only in A"}


def test_the_cli_prints_profile_and_memory_rows(tmp_path):
    a = _run(tmp_path / "a", numpy=800, ssl=200, allocs=0.4)
    b = _run(tmp_path / "b", numpy=300, ssl=700, allocs=2.1)
    res = CliRunner().invoke(main, ["compare", str(a), str(b)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any("share: numpy + libc copies" in ln and "80.0%" in ln and "changed" in ln
               for ln in lines), res.output
    assert any("allocs_per_op" in ln and "0.400" in ln and "2.100" in ln for ln in lines)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5000), st.integers(1, 5000))
def test_wilson_holds_the_share_and_stays_in_zero_one(k, n):
    k = min(k, n)
    lo, hi = wilson(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    lo2, hi2 = wilson(2 * k, 2 * n)        # the same share from twice the samples
    assert hi2 - lo2 < hi - lo
