"""One benchmark run from plain parameters (what ``lootlab bench`` calls)."""

from __future__ import annotations

from pathlib import Path

from . import schedules
from .results import LoadResult
from .runner import run


def make_schedule(kind: str, *, rate: float | None, duration: float,
                  closed: int | None = None, think_time: float = 0.0,
                  factor: float = 10.0, spike_at: float | None = None,
                  spike_length: float | None = None, ramp_from: float | None = None,
                  seed: int = 0):
    """A schedule by name: constant | poisson | ramp | spike, or closed when ``closed``."""
    if closed is not None:
        return schedules.closed(closed, duration, think_time, seed)
    rate = 1_000.0 if rate is None else rate
    if kind == "constant":
        return schedules.constant(rate, duration, seed)
    if kind == "poisson":
        return schedules.poisson(rate, duration, seed)
    if kind == "ramp":
        start = ramp_from if ramp_from is not None else max(1.0, rate / 10)
        return schedules.ramp(start, rate, duration, seed)
    if kind == "spike":
        length = spike_length if spike_length is not None else max(duration / 5, 0.001)
        return schedules.spike(rate, duration, factor=factor, at=spike_at, length=length,
                               seed=seed)
    raise schedules.ScheduleError(f"unknown schedule {kind!r}: use constant, poisson, ramp "
                                  f"or spike")


def bench(variant: str, *, rate: float | None = None, closed: int | None = None,
          schedule: str = "constant", duration: float = 10.0, processes: int = 1,
          concurrency: int = 1, warmup: float = 1.0, think_time: float = 0.0,
          factor: float = 10.0, seed: int = 0, out: str | Path | None = None,
          spin_us: float | None = None, progress: bool = True, network=None,
          cpu_limit: float | None = None) -> tuple[LoadResult, Path]:
    """Run one variant under one schedule (and conditions: ``run``'s ``network`` and
    ``cpu_limit``), save the result, return it and where it went."""
    sched = make_schedule(schedule, rate=rate, duration=duration, closed=closed,
                          think_time=think_time, factor=factor, seed=seed)
    result = run(variant, sched, processes=processes, concurrency=concurrency, warmup=warmup,
                 spin_us=spin_us, progress=progress, network=network, cpu_limit=cpu_limit)
    return result, result.save(out)
