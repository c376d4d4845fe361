"""Run a schedule against a client, across processes, and merge what each measured.

This module is the entry point (``run``) and what a target is: a zero-argument client
factory (``lootlab.targets.client_factory(variant)`` makes one for a variant; this package
knows nothing of variants, servers or indexes).  What a run needs beyond clients it asks
the factory for, when it offers it: ``with_network`` (a ``network=`` run), ``server_stats``
(the server's CPU time: ``serverload``), ``default_workload`` (the queries when none are
given).  Each step of a run lives in a module of its own:

* ``jobs``: the schedule is dealt round-robin into one ``Job`` per process, so every
  process and thread sees an evenly thinned copy of it; every intended send time is
  known up front;
* ``workers``: jobs run inline (one process) or in spawned processes (spawn start method,
  so gRPC channels are created inside each worker); the parent notices dead workers;
* ``senders`` + ``clock`` + ``priority``: a sender that is on time sleeps until a learned
  margin before the due time and spins the rest (sleep alone overshoots); senders run
  real-time where other work holds the cores; a sender that is late sends at once,
  without sleeping, and never skips a request.  Threads inside a process
  (``concurrency``) only help when the client releases the GIL while it waits, as gRPC
  does; an mmap client holds the GIL, so use processes for it;
* ``summary``: latency is ``end - intended`` less the generator's own lateness, so a
  request held back by a slow predecessor is charged for the wait (no coordinated
  omission, and no ``record_corrected_value`` on top); service time ``end - start`` and send lag ``start - intended`` are kept apart;
  timestamps go into plain lists during the run and histograms are built afterwards in
  bulk (``hist.record_many``), so the hot loop does no histogram work;
* ``results``: the parts are merged (histograms added, never percentiles averaged) and
  judged (``health``).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from .clock import Clock
from .errors import LoadgenError
from .jobs import Job, plan
from .schedules import ClosedLoop, Schedule
from .summary import Part
from .workers import execute, run_job


def opened_by(target: Callable[[], Any], network: Any = None) -> Callable[[], Any]:
    """What a job opens its client with: ``target`` itself, or re-routed under ``network``
    (``limits.apply_network``).  A variant name is refused with what to pass instead: the
    name is resolved by the layer that knows variants, not by the load generator."""
    from .limits import apply_network
    if isinstance(target, str):
        raise LoadgenError(f"loadgen.run drives a client factory, not the name {target!r}: "
                           f"pass lootlab.targets.client_factory({target!r})")
    if callable(target):
        return apply_network(target, network)
    raise LoadgenError(f"target must be a zero-argument client factory, got "
                       f"{type(target).__name__}")


def target_label(target: Callable[[], Any]) -> str:
    """The name a result is filed under: the factory's name (a ``ClientFactory`` names its
    variant), else its function's."""
    name = getattr(target, "name", None)          # a ClientFactory names its variant
    if isinstance(name, str) and name:
        return name
    if isinstance(target, functools.partial):
        return getattr(target.func, "__name__", "client")
    return getattr(target, "__name__", type(target).__name__)


def target_workload(target: Callable[[], Any], n: int, *, seed: int = 0,
                    radius: int = 64) -> np.ndarray:
    """The queries ``target`` is driven with when none are given: what it offers
    (``target.default_workload(n, seed=, radius=)``; a ``lootlab.targets.ClientFactory``
    gives the overlay workload on the default index)."""
    make = getattr(target, "default_workload", None)
    if not callable(make):
        raise LoadgenError(f"workload= is needed: {target_label(target)} offers no default "
                           f"workload (an (n, 4) array of x y z r queries; a factory from "
                           f"lootlab.targets.client_factory offers one)")
    return make(n, seed=seed, radius=radius)


