"""What one worker measured, boiled down: the lanes' timestamps become encoded histograms
and counters (a ``Part``), small enough to pickle back to the parent.

Pure processing: no clock, no client.  Latency is ``end - intended``, service time
``end - start``, send lag ``start - intended``; the generator's own lag is the send lag
that the answers' service times do not explain (``_own_lag``).  Histograms are built in
bulk here, after the run, so the senders' hot loop does no histogram work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import hist
from .jobs import Job
from .schedules import NS
from .senders import ERROR, OK, TIMEOUT, _Lane


@dataclass
class Part:
    """What one worker measured, as encoded histograms and counters (small to pickle)."""

    worker: int
    latency: str
    service: str
    send_lag: str
    errors: str
    generator_lag: str
    intervals: list[str]
    completed_per_s: list[int]
    scheduled: int
    sent: int
    warmup_requests: int
    measured: int
    ok: int
    failed: int
    timeouts: int
    dropped: int
    cpu_s: float
    wall_s: float
    busy: list[float]
    last_end_ns: int
    crash: str = ""
    first_error: str = ""
    blocked: list[float] = field(default_factory=list)   # per sender: share inside calls
    warmup_only: bool = False      # nothing was measured: the histograms hold the warm-up
    last_end_total_ns: int = 0     # last answer of the whole run (warm-up too), from t0
    local_server: str = ""         # loopback address of a server on this machine, if any
    offcpu: list[bool] = field(default_factory=list)  # per sender: waited in calls (_offcpu)
    split: dict = field(default_factory=dict)  # the client's call split (remote.callsplit)


def _own_lag(lane: _Lane) -> np.ndarray:
    """Lateness the generator added on its own, beyond what the answers' service times
    force.  A single sender is a one-server queue: had the generator no overhead, request
    i would start at ``max(intended_i, ideal_end_{i-1})`` (Lindley's recursion over the
    measured service times).  The excess of the actual start over that is the generator's
    (CPU starvation, GC, sleep overshoot, loop cost).  Vectorized: ideal_end_i =
    S_i + max_{j<=i}(intended_j - S_{j-1}) with S the running sum of service times."""
    intended = np.asarray(lane.intended, np.int64)
    if intended.size == 0:
        return intended
    start = np.asarray(lane.starts, np.int64)
    svc = np.asarray(lane.ends, np.int64) - start
    s = np.cumsum(svc)
    s_prev = s - svc
    ideal_end = s + np.maximum.accumulate(intended - s_prev)
    ideal_start = ideal_end - svc
    return start - ideal_start


def _offcpu(lane: _Lane, inside_ns: int) -> bool:
    """Whether a sender's time inside calls was spent waiting off the CPU (for a server's
    answer) rather than burning it (its own client code): it switched out voluntarily at
    least once per two calls, or used under 5 % of that time in CPU (the test for clocks
    that are not the OS's).  A spinning client descheduled by a busy machine is switched
    out involuntarily only, so it counts as burning CPU though it got 0.2 core of it."""
    if lane.sent and lane.vcsw >= 0.5 * lane.sent:
        return True
    return lane.cpu_ns < 0.05 * inside_ns


def _summarize(job: Job, lanes: list[_Lane], t0: int, cpu_s: float, wall_s: float) -> Part:
    def cat(attr, dtype=np.int64):
        arrays = [np.asarray(getattr(ln, attr), dtype=dtype) for ln in lanes]
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype)

    intended, start, end = cat("intended"), cat("starts"), cat("ends")
    status = np.concatenate([np.frombuffer(bytes(ln.status), np.uint8) for ln in lanes]) \
        if lanes else np.zeros(0, np.uint8)
    if job.timeout_ns is not None:
        status = np.where((status == OK) & (end - start > job.timeout_ns), TIMEOUT, status)
    rel = intended - t0 - job.warmup_ns
    measured = rel >= 0
    # a run whose warm-up swallowed every request still reports what it saw, marked
    warmup_only = bool(intended.size) and not measured.any()
    window = ~measured if warmup_only else measured
    ok = window & (status == OK)
    bad = window & (status != OK)
    lat, svc, lag = end - intended, end - start, start - intended
    # the generator's own delay, with queueing behind slow answers taken out (_own_lag)
    own = np.concatenate([_own_lag(ln) for ln in lanes]) if lanes else np.zeros(0, np.int64)

    dropped = 0
    parts = {}
    for name, values in (("latency", lat[ok]), ("service", svc[ok]),
                         ("send_lag", lag[window]), ("errors", lat[bad]),
                         ("generator_lag", own[window])):
        h, d = hist.histogram_of(values)
        dropped += d
        parts[name] = hist.encode(h)

    nsec = max(1, math.ceil(job.duration_ns / NS))
    in_window = measured & (status == OK)
    sec = np.minimum(rel[in_window] // NS, nsec - 1)
    lat_ok = lat[in_window]
    order = np.argsort(sec, kind="stable")
    bounds = np.searchsorted(sec[order], np.arange(nsec + 1))
    intervals = []
    for s in range(nsec):
        sel = lat_ok[order[bounds[s]:bounds[s + 1]]]
        h, _ = hist.histogram_of(sel)  # same values as the total: drops already counted
        intervals.append(hist.encode(h))
    end_rel = end[measured] - t0 - job.warmup_ns
    done = np.bincount(np.clip(end_rel // NS, 0, nsec), minlength=nsec + 1)[:nsec]

    busy, blocked, offcpu = [], [], []
    for lane in lanes:
        if job.closed is None and lane.sent:
            span = max(1, lane.ends[-1] - lane.intended[0])
            busy.append(1.0 - lane.idle_ns / span)
            # time inside calls: a busy sender mostly blocked on answers is a slow server's
            # doing, one busy outside them is the generator's own
            inside = int(np.sum(np.asarray(lane.ends, np.int64) -
                                np.asarray(lane.starts, np.int64)))
            blocked.append(min(1.0, inside / span))
            offcpu.append(_offcpu(lane, inside))
    scheduled = len(job.offsets) if job.offsets is not None else int(measured.size)
    return Part(
        worker=job.worker, latency=parts["latency"], service=parts["service"],
        send_lag=parts["send_lag"], errors=parts["errors"],
        generator_lag=parts["generator_lag"], intervals=intervals,
        completed_per_s=done.tolist(), scheduled=scheduled, sent=int(intended.size),
        warmup_requests=int((~measured).sum()), measured=int(measured.sum()),
        ok=int((measured & (status == OK)).sum()),
        failed=int((measured & (status == ERROR)).sum()),
        timeouts=int((measured & (status == TIMEOUT)).sum()), dropped=dropped, cpu_s=cpu_s,
        wall_s=wall_s, busy=busy,
        last_end_ns=int(end_rel.max()) if end_rel.size else 0,
        crash="\n".join(ln.crash for ln in lanes if ln.crash),
        first_error=next((ln.first_error for ln in lanes if ln.first_error), ""),
        blocked=blocked, offcpu=offcpu, warmup_only=warmup_only,
        last_end_total_ns=int(end.max() - t0) if end.size else 0)


__all__ = ["Part"]
