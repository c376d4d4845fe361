"""``lootlab --help`` starts fast because it imports no heavy module, and the command list is
exactly the registry.  Not timed here (the machines are noisy): ``python -m
lootlab.benchmarks.startup`` measures the time; this checks the cause."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from lootlab.cli import COMMANDS, main

HEAVY = ("lootlab.report", "nbformat", "papermill", "matplotlib", "grpc", "pandas", "numpy",
         "jsonschema")

_PROBE = """
import sys
from lootlab.cli import main
try:
    main(sys.argv[1:], prog_name="lootlab")
except SystemExit:
    pass
print("MODULES", " ".join(sorted(sys.modules)))
"""


def _imported(*args: str) -> set[str]:
    """Modules a fresh interpreter holds after ``lootlab ARGS``."""
    out = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("MODULES "))
    return set(line.split()[1:])


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["bench", "--help"],
                                  ["report", "--help"], ["world", "--help"]])
def test_help_imports_nothing_heavy(args):
    assert _heavy(_imported(*args)) == []


def test_lootlab_lists_exactly_the_registered_commands():
    names = [name for name, _ in COMMANDS]
    assert names == sorted(names)
    ctx = click.Context(main)
    assert main.list_commands(ctx) == names
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0, res.output
    section = res.output.split("Commands:\n", 1)[1].splitlines()
    listed = [line.split()[0] for line in section if line.startswith("  ") and line[2] != " "]
    assert listed == names


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
def test_every_registered_command_has_working_help(name):
    res = CliRunner().invoke(main, [name, "--help"])
    assert res.exit_code == 0, res.output
    assert f"Usage: main {name}" in res.output or f"{name} [OPTIONS]" in res.output
    command = main.get_command(click.Context(main), name)
    assert isinstance(command, click.Command) and command.name == name


def test_every_subcommand_of_a_group_has_working_help():
    for name, _ in COMMANDS:
        command = main.get_command(click.Context(main), name)
        for sub in getattr(command, "commands", {}):
            res = CliRunner().invoke(main, [name, sub, "--help"])
            assert res.exit_code == 0, (name, sub, res.output)


def test_an_unknown_command_is_a_usage_error():
    res = CliRunner().invoke(main, ["no-such-command"])
    assert res.exit_code == 2 and "No such command" in res.output


def test_report_sizes_match_the_experiments_layer():
    from lootlab.cli.report import SIZES
    from lootlab.experiments.sizes import SIZES as EXPERIMENT_SIZES
    assert tuple(SIZES) == tuple(EXPERIMENT_SIZES)


def test_the_startup_benchmark_runs_and_is_in_the_all_benchmarks_runner():
    from lootlab.benchmarks.__main__ import BENCHMARKS
    from lootlab.benchmarks.startup import main as startup

    assert "startup" in BENCHMARKS
    res = CliRunner().invoke(startup, ["--runs", "1"])
    assert res.exit_code == 0, res.output
    assert "lootlab --help" in res.output and "0.3 s target" in res.output


STANDALONE = ["lootlab.s3local", "lootlab.remote.wrk", "lootlab.workload",
              "lootlab.benchmarks.index_peers", "lootlab.benchmarks.rebuild",
              "lootlab.benchmarks.loadgen", "lootlab.benchmarks.variants",
              "lootlab.benchmarks.costs", "lootlab.benchmarks.startup",
              "lootlab.benchmarks.anchor", "lootlab.benchmarks.encode",
              "lootlab.benchmarks.server", "lootlab.benchmarks.cppserver",
              "lootlab.benchmarks.cpulimit", "lootlab.benchmarks.conditions"]


def test_the_all_benchmarks_runner_runs_exactly_the_shipped_benchmarks():
    from lootlab.benchmarks.__main__ import BENCHMARKS
    shipped = [m for m in STANDALONE if m.startswith("lootlab.benchmarks.")]
    assert sorted(f"lootlab.benchmarks.{name}" for name in BENCHMARKS) == sorted(shipped)


@pytest.mark.parametrize("module", STANDALONE)
def test_every_python_m_entry_point_is_a_click_command_with_help(module):
    import importlib
    main_ = importlib.import_module(module).main
    assert isinstance(main_, click.Command), module
    for flag in ("--help", "-h"):
        res = CliRunner().invoke(main_, [flag], prog_name=f"python -m {module}")
        assert res.exit_code == 0 and f"python -m {module}" in res.output, res.output


def test_a_python_m_entry_point_reports_errors_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lootlab.remote.wrk", "--index",
                           str(tmp_path / "missing.idx")], capture_output=True, text=True,
                          timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("lootlab.remote.wrk: error: "), proc.stderr
