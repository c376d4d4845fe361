"""What one worker measured, boiled down: the lanes' timestamps become encoded histograms
and counters (a ``Part``), small enough to pickle back to the parent.

Pure processing: no clock, no client.  Each request's wait before it was sent
(``start - intended``, the send lag) is split in two (``_split_wait``):

* ``queue``: what the system under test caused: its sender was still busy with earlier
  answers (a one-server queue over the measured service times).  Charged in full, as
  coordinated omission demands;
* ``generator_lag``: the generator's own lateness: the sender was free and still sent
  late (woke late, was descheduled, paused).  Measurement error.

``latency`` is the coordinated-omission-correct latency less only that provable error,
``queue + service``; ``observed`` is ``end - intended`` as timed, error included.  Under
a CPU limit nothing is subtracted (``Job.subtract_own``): there the generator is part of
the throttled replica, and a sender held back by the quota is what its users see.
Histograms are built in bulk here, after the run, so the senders' hot loop does no
histogram work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

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
    observed: str
    queue: str
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
    scheduling: str = ""           # how the senders were scheduled (priority.Raised.text)
    # per sender over the measured window: requests and summed service time (ns), and the
    # intended span they were offered over: utilization and capacity (``health``)
    lane_requests: list[int] = field(default_factory=list)
    lane_service_ns: list[int] = field(default_factory=list)
    lane_span_ns: list[int] = field(default_factory=list)


def _split_wait(lane: _Lane) -> tuple[np.ndarray, np.ndarray]:
    """(queue, own) per request: the wait the answers' service times force, and the
    lateness the generator added on its own.  A single sender is a one-server queue: had
    the generator no overhead, request i would start at ``max(intended_i, ideal_end_{i-1})``
    (Lindley's recursion over the measured service times), so ``queue = ideal_start -
    intended`` and ``own = start - ideal_start`` (CPU starvation, GC, sleep overshoot, loop
    cost; never negative, since a sender never starts early).  Vectorized: ideal_end_i =
    S_i + max_{j<=i}(intended_j - S_{j-1}) with S the running sum of service times."""
    intended = np.asarray(lane.intended, np.int64)
    if intended.size == 0:
        return intended, intended
    start = np.asarray(lane.starts, np.int64)
    svc = np.asarray(lane.ends, np.int64) - start
    s = np.cumsum(svc)
    s_prev = s - svc
    ideal_end = s + np.maximum.accumulate(intended - s_prev)
    ideal_start = ideal_end - svc
    return ideal_start - intended, start - ideal_start


def _own_lag(lane: _Lane) -> np.ndarray:
    """The generator's own lateness per request (``_split_wait``)."""
    return _split_wait(lane)[1]


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
    observed, svc, lag = end - intended, end - start, start - intended
    # the wait before sending, split into the system's queue and the generator's own delay
    waits = [_split_wait(ln) for ln in lanes]
    empty = np.zeros(0, np.int64)
    queue = np.concatenate([w[0] for w in waits]) if lanes else empty
    own = np.concatenate([w[1] for w in waits]) if lanes else empty
    lat = observed - own if job.subtract_own else observed

    dropped = 0
    parts = {}
    for name, values in (("latency", lat[ok]), ("service", svc[ok]),
                         ("send_lag", lag[window]), ("errors", lat[bad]),
                         ("generator_lag", own[window]), ("observed", observed[ok]),
                         ("queue", queue[window])):
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

    lane_n, lane_svc, lane_span = _lane_loads(job, lanes, t0)
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
        generator_lag=parts["generator_lag"], observed=parts["observed"],
        queue=parts["queue"], intervals=intervals,
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
        last_end_total_ns=int(end.max() - t0) if end.size else 0,
        lane_requests=lane_n, lane_service_ns=lane_svc, lane_span_ns=lane_span)


def _lane_loads(job: Job, lanes: list[_Lane], t0: int) -> tuple[list[int], list[int],
                                                                 list[int]]:
    """Per sender, over the measured window: requests, their summed service time and the
    span of intended times they were offered over (one inter-arrival gap past the last,
    so a lane of n evenly spaced requests spans n gaps).  Their ratio is the sender's
    utilization: at 1 or more the offered rate exceeds what the variant serves through
    it, and the latency is a growing queue's."""
    counts, service, spans = [], [], []
    if job.closed is not None:
        return counts, service, spans
    start_ns = t0 + job.warmup_ns
    for lane in lanes:
        intended = np.asarray(lane.intended, np.int64)
        keep = intended >= start_ns
        n = int(keep.sum())
        if n == 0:
            continue
        svc = (np.asarray(lane.ends, np.int64) - np.asarray(lane.starts, np.int64))[keep]
        first, last = int(intended[keep][0]), int(intended[keep][-1])
        gap = (last - first) / (n - 1) if n > 1 else job.duration_ns
        counts.append(n)
        service.append(int(svc.sum()))
        spans.append(max(1, int(last - first + gap)))
    return counts, service, spans


def loads(parts: list, merged: dict[str, Any], open_loop: bool) -> dict[str, float]:
    """The senders' utilization and capacity from the parts' per-lane service sums, and
    the medians of the system's queue and of service time (``saturation``)."""
    lanes = [lane for p in parts for lane in zip(p.lane_requests, p.lane_service_ns,
                                                 p.lane_span_ns)]
    if not open_loop or not lanes:
        return {}

    def median_us(metric: str, empty: float) -> float:
        h = merged.get(metric)
        if h is None or not h.get_total_count():
            return empty
        return float(hist.percentiles(h, [50])[0]) / 1e3
    capacity = (sum(n * 1e9 / svc for n, svc, _ in lanes)
                if all(svc > 0 for _, svc, _ in lanes) else math.inf)
    return {"utilization": max(svc / span for _, svc, span in lanes),
            "capacity_per_s": capacity, "queue_p50_us": median_us("queue", 0.0),
            "service_p50_us": median_us("service", math.inf)}


__all__ = ["Part", "loads"]