def run(target: Callable[[], Any], schedule: Schedule | ClosedLoop, *,
        processes: int = 1, concurrency: int = 1, warmup: float = 0.5,
        workload: np.ndarray | None = None, radius: int = 64, timeout: float | None = None,
        grace: float | None = None, label: str | None = None, progress: bool = False,
        max_busy: float = 0.97, spin_us: float | None = None, clock=None,
        network: Any = None, cpu_limit: float | None = None, priority: str = "auto"):
    """Drive ``schedule`` at a client factory; return a ``LoadResult``.

    ``processes`` > 1 spawns workers (each connects on its own; a factory must pickle).
    ``processes=1`` runs in this process.  ``warmup`` seconds at the schedule's starting
    rate go first and are discarded (and counted).  ``workload`` is an (n, 4) array of
    ``x y z r`` queries, cycled; by default the factory's own (``target_workload``: a
    variant's is the overlay workload on the default index, seeded with the schedule's
    seed, r = ``radius``).
    ``timeout`` counts slower answers as timeouts (kept out of the latency histogram, in
    the errors one).  ``grace`` is how long past the schedule a late generator may go on
    sending before the rest count as unsent (default max(1 s, 25 %)).  ``spin_us``: how
    long before each due time a sender stops sleeping and spins (default: learned from its
    own oversleeps, at most 1 ms: ``clock.Clock``).
    A factory's server is asked for its CPU time before and after (``serverload``):
    the result's ``server``.  The machine is sampled before and after (``lootlab.noise``,
    ~10 ms in all): the result's ``env["noise"]`` holds both samples and ``env["noisy"]``
    says whether other programs (or a hypervisor) were taking the CPU, which no histogram
    can show; ``env["tails"]`` what the kernel saw meanwhile (TCP timers, CPU pressure:
    ``loadgen.tails``), named by ``result.tail_causes()``: a run whose factory says its
    clients open no connections (a local variant) is not given the machine's TCP events.

    Conditions (``limits``): ``network`` (a ``lootlab.Network``, a dict or an RTT in ms)
    puts a remote variant behind the delaying proxy (the factory's ``with_network``); ``cpu_limit=CORES`` runs the senders
    (spawned, even for ``processes=1``) in one cgroup with that CPU quota, like one
    container, and ``spin_us`` then defaults to 0 (spinning would spend the replica's quota
    on the generator's timing).  The result's ``conditions`` say what was applied and
    ``throttle`` what the cgroup counted over the measured part.

    ``priority`` (``loadgen.priority``): how the senders are scheduled while they run:
    "auto" (real-time where allowed, else the highest nice level, else as they are),
    "realtime", "nice" or "normal"; under ``cpu_limit`` always "normal" (a real-time
    thread escapes the quota being emulated).  The result's ``scheduling`` says what was
    granted.  Each request's wait before sending is split into the system's queue and the
    generator's own lateness, which is taken out of ``latency`` (``observed`` keeps it) and
    kept as ``generator_lag``: the instrument's resolution (``docs/loadgen.md``).
    """
    from .. import noise
    from . import serverload, tails
    from .combine import combine
    from .limits import check_limit, conditions, cpu_limited
    from .priority import check_mode

    cpu_limit = check_limit(cpu_limit)      # a bad value is refused before any work
    priority = check_mode(priority)
    label = label or target_label(target)
    target = opened_by(target, network)     # so are a variant name and a bad network
    if cpu_limit is not None:
        if clock is not None:
            raise LoadgenError("a custom clock cannot run under cpu_limit (the senders run "
                               "in spawned processes)")
        spin_us = 0.0 if spin_us is None else spin_us
    if workload is None:
        n = len(schedule) if isinstance(schedule, Schedule) else 65_536
        workload = target_workload(target, int(min(max(n, 1), 65_536)), seed=schedule.seed,
                                   radius=radius)
    queries = np.asarray(workload, dtype=np.int64)
    if queries.ndim != 2 or queries.shape[1] != 4 or len(queries) == 0:
        raise LoadgenError(f"workload must be an (n, 4) array of x y z r, got shape "
                           f"{queries.shape}")
    jobs = plan(schedule, processes=processes, concurrency=concurrency, warmup=warmup,
                queries=queries, target=target, timeout=timeout, grace=grace)
    for job in jobs:
        job.spin_us = spin_us
        job.priority = "normal" if cpu_limit is not None else priority
        job.subtract_own = cpu_limit is None
    check = noise.start()
    kernel = tails.start()
    server_before = serverload.start(target)
    throttle = None
    with cpu_limited(cpu_limit, warmup) as (limiter, note):
        try:
            parts = execute(jobs, progress=progress, total_s=warmup + schedule.duration,
                            clock=clock, limiter=limiter)
        finally:
            throttle = limiter.finish() if limiter is not None else None
    server = serverload.finish(server_before)
    kernel = tails.finish(kernel, connects=tails.opens_connections(target))
    check = noise.finish(check)
    crashes = [p.crash for p in parts if p.crash]
    if crashes:
        raise LoadgenError("a load sender crashed:\n" + crashes[0])
    result = combine(parts, schedule, variant=label,
                     processes=len(jobs), concurrency=jobs[0].threads if jobs else concurrency,
                     warmup=warmup, max_busy=max_busy, server=server,
                     conditions=conditions(target, cpu_limit, applied=limiter is not None,
                                           note=note),
                     throttle=throttle, subtracted=cpu_limit is None)
    result.env["noise"] = check.to_dict()
    result.env["noisy"] = check.noisy
    result.env["tails"] = kernel
    return result


__all__ = ["run", "plan", "execute", "run_job", "Job", "Part", "Clock", "LoadgenError",
           "opened_by", "target_label", "target_workload"]
