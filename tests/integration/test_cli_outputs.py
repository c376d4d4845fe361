"""Every output of the ``lootlab`` command follows one rule: missing parent directories are
created; an output that cannot be written is one line ``lootlab: error: ...`` and exit 1,
and long runs find that out before they start.

Real read-only and full filesystems (a read-only bind mount, a tiny tmpfs: root only) and
a path under a regular file (ENOTDIR, anyone).  The commands run in this process (click's
CliRunner: stdout and stderr apart); the last test runs the installed console script, where
the process boundary is the point."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import _mounts as mounts
import pytest
from click.testing import CliRunner, Result

import lootlab
from lootlab.cli import main
from lootlab.tables import write_table


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


def lootlab_cli(*args: str) -> Result:
    """``lootlab ARGS`` in this process; an exception the CLI lets through fails the test
    with its traceback (it would have been one on the user's terminal)."""
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="lootlab",
                              catch_exceptions=False)


def one_line_error(res: Result, *needles: str) -> str:
    assert res.exit_code == 1, (res.exit_code, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lootlab: error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------- unwritable outputs
def test_world_to_a_read_only_directory_is_one_line(read_only):
    out = read_only / "existing" / "w.parquet"
    one_line_error(lootlab_cli("world", "-n", "500", "--out", out),
                   "Read-only file system", str(read_only / "existing"))


def test_world_on_a_full_disk_is_one_line(tiny_tmpfs):
    res = lootlab_cli("world", "-n", "50000", "--out", tiny_tmpfs / "w.parquet")
    one_line_error(res, "No space left on device")
    assert os.listdir(tiny_tmpfs) == []           # no temporary file left behind


def test_world_under_a_regular_file_is_one_line(a_file):
    one_line_error(lootlab_cli("world", "-n", "500", "--out", a_file / "sub" / "w.parquet"),
                   str(a_file))


def test_build_to_a_read_only_directory_is_one_line(read_only, small_table):
    one_line_error(lootlab_cli("build", small_table, read_only / "existing" / "loot.idx"))


def test_build_under_a_regular_file_is_one_line(a_file, small_table):
    one_line_error(lootlab_cli("build", small_table, a_file / "loot.idx"))


# the runs below would take minutes: each must be refused before it starts.  Each names the
# library function doing the work; the test replaces it with one that fails the test, so a
# check made after the work (or not at all) cannot pass.
LONG_RUNS = {
    "bench": (["bench", "--duration", "600", "--rate", "100", "--warmup", "0"],
              "lootlab.experiments.bench.bench"),
    "profile flame": (["profile", "flame", "--duration", "600"], "lootlab.profiling.flamegraph"),
    "profile gc": (["profile", "gc", "--queries", "100000000"], "lootlab.profiling.gc_pauses"),
    "profile memory": (["profile", "memory", "--queries", "100000000"],
                       "lootlab.profiling.memory"),
    "report": (["report"], "lootlab.report.run_report"),
}


@pytest.fixture
def long_run(request, monkeypatch, tmp_path) -> list[str]:
    """The arguments of the long run ``request.param``, its work made to fail the test."""
    args, work = LONG_RUNS[request.param]

    def started(*_args, **_kwargs):
        pytest.fail(f"{work} started before --out was checked")

    monkeypatch.setattr(work, started)
    monkeypatch.chdir(tmp_path)
    return args


@pytest.mark.parametrize("long_run", list(LONG_RUNS), indirect=True)
def test_long_runs_check_a_read_only_out_before_starting(long_run, read_only):
    res = lootlab_cli(*long_run, "--out", read_only / "existing" / "out")
    one_line_error(res, "cannot write output to", "Read-only file system")


@pytest.mark.parametrize("long_run", ["bench", "profile gc", "report"], indirect=True)
def test_long_runs_check_an_out_under_a_file_before_starting(long_run, a_file):
    one_line_error(lootlab_cli(*long_run, "--out", a_file / "out"),
                   "cannot write output to", str(a_file))


# ---------------------------------------------------------------------- one rule: create parents
def test_every_output_creates_missing_parent_directories(tmp_path, small_table, monkeypatch):
    monkeypatch.chdir(tmp_path)
    world = tmp_path / "a" / "b" / "w.parquet"
    res = lootlab_cli("world", "-n", "500", "--out", world)
    assert res.exit_code == 0, res.output
    assert world.is_file()
    index = tmp_path / "c" / "d" / "loot.idx"
    res = lootlab_cli("build", small_table, index)
    assert res.exit_code == 0, res.output
    with lootlab.open_index(index) as idx:
        assert len(idx) == 2_000
    results = tmp_path / "e" / "f" / "bench"
    res = lootlab_cli("bench", "--duration", "0.5", "--rate", "50", "--warmup", "0",
                      "--out", results)
    assert res.exit_code == 0, res.output
    assert (results / "manifest.json").is_file()
    assert (results / "bench" / "results" / "mmap" / "trial-0" / "summary.json").is_file()


# ---------------------------------------------------------------------- nothing to measure
@pytest.mark.parametrize("args", [
    ["profile", "flame", "--duration", "0"], ["profile", "flame", "--duration", "-1"],
    ["profile", "flame", "--rate", "0"],
    ["profile", "diff", "-v", "mmap", "-v", "mmap", "--duration", "0"],
    ["profile", "gc", "--queries", "0"], ["profile", "memory", "--queries", "-5"],
    ["bench", "--duration", "0"], ["bench", "--rate", "-1"]])
def test_durations_and_counts_that_measure_nothing_are_usage_errors(args):
    res = lootlab_cli(*args)
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    assert "Invalid value" in res.stderr.strip().splitlines()[-1], res.stderr


def test_a_nan_duration_is_refused_by_the_library_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(lootlab_cli("bench", "--duration", "nan"),
                   "duration must be a positive number of seconds, got nan")


def test_a_bench_that_would_send_less_than_one_request_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = lootlab_cli("bench", "--duration", "0.001", "--rate", "1")
    one_line_error(res, "fewer than one")
    assert "offered" not in res.stdout


def test_flamegraph_library_refuses_a_non_positive_duration():
    from lootlab.profiling import ProfilerError, flamegraph
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ProfilerError, match="duration"):
            flamegraph("mmap", duration=bad)


# ---------------------------------------------------------------------- the real process
def _console_script() -> list[str]:
    """The installed ``lootlab`` script beside this interpreter, else ``python -m lootlab``."""
    found = shutil.which("lootlab", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "lootlab"]


def test_the_console_script_exits_1_with_one_line_and_2_on_a_usage_error(a_file):
    """What no in-process run shows: the real exit status and nothing else on stderr (no
    traceback, no warning printed at interpreter exit)."""
    failed = subprocess.run([*_console_script(), "world", "-n", "10", "--out",
                             str(a_file / "w.parquet")], capture_output=True, text=True,
                            timeout=120, check=False)
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.count("\n") == 1 and failed.stderr.startswith("lootlab: error: ")
    assert str(a_file) in failed.stderr
    usage = subprocess.run([*_console_script(), "bench", "--rate", "-1"], capture_output=True,
                           text=True, timeout=120, check=False)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr, usage.stderr
    assert usage.stderr.strip().splitlines()[-1].startswith("Error: Invalid value for '--rate'")
