"""Every output of the ``lootlab`` command follows one rule: missing parent directories are
created; an output that cannot be written is one line ``lootlab: error: ...`` and exit 1,
and long runs find that out before they start.

Real read-only and full filesystems (a read-only bind mount, a tiny tmpfs: root only) and
a path under a regular file (ENOTDIR, anyone)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import lootlab
from lootlab.tables import write_table

import _mounts as mounts


@pytest.fixture
def read_only(tmp_path) -> Iterator[Path]:
    """A directory on a read-only bind mount (root writes through chmod, not through this)."""
    d = tmp_path / "ro"
    d.mkdir()
    (d / "existing").mkdir()
    with mounts.read_only(d):
        yield d


@pytest.fixture
def tiny_tmpfs(tmp_path) -> Iterator[Path]:
    with mounts.tiny_tmpfs(tmp_path / "tiny") as mnt:
        yield mnt


@pytest.fixture
def a_file(tmp_path) -> Path:
    f = tmp_path / "regular-file"
    f.write_text("not a directory")
    return f


@pytest.fixture(scope="module")
def small_table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli-out") / "world.parquet"
    write_table(lootlab.generate_world(2_000, seed=1), path)
    return path


def lootlab_cli(*args: str, timeout: float = 120, cwd: Path | None = None
                ) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "lootlab", *args], capture_output=True,
                              text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        pytest.fail(f"lootlab {' '.join(args)} ran for {timeout:g} s instead of refusing at once")
    return proc, time.monotonic() - started


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lootlab: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------- unwritable outputs
def test_world_to_a_read_only_directory_is_one_line(read_only):
    out = read_only / "existing" / "w.parquet"
    one_line_error(lootlab_cli("world", "-n", "500", "--out", str(out))[0],
                   "Read-only file system", str(read_only / "existing"))


def test_world_on_a_full_disk_is_one_line(tiny_tmpfs):
    proc, _ = lootlab_cli("world", "-n", "50000", "--out", str(tiny_tmpfs / "w.parquet"))
    one_line_error(proc, "No space left on device")
    assert os.listdir(tiny_tmpfs) == []           # no temporary file left behind


def test_world_under_a_regular_file_is_one_line(a_file):
    proc, _ = lootlab_cli("world", "-n", "500", "--out", str(a_file / "sub" / "w.parquet"))
    one_line_error(proc, str(a_file))


def test_build_to_a_read_only_directory_is_one_line(read_only, small_table):
    proc, _ = lootlab_cli("build", str(small_table), str(read_only / "existing" / "loot.idx"))
    one_line_error(proc)


def test_build_under_a_regular_file_is_one_line(a_file, small_table):
    one_line_error(lootlab_cli("build", str(small_table), str(a_file / "loot.idx"))[0])


# the runs below would take minutes: each must be refused before it starts
LONG_RUNS = {
    "bench": ["bench", "--duration", "600", "--rate", "100", "--warmup", "0"],
    "profile flame": ["profile", "flame", "--duration", "600"],
    "profile gc": ["profile", "gc", "--queries", "100000000"],
    "profile memory": ["profile", "memory", "--queries", "100000000"],
    "report": ["report"],
}


@pytest.mark.parametrize("name", list(LONG_RUNS))
def test_long_runs_check_a_read_only_out_before_starting(name, read_only, tmp_path):
    proc, _ = lootlab_cli(*LONG_RUNS[name], "--out", str(read_only / "existing" / "out"),
                          timeout=90, cwd=tmp_path)
    one_line_error(proc, "cannot write output to", "Read-only file system")


@pytest.mark.parametrize("name", ["bench", "profile gc", "report"])
def test_long_runs_check_an_out_under_a_file_before_starting(name, a_file, tmp_path):
    proc, _ = lootlab_cli(*LONG_RUNS[name], "--out", str(a_file / "out"), timeout=90,
                          cwd=tmp_path)
    one_line_error(proc, "cannot write output to", str(a_file))


# ---------------------------------------------------------------------- one rule: create parents
def test_every_output_creates_missing_parent_directories(tmp_path, small_table):
    world = tmp_path / "a" / "b" / "w.parquet"
    proc, _ = lootlab_cli("world", "-n", "500", "--out", str(world))
    assert proc.returncode == 0, proc.stderr
    assert world.is_file()
    index = tmp_path / "c" / "d" / "loot.idx"
    proc, _ = lootlab_cli("build", str(small_table), str(index))
    assert proc.returncode == 0, proc.stderr
    assert len(lootlab.open_index(index)) == 2_000
    results = tmp_path / "e" / "f" / "bench"
    proc, _ = lootlab_cli("bench", "--duration", "0.5", "--rate", "50", "--warmup", "0",
                          "--out", str(results), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (results / "run.json").is_file() and (results / "mmap" / "summary.json").is_file()


# ---------------------------------------------------------------------- nothing to measure
@pytest.mark.parametrize("args", [
    ["profile", "flame", "--duration", "0"], ["profile", "flame", "--duration", "-1"],
    ["profile", "flame", "--rate", "0"], ["profile", "diff", "mmap", "mmap", "--duration", "0"],
    ["profile", "gc", "--queries", "0"], ["profile", "memory", "--queries", "-5"],
    ["bench", "--duration", "0"], ["bench", "--rate", "-1"]])
def test_durations_and_counts_that_measure_nothing_are_usage_errors(args):
    proc, _ = lootlab_cli(*args, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Invalid value" in proc.stderr and "Traceback" not in proc.stderr


def test_a_nan_duration_is_refused_by_the_library_in_one_line(tmp_path):
    proc, _ = lootlab_cli("bench", "--duration", "nan", timeout=60, cwd=tmp_path)
    one_line_error(proc, "duration must be a positive number of seconds, got nan")


def test_a_bench_that_would_send_less_than_one_request_is_refused(tmp_path):
    proc, _ = lootlab_cli("bench", "--duration", "0.001", "--rate", "1", timeout=60, cwd=tmp_path)
    one_line_error(proc, "fewer than one")
    assert "offered" not in proc.stdout


def test_flamegraph_library_refuses_a_non_positive_duration():
    from lootlab.profiling import ProfilerError, flamegraph
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ProfilerError, match="duration"):
            flamegraph("mmap", duration=bad)
