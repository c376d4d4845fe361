"""Run a schedule against a client, across processes, and merge what each measured.

This module is the entry point (``run``) and what a target is (a variant name or a
client factory); each step of a run lives in a module of its own:

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
from .senders import ERROR, OK, TIMEOUT, Client, _classify  # noqa: F401 - re-exported
from .summary import Part
from .workers import execute, run_job


def client_factory(target: str | Callable[[], Any], network: Any = None) -> Callable[[], Any]:
    """What a job opens its client with: a variant name goes through the registry's
    resolver (so P worker processes share this process's default server), a zero-argument
    factory is used as it is.  A ``network`` (``lootlab.Network``) is applied there
    (``limits.apply_network``)."""
    from .limits import apply_network, coerce_network
    network = coerce_network(network)
    if isinstance(target, str):
        if network is not None:
            return apply_network(target, network, target)
        from ..variants import resolve
        return resolve(target)
    if callable(target):
        return apply_network(target, network, None)
    raise LoadgenError(f"target must be a variant name or a zero-argument client factory, "
                       f"got {type(target).__name__}")


def target_label(target: str | Callable[[], Any]) -> str:
    """The name a result is filed under: the variant, or the factory's name."""
    if isinstance(target, str):
        return target
    name = getattr(target, "name", None)          # a ClientFactory names its variant
    if isinstance(name, str) and name:
        return name
    if isinstance(target, functools.partial):
        return getattr(target.func, "__name__", "client")
    return getattr(target, "__name__", type(target).__name__)


def default_workload(n: int, *, seed: int = 0, radius: int = 64) -> np.ndarray:
    """The overlay workload on the default index: ``near`` around players, r=64."""
    from ..index import open_index
    from ..overlay import overlay_queries
    from ..paths import ensure_default_index
    with open_index(ensure_default_index()) as idx:
        return overlay_queries(idx, n, seed=seed, radius=radius)


def run(target: str | Callable[[], Any], schedule: Schedule | ClosedLoop, *,
        processes: int = 1, concurrency: int = 1, warmup: float = 0.5,
        workload: np.ndarray | None = None, radius: int = 64, timeout: float | None = None,
        grace: float | None = None, label: str | None = None, progress: bool = False,
        max_busy: float = 0.97, spin_us: float | None = None, clock=None,
        network: Any = None, cpu_limit: float | None = None, priority: str = "auto"):
    """Drive ``schedule`` at a variant (name) or client factory; return a ``LoadResult``.

    ``processes`` > 1 spawns workers (each connects on its own; a factory must pickle).
    ``processes=1`` runs in this process.  ``warmup`` seconds at the schedule's starting
    rate go first and are discarded (and counted).  ``workload`` is an (n, 4) array of
    ``x y z r`` queries, cycled; by default the overlay workload on the default index
    (``lootlab.overlay.overlay_queries``, seeded with the schedule's seed, r = ``radius``).
    ``timeout`` counts slower answers as timeouts (kept out of the latency histogram, in
    the errors one).  ``grace`` is how long past the schedule a late generator may go on
    sending before the rest count as unsent (default max(1 s, 25 %)).  ``spin_us``: how
    long before each due time a sender stops sleeping and spins (default: learned from its
    own oversleeps, at most 1 ms: ``clock.Clock``).
    A remote variant's server is asked for its CPU time before and after (``serverload``):
    the result's ``server``.  The machine is sampled before and after (``lootlab.noise``,
    ~10 ms in all): the result's ``env["noise"]`` holds both samples and ``env["noisy"]``
    says whether other programs (or a hypervisor) were taking the CPU, which no histogram
    can show; ``env["tails"]`` what the kernel saw meanwhile (TCP timers, CPU pressure:
    ``loadgen.tails``), named by ``result.tail_causes()``.

    Conditions (``limits``): ``network`` (a ``lootlab.Network``, a dict or an RTT in ms)
    puts a remote variant behind the delaying proxy; ``cpu_limit=CORES`` runs the senders
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
    if cpu_limit is not None:
        if clock is not None:
            raise LoadgenError("a custom clock cannot run under cpu_limit (the senders run "
                               "in spawned processes)")
        spin_us = 0.0 if spin_us is None else spin_us
    if workload is None:
        n = len(schedule) if isinstance(schedule, Schedule) else 65_536
        workload = default_workload(int(min(max(n, 1), 65_536)), seed=schedule.seed,
                                    radius=radius)
    queries = np.asarray(workload, dtype=np.int64)
    if queries.ndim != 2 or queries.shape[1] != 4 or len(queries) == 0:
        raise LoadgenError(f"workload must be an (n, 4) array of x y z r, got shape "
                           f"{queries.shape}")
    label = label or target_label(target)
    target = client_factory(target, network)
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
    kernel = tails.finish(kernel)
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


# Also importable from here, as before the split: ``target_label``, ``Client`` and
# ``_classify`` (tests/test_remote.py uses it).
__all__ = ["run", "plan", "execute", "run_job", "Job", "Part", "Clock", "LoadgenError",
           "client_factory", "default_workload", "OK", "ERROR", "TIMEOUT"]
