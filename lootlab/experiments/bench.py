"""One variant under one schedule, saved as a run directory: what ``lootlab bench`` calls.

The load generator is generic (it drives a client factory); naming a variant, routing it
through a delaying proxy and keeping the result as a run ``lootlab compare`` reads are this
layer's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..loadgen.limits import check_limit
from ..loadgen.results import LoadResult
from ..loadgen.runner import run
from ..loadgen.scenario import make_schedule
from ..loadgen.units import plural
from .comparison import save_run


@dataclass
class Bench:
    """A finished bench run: the result, where it was saved, and a note for the reader
    (conditions that did not apply), '' when none."""

    result: LoadResult
    saved: Path
    note: str = ""


def bench_network(rtt_ms: float | None, jitter_ms: float | None,
                  bandwidth_mbit: float | None) -> Any:
    """The ``Network`` the options ask for, None when none was given."""
    if (rtt_ms, jitter_ms, bandwidth_mbit) == (None, None, None):
        return None
    from ..conditions.network import Network

    return Network(rtt_ms=rtt_ms or 0.0, jitter_ms=jitter_ms or 0.0,
                   bandwidth_mbit=bandwidth_mbit)


def bench(variant: str, out: str | Path, *, rate: float | None = None,
          closed: int | None = None, schedule: str = "constant", duration: float = 10.0,
          processes: int = 1, concurrency: int = 1, warmup: float = 1.0,
          think_time: float = 0.0, factor: float = 10.0, seed: int = 0,
          spin_us: float | None = None, cpu_limit: float | None = None,
          rtt_ms: float | None = None, jitter_ms: float | None = None,
          bandwidth_mbit: float | None = None, progress: bool = True) -> Bench:
    """Load ``variant`` with the schedule asked (open loop unless ``closed``), under the
    conditions asked, and save the result as a run directory at ``out``.  Bad values fail
    in one line before any work."""
    from ..targets import client_factory
    from ..variants import get

    cpu_limit = check_limit(cpu_limit)
    network = bench_network(rtt_ms, jitter_ms, bandwidth_mbit)
    note = ""
    if network is not None and not get(variant).remote:
        note = (f"{variant} is local: it crosses no network, so --rtt-ms, --jitter-ms and "
                f"--bandwidth-mbit do not apply to it")
        network = None
    sched = make_schedule(schedule, rate=rate, duration=duration, closed=closed,
                          think_time=think_time, factor=factor, seed=seed)
    result = run(client_factory(variant), sched, processes=processes, concurrency=concurrency,
                 warmup=warmup, spin_us=spin_us, progress=progress, network=network,
                 cpu_limit=cpu_limit, label=variant)
    params = {"variant": variant, "rate": rate, "closed": closed, "schedule": schedule,
              "duration": duration, "processes": processes, "concurrency": concurrency,
              "warmup": warmup, "think_time": think_time, "factor": factor, "seed": seed,
              "spin_us": spin_us, "cpu_limit": cpu_limit, "rtt_ms": rtt_ms,
              "jitter_ms": jitter_ms, "bandwidth_mbit": bandwidth_mbit}
    what = (f"lootlab bench: {variant}, {result.schedule.get('label')}, "
            f"{plural(processes, 'process')} x {plural(concurrency, 'sender')}, "
            f"warm-up {warmup:g} s")
    return Bench(result, save_run(out, {variant: result}, what=what, params=params), note)
