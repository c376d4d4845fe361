"""Open-loop load generation with honest latency: ``from lootlab import loadgen``.

    sched = loadgen.constant(rate=5_000, duration=10)   # also poisson / ramp / spike / closed
    res = loadgen.run(factory, sched, processes=2)      # any zero-argument client factory
                                                        # (a variant's: lootlab.targets)
    res.latency_us(99.0); res.to_frame(); res.health; res.save()

Method (open loop, coordinated omission, merging, health verdict): docs/loadgen.md.
"""

from __future__ import annotations

from .results import Health, LoadResult
from .runner import LoadgenError, run
from .schedules import ClosedLoop, Schedule, ScheduleError, closed, constant, poisson, ramp, spike

__all__ = ["constant", "poisson", "ramp", "spike", "closed", "run", "Schedule", "ClosedLoop",
           "LoadResult", "Health", "LoadgenError", "ScheduleError"]
