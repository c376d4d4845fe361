"""Run every shipped benchmark in turn: ``python -m lootlab.benchmarks [name ...]``.

Each benchmark runs in its own process (so one's imports, caches and threads do not
colour the next) and prints its own table, between two lines that give the date and the
load average before and after it: a figure quoted from a shared machine needs both.
``anchor`` needs ``wrk2`` on PATH and says "skipped" (exit 0) without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

BENCHMARKS = ["index_peers", "rebuild", "variants", "encode", "server", "cppserver", "loadgen",
              "costs", "startup", "anchor", "cpulimit", "conditions"]


def stamp() -> str:
    """The date (UTC) and the 1/5/15-minute load averages with the core count: what else
    the machine was doing while the figures were taken."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{when}, load average {load} on {os.cpu_count()} cores"


def main(argv: list[str]) -> int:
    names = argv or BENCHMARKS
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"\n=== python -m lootlab.benchmarks.{name}: {stamp()} ===", flush=True)
        started = time.perf_counter()
        if subprocess.run([sys.executable, "-m", f"lootlab.benchmarks.{name}"]).returncode:
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - started:.0f} s; {stamp()} ===", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
