"""``python -m lootlab.benchmarks.startup [--runs N]``: how long ``lootlab --help`` takes to
start, against ``python -c "import click"`` on the same machine in the same run.

Target: ``lootlab --help`` within 0.3 s of importing click (the CLI imports its commands'
heavy parts, such as nbformat, pandas or grpc, only when a command runs).  Both run N
times each in fresh processes, interleaved so a burst of load hits both alike; the
medians and their difference are printed with the load average.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click

from ..console import handle_errors

TARGET_S = 0.3


def lootlab_command() -> list[str]:
    """The installed ``lootlab`` script beside this interpreter (what a user types), or
    ``python -m lootlab.cli`` when it is not installed."""
    script = Path(sys.executable).with_name("lootlab")
    if script.exists():
        return [str(script)]
    found = shutil.which("lootlab")
    return [found] if found else [sys.executable, "-m", "lootlab.cli"]


def _seconds(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def measure(runs: int) -> dict[str, float]:
    """Median wall seconds of ``lootlab --help`` and of ``import click`` (after one
    untimed run of each, so neither pays for a cold page cache)."""
    help_argv = [*lootlab_command(), "--help"]
    click_argv = [sys.executable, "-c", "import click"]
    _seconds(help_argv), _seconds(click_argv)
    help_s, click_s = [], []
    for _ in range(runs):
        help_s.append(_seconds(help_argv))
        click_s.append(_seconds(click_argv))
    return {"help": statistics.median(help_s), "click": statistics.median(click_s),
            "help_min": min(help_s), "click_min": min(click_s)}


@click.command(cls=handle_errors("python -m lootlab.benchmarks.startup"))
@click.option("--runs", type=click.IntRange(min=1), default=15, show_default=True,
              help="fresh processes of each command")
def main(runs: int) -> None:
    """Time `lootlab --help` against `python -c "import click"` (target: within 0.3 s).

    Both run RUNS times in fresh processes, interleaved; prints the medians, the
    difference and whether it is within the target."""
    load = os.getloadavg()[0]
    m = measure(runs)
    diff = m["help"] - m["click"]
    click.echo(f"lootlab start-up, {runs} runs each, interleaved; load average {load:.2f}")
    click.echo("")
    rows = [("lootlab --help", m["help"], m["help_min"]),
            ('python -c "import click"', m["click"], m["click_min"])]
    click.echo(f"{'command':32} {'median':>9} {'min':>9}")
    for name, median, fastest in rows:
        click.echo(f"{name:32} {median:8.3f}s {fastest:8.3f}s")
    click.echo(f"{'difference':32} {diff:8.3f}s")
    verdict = "within" if diff <= TARGET_S else "NOT within"
    click.echo(f"\n{verdict} the {TARGET_S:.1f} s target (lootlab --help - import click)")


if __name__ == "__main__":
    main(prog_name="python -m lootlab.benchmarks.startup")
