"""How a run is cut into per-worker jobs: the schedule dealt round-robin, one Job each.

Round-robin dealing gives every process an evenly thinned copy of the schedule (and the
senders inside a process thin it again), so no worker gets a burst the others miss.  A
Job is plain data: it is pickled to a file and re-imported by module path in a spawned
worker, so it must stay a module-level dataclass of picklable fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import LoadgenError
from .schedules import NS, ClosedLoop, Schedule, _piecewise


@dataclass
class Job:
    """One worker's share of a run (picklable: it crosses to spawned processes)."""

    target: Any
    offsets: np.ndarray | None        # this worker's intended offsets (ns from t0), open loop
    closed: ClosedLoop | None
    threads: int
    queries: np.ndarray
    first: int                        # global index of this worker's first request
    step: int                         # global stride between this worker's requests
    warmup_ns: int
    duration_ns: int
    hard_stop_ns: int                 # relative to t0: stop sending after this
    timeout_ns: int | None
    worker: int = 0
    spin_us: float | None = None
    priority: str = "auto"            # how its senders are scheduled (``priority``)
    subtract_own: bool = True         # latency less the generator's own lateness (summary)


def plan(schedule: Schedule | ClosedLoop, *, processes: int, concurrency: int,
         warmup: float, queries: np.ndarray, target: Any, timeout: float | None,
         grace: float | None) -> list[Job]:
    """Deal a schedule round-robin into one Job per process."""
    if processes < 1 or concurrency < 1:
        raise LoadgenError(f"processes and concurrency must be >= 1, got {processes}, "
                           f"{concurrency}")
    warmup_ns = int(round(warmup * NS))
    duration_ns = int(round(schedule.duration * NS))
    grace_s = max(1.0, 0.25 * schedule.duration) if grace is None else grace
    hard_stop = warmup_ns + duration_ns + int(grace_s * NS)
    timeout_ns = None if timeout is None else int(timeout * NS)
    jobs = []
    if isinstance(schedule, ClosedLoop):
        processes = min(processes, schedule.concurrency)
        per = [schedule.concurrency // processes + (p < schedule.concurrency % processes)
               for p in range(processes)]
        for p in range(processes):
            jobs.append(Job(target, None, schedule, per[p], queries, p, processes, warmup_ns,
                            duration_ns, hard_stop, timeout_ns, p))
        return jobs
    warm = _piecewise([(warmup, schedule.start_rate)], warmup) if warmup > 0 else \
        np.zeros(0, np.int64)
    offsets = np.concatenate([warm, schedule.offsets + warmup_ns])
    for p in range(processes):
        jobs.append(Job(target, offsets[p::processes], None, concurrency, queries, p,
                        processes, warmup_ns, duration_ns, hard_stop, timeout_ns, p))
    return jobs


__all__ = ["Job", "plan"]
