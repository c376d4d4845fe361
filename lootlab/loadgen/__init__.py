"""Open-loop load generation with honest latency: ``from lootlab import loadgen``.

    sched = loadgen.constant(rate=5_000, duration=10)   # also poisson / ramp / spike / closed
    res = loadgen.run("mmap", sched, processes=2)       # or a zero-arg client factory
    res.latency_us(99.0); res.to_frame(); res.health; res.save()

Method (open loop, coordinated omission, merging, health verdict): docs/loadgen.md.
"""

from __future__ import annotations

from .results import Health, LoadResult
from .runner import LoadgenError, run
from .schedules import ClosedLoop, Schedule, ScheduleError, closed, constant, poisson, ramp, spike
from .sweep import max_sustainable, spike_run, sustainable, sweep

__all__ = ["constant", "poisson", "ramp", "spike", "closed", "run", "sweep", "sustainable",
           "max_sustainable", "spike_run", "Schedule", "ClosedLoop", "LoadResult", "Health",
           "LoadgenError", "ScheduleError"]
