"""Merge what each worker measured into one ``LoadResult``: histograms added (never
percentiles averaged), counters summed, the health verdict judged on the merged parts."""

from __future__ import annotations

import math

import numpy as np

from . import hist, limits
from .health import judge_run
from .results import METRICS, LoadResult
from .runenv import environment
from .schedules import ClosedLoop, Schedule
from .split import merge


def combine(parts: list, schedule: Schedule | ClosedLoop, *, variant: str, processes: int,
            concurrency: int, warmup: float, max_busy: float = 0.97,
            server: dict | None = None, conditions: dict | None = None,
            throttle: dict | None = None, subtracted: bool = True) -> LoadResult:
    """Merge worker parts (histograms added, counters summed) into one ``LoadResult``.
    ``conditions`` and ``throttle`` are the run's (``limits``): the workers shared one
    cgroup, so its counters are the run's, not a sum over workers.  ``subtracted``: the
    parts' latency has the generator's own lag taken out (``summary``; not under a CPU
    limit)."""
    # warm-up histograms stand in only when no worker measured anything ("warm-up only")
    warm_only = all(p.warmup_only or not p.sent for p in parts) and any(p.sent for p in parts)
    use = [p for p in parts if warm_only or not p.warmup_only]
    merged = {m: hist.merge(hist.decode(getattr(p, m)) for p in use) for m in METRICS}
    nsec = max(len(p.intervals) for p in parts)
    intervals = [hist.merge(hist.decode(p.intervals[s]) for p in parts
                            if s < len(p.intervals)) for s in range(nsec)]
    completed = np.zeros(nsec, np.int64)
    for p in parts:
        completed[:len(p.completed_per_s)] += np.asarray(p.completed_per_s, np.int64)
    keys = ("sent", "warmup_requests", "measured", "ok", "failed", "timeouts", "dropped")
    counts = {k: int(sum(getattr(p, k) for p in parts)) for k in keys}
    open_loop = isinstance(schedule, Schedule)
    duration = schedule.duration
    if open_loop:
        scheduled = len(schedule)
        offered = schedule.rate
        offered_per_s = schedule.rate_per_second().tolist()
        span = max(duration, max(p.last_end_ns for p in parts) / 1e9)
    else:
        scheduled = counts["measured"]
        offered = math.nan
        offered_per_s = []
        span = duration
    counts["scheduled"] = scheduled
    counts["unsent"] = max(0, scheduled - counts["measured"]) if open_loop else 0
    achieved = (counts["ok"] + counts["failed"] + counts["timeouts"]) / span
    # every request sent was answered (or failed): completions over the whole run
    total_span = max(warmup + duration, max(p.last_end_total_ns for p in parts) / 1e9)
    cpu_s = float(sum(p.cpu_s for p in parts))
    wall_s = float(max(p.wall_s for p in parts))
    busy = [b for p in parts for b in p.busy]
    first_error = next((p.first_error for p in parts if p.first_error), "")
    health = judge_run(parts, merged, counts, open_loop=open_loop, scheduled=scheduled,
                       max_busy=max_busy, offered_rate=offered, achieved_rate=achieved,
                       processes=processes, concurrency=concurrency, warmup=warmup,
                       first_error=first_error, server=server or {}, throttle=throttle,
                       cpu_limit=(conditions or {}).get("cpu_limit"), subtracted=subtracted)
    env = environment()
    env["scheduling"] = "; ".join(dict.fromkeys(p.scheduling for p in parts if p.scheduling))
    return LoadResult(variant=variant, schedule=schedule.describe(), processes=processes,
                      concurrency=concurrency, warmup=warmup, duration=duration, **merged,
                      intervals=intervals, offered_per_s=offered_per_s,
                      completed_per_s=completed.tolist(), counts=counts, offered_rate=offered,
                      achieved_rate=achieved, cpu_s=cpu_s, wall_s=wall_s, busy=busy,
                      health=health, worker_requests=[p.measured for p in parts],
                      first_error=first_error, env=env,
                      split=merge([getattr(p, "split", {}) for p in parts]),
                      server=server or {},
                      conditions=conditions or limits.conditions(None, None), throttle=throttle,
                      completed_total=counts["sent"],
                      achieved_total_per_s=counts["sent"] / total_span if total_span else 0.0,
                      window="warm-up only" if warm_only else "measured",
                      lag_subtracted=subtracted)
