"""A schedule from plain parameters (what ``lootlab bench`` asks for by name)."""

from __future__ import annotations

from . import schedules


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
