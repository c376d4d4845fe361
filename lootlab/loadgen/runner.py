"""Run a schedule against a client, across processes, and merge what each measured.

How a sender keeps an open-loop schedule in Python:

* every intended send time is known up front; a sender that is on time sleeps until
  ~200 us before the due time and spins the rest (sleep alone overshoots by ~60 us);
  a sender that is late sends at once, without sleeping, and never skips a request;
* latency is ``end - intended``, so a request held back by a slow predecessor is charged
  for the wait (no coordinated omission, and no ``record_corrected_value`` on top);
  service time ``end - start`` and send lag ``start - intended`` are kept apart;
* timestamps go into plain lists during the run; histograms are built afterwards in bulk
  (``hist.record_many``), so the hot loop does no histogram work;
* throughput comes from processes (spawn start method, so gRPC channels are created
  after the fork-free start, inside each worker); threads inside a process (``concurrency``)
  only help when the client releases the GIL while it waits, as gRPC does; an mmap client
  holds the GIL, so use processes for it.  Requests are dealt round-robin, so every
  process and thread sees an evenly thinned copy of the schedule.
"""

from __future__ import annotations

import functools
import math
import multiprocessing as mp
import os
import pickle
import queue as queue_mod
import signal
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from ..errors import LootlabError
from . import hist
from .schedules import NS, ClosedLoop, Schedule, _piecewise

OK, ERROR, TIMEOUT = 0, 1, 2
_SPIN_NS = 200_000        # spin (not sleep) for the last 200 us before a send
_SLEEP_MIN_NS = 300_000   # below this much time to go, do not call sleep at all


class LoadgenError(LootlabError):
    """A load run could not start or a worker failed (names the worker and the cause)."""


class Client(Protocol):
    def near(self, x: int, y: int, z: int, r: int) -> Any: ...


class Clock:
    """Real time: ``time.perf_counter_ns`` (CLOCK_MONOTONIC, shared by all processes)."""

    now = staticmethod(time.perf_counter_ns)

    def __init__(self, threads: int = 1, spin_us: float | None = None):
        self.threads = threads
        self.spin_ns = _SPIN_NS if spin_us is None else int(spin_us * 1000)
        self.sleep_min_ns = self.spin_ns + (_SLEEP_MIN_NS - _SPIN_NS)

    def wait_until(self, due: int) -> None:
        clock = time.perf_counter_ns
        rem = due - clock()
        if rem > self.sleep_min_ns:
            time.sleep((rem - self.spin_ns) / 1e9)
        if self.threads > 1:
            while clock() < due:     # sleep(0) hands the GIL to the other senders
                time.sleep(0)
        else:
            while clock() < due:
                pass

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# --------------------------------------------------------------------------- targets
def client_factory(target: str | Callable[[], Any]) -> Callable[[], Any]:
    """What a job opens its client with: a variant name goes through the registry's
    resolver (so P worker processes share this process's default server), a zero-argument
    factory is used as it is."""
    if isinstance(target, str):
        from ..variants import resolve
        return resolve(target)
    if callable(target):
        return target
    raise LoadgenError(f"target must be a variant name or a zero-argument client factory, "
                       f"got {type(target).__name__}")


def target_label(target: str | Callable[[], Any]) -> str:
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


# --------------------------------------------------------------------------- senders
def _classify(exc: BaseException) -> int:
    """TIMEOUT for a ``TimeoutError`` (lootlab's ``DeadlineExceeded`` is one, as are socket
    and futures timeouts), ERROR for anything else: by type, not by sniffing attributes."""
    return TIMEOUT if isinstance(exc, TimeoutError) else ERROR


@dataclass
class _Lane:
    """What one sender thread did: per-request timestamps and how long it sat idle."""

    intended: list[int]
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    status: bytearray = field(default_factory=bytearray)
    idle_ns: int = 0
    sent: int = 0
    first_ns: int = 0
    last_ns: int = 0
    crash: str = ""
    first_error: str = ""


def _open_sender(lane: _Lane, near, qs: list, gi: int, gstep: int, hard_stop: int,
                 clock) -> None:
    now_fn, wait = clock.now, clock.wait_until
    dues = lane.intended
    n = len(dues)
    starts = [0] * n
    ends = [0] * n
    status = bytearray(n)
    nq = len(qs)
    gi %= nq
    idle = 0
    sent = 0
    if n:
        wait(dues[0])   # the wait for the start is not idle time within the run
    try:
        for i in range(n):
            due = dues[i]
            now = now_fn()
            if now < due:
                wait(due)
                t = now_fn()
                idle += t - now
                now = t
            elif now > hard_stop:
                break
            x, y, z, r = qs[gi]
            try:
                near(x, y, z, r)
            except Exception as exc:  # noqa: BLE001 - every failure is counted, none hidden
                status[i] = _classify(exc)
                if not lane.first_error:
                    lane.first_error = f"{type(exc).__name__}: {exc}"[:500]
            ends[i] = now_fn()
            starts[i] = now
            sent = i + 1
            gi = (gi + gstep) % nq
    except BaseException:  # noqa: BLE001
        lane.crash = traceback.format_exc()
    lane.starts, lane.ends, lane.status = starts[:sent], ends[:sent], status[:sent]
    lane.idle_ns, lane.sent = idle, sent
    lane.intended = dues[:sent]


def _closed_sender(lane: _Lane, near, qs: list, gi: int, gstep: int, t_start: int,
                   t_end: int, think_s: float, clock) -> None:
    now_fn = clock.now
    starts, ends, status = lane.starts, lane.ends, lane.status
    nq = len(qs)
    gi %= nq
    clock.wait_until(t_start)
    try:
        while True:
            s = now_fn()
            if s >= t_end:
                break
            x, y, z, r = qs[gi]
            st = OK
            try:
                near(x, y, z, r)
            except Exception as exc:  # noqa: BLE001
                st = _classify(exc)
                if not lane.first_error:
                    lane.first_error = f"{type(exc).__name__}: {exc}"[:500]
            e = now_fn()
            starts.append(s)
            ends.append(e)
            status.append(st)
            gi = (gi + gstep) % nq
            if think_s:
                clock.sleep(think_s)
    except BaseException:  # noqa: BLE001
        lane.crash = traceback.format_exc()
    lane.intended = starts   # closed loop: "intended" is the actual send (the omission)
    lane.sent = len(starts)


# --------------------------------------------------------------------------- one worker
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


def _run_lanes(job: Job, client, t0: int, clock) -> list[_Lane]:
    near = client.near
    qs = [tuple(row) for row in job.queries.tolist()]
    lanes: list[_Lane] = []
    threads = []
    for k in range(job.threads):
        gi, gstep = job.first + k * job.step, job.step * job.threads
        if job.closed is None:
            lane = _Lane(intended=(job.offsets[k::job.threads] + t0).tolist())
            args = (lane, near, qs, gi, gstep, t0 + job.hard_stop_ns, clock)
            fn = _open_sender
        else:
            lane = _Lane(intended=[])
            args = (lane, near, qs, gi * 7919, gstep, t0, t0 + job.warmup_ns + job.duration_ns,
                    job.closed.think_time, clock)
            fn = _closed_sender
        lanes.append(lane)
        threads.append(threading.Thread(target=fn, args=args, name=f"loadgen-{k}"))
    if len(threads) == 1:
        threads[0].run()
    else:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return lanes


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
    ok = measured & (status == OK)
    bad = measured & (status != OK)
    lat, svc, lag = end - intended, end - start, start - intended
    # the generator's own delay, with queueing behind slow answers taken out (_own_lag)
    own = np.concatenate([_own_lag(ln) for ln in lanes]) if lanes else np.zeros(0, np.int64)

    dropped = 0
    parts = {}
    for name, values in (("latency", lat[ok]), ("service", svc[ok]),
                         ("send_lag", lag[measured]), ("errors", lat[bad]),
                         ("generator_lag", own[measured])):
        h, d = hist.histogram_of(values)
        dropped += d
        parts[name] = hist.encode(h)

    nsec = max(1, math.ceil(job.duration_ns / NS))
    sec = np.minimum(rel[ok] // NS, nsec - 1)
    lat_ok = lat[ok]
    order = np.argsort(sec, kind="stable")
    bounds = np.searchsorted(sec[order], np.arange(nsec + 1))
    intervals = []
    for s in range(nsec):
        sel = lat_ok[order[bounds[s]:bounds[s + 1]]]
        h, _ = hist.histogram_of(sel)  # same values as the total: drops already counted
        intervals.append(hist.encode(h))
    end_rel = end[measured] - t0 - job.warmup_ns
    done = np.bincount(np.clip(end_rel // NS, 0, nsec), minlength=nsec + 1)[:nsec]

    busy = []
    for lane in lanes:
        if job.closed is None and lane.sent:
            span = max(1, lane.ends[-1] - lane.intended[0])
            busy.append(1.0 - lane.idle_ns / span)
    scheduled = len(job.offsets) if job.offsets is not None else int(measured.size)
    return Part(
        worker=job.worker, latency=parts["latency"], service=parts["service"],
        send_lag=parts["send_lag"], errors=parts["errors"],
        generator_lag=parts["generator_lag"], intervals=intervals,
        completed_per_s=done.tolist(), scheduled=scheduled, sent=int(intended.size),
        warmup_requests=int((~measured).sum()), measured=int(measured.sum()),
        ok=int(ok.sum()), failed=int((bad & (status == ERROR)).sum()),
        timeouts=int((bad & (status == TIMEOUT)).sum()), dropped=dropped, cpu_s=cpu_s,
        wall_s=wall_s, busy=busy,
        last_end_ns=int(end_rel.max()) if end_rel.size else 0,
        crash="\n".join(ln.crash for ln in lanes if ln.crash),
        first_error=next((ln.first_error for ln in lanes if ln.first_error), ""))


def _close(client) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        close()


def run_job(job: Job, start_at: Callable[[], int], clock=None) -> Part:
    """Run one worker's share in this process: connect, wait for t0, send, summarize."""
    clock = clock or Clock(job.threads, job.spin_us)
    client = job.target()
    try:
        t0 = start_at()
        cpu0, wall0 = time.process_time(), clock.now()
        lanes = _run_lanes(job, client, t0, clock)
        cpu_s, wall_s = time.process_time() - cpu0, (clock.now() - wall0) / 1e9
    finally:
        _close(client)
    return _summarize(job, lanes, t0, cpu_s, wall_s)


def _worker_main(job_path: str, worker: int, ready, go, t0_value, out) -> None:
    """Entry point of a spawned worker process.

    The job is read from a file rather than passed as a Process argument: the spawn start
    method writes arguments into a pipe whose read end the parent keeps open until the
    write is done, so a job larger than the pipe (the default workload is 2 MiB) blocks the
    parent forever when the child dies before reading it, as it does when it re-runs an
    unguarded script."""
    try:
        with open(job_path, "rb") as f:
            job = pickle.load(f)

        def start_at() -> int:
            ready.put((worker, "ready", ""))
            go.wait()
            return int(t0_value.value)
        part = run_job(job, start_at)
        out.put((worker, "done", part))
    except BaseException:  # noqa: BLE001 - report, then exit
        try:
            ready.put((worker, "error", traceback.format_exc()))
        finally:
            out.put((worker, "error", traceback.format_exc()))


# --------------------------------------------------------------------------- driver
def _progress_thread(total_s: float, enabled: bool, stop: threading.Event):
    if not enabled:
        return None
    from tqdm import tqdm

    def loop() -> None:
        with tqdm(total=round(total_s, 1), unit="s", desc="load", leave=False,
                  bar_format="{desc}: {bar} {n:.1f}/{total:.1f} s") as bar:
            t = time.monotonic()
            while not stop.wait(0.25):
                bar.n = round(min(total_s, time.monotonic() - t), 1)
                bar.refresh()
    th = threading.Thread(target=loop, daemon=True, name="loadgen-progress")
    th.start()
    return th


def plan(schedule: Schedule | ClosedLoop, *, processes: int, concurrency: int,
         warmup: float, queries: np.ndarray, target, timeout: float | None,
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


_MAIN_GUARD = ("workers are spawned and re-run the main script, so a script that calls "
               "loadgen.run with processes > 1 must put that call under "
               "`if __name__ == \"__main__\":`")


def _write_jobs(jobs: list[Job], directory: str) -> list[str]:
    """Pickle each job to a file for its worker (see ``_worker_main`` for why a file)."""
    paths = []
    for job in jobs:
        path = os.path.join(directory, f"job-{job.worker}.pickle")
        try:
            with open(path, "wb") as f:
                pickle.dump(job, f, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise LoadgenError(f"the client factory cannot be sent to worker processes ({exc}); "
                               "with processes > 1 pass a variant name, a module-level "
                               "function or a functools.partial of one") from None
        paths.append(path)
    return paths


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _collect(q, procs: dict[int, Any], *, deadline: float, stage: str,
             hint: str = "") -> dict[int, Any]:
    """One message per worker from ``q``.  Raise as soon as a worker reports an error, exits
    without a message, or the deadline passes: the parent never waits on a dead worker."""
    got: dict[int, Any] = {}

    def take(msg) -> None:
        worker, state, info = msg
        if state == "error":
            raise LoadgenError(f"load worker {worker} failed {stage}:\n{info}")
        got[worker] = info

    while len(got) < len(procs):
        try:
            take(q.get(timeout=0.2))
            continue
        except queue_mod.Empty:
            pass
        dead = [k for k, p in procs.items() if k not in got and p.exitcode is not None]
        if dead:
            # a worker's queue is flushed before it exits: read what it sent before dying
            try:
                while True:
                    take(q.get(timeout=0.5))
            except queue_mod.Empty:
                pass
            dead = [k for k in dead if k not in got]
            if dead:
                p = procs[dead[0]]
                raise LoadgenError(f"load worker process {p.name} {_exit_text(p.exitcode)} "
                                   f"{stage}{hint}")
        if time.monotonic() > deadline:
            raise LoadgenError(f"load workers {sorted(set(procs) - set(got))} did not report "
                               f"{stage} in time")
    return got


def _stop(procs, *, failed: bool) -> None:
    """Reap the workers: a finished one exits by itself; after a failure, stop the rest now."""
    for p in procs:
        if failed and p.is_alive():
            p.terminate()
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)


def execute(jobs: list[Job], *, start_delay: float = 0.05, progress: bool = False,
            total_s: float = 0.0, clock=None, startup_timeout: float = 120.0) -> list[Part]:
    """Run the jobs: inline for one job, else one spawned process per job."""
    stop = threading.Event()
    if len(jobs) == 1:
        clk = clock or Clock(jobs[0].threads, jobs[0].spin_us)

        def start_at() -> int:
            _progress_thread(total_s, progress, stop)
            return clk.now() + int(start_delay * NS)
        try:
            return [run_job(jobs[0], start_at, clk)]
        finally:
            stop.set()
    if clock is not None:
        raise LoadgenError("a custom clock only works with processes=1")
    if getattr(mp.current_process(), "_inheriting", False):
        # we are a worker re-running an unguarded main script: say so instead of
        # multiprocessing's RuntimeError
        raise LoadgenError("loadgen.run was called while a worker process was starting; "
                           + _MAIN_GUARD)
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    t0_value = ctx.Value("q", 0, lock=False)
    with tempfile.TemporaryDirectory(prefix="lootlab-loadgen-") as tmp:
        paths = _write_jobs(jobs, tmp)
        procs = {job.worker: ctx.Process(target=_worker_main,
                                         args=(path, job.worker, ready, go, t0_value, out),
                                         name=f"loadgen-worker-{job.worker}", daemon=True)
                 for job, path in zip(jobs, paths)}
        failed = False
        try:
            for p in procs.values():
                p.start()
            _collect(ready, procs, deadline=time.monotonic() + startup_timeout,
                     stage="before it started", hint=f" (the usual cause: {_MAIN_GUARD})")
            t0_value.value = time.perf_counter_ns() + int(start_delay * NS)
            go.set()
            _progress_thread(total_s, progress, stop)
            parts = _collect(out, procs, deadline=time.monotonic() + total_s + startup_timeout,
                             stage="before it reported its measurements")
            return [parts[k] for k in sorted(parts)]
        except BaseException:
            failed = True
            raise
        finally:
            stop.set()
            _stop(procs.values(), failed=failed)


def run(target: str | Callable[[], Any], schedule: Schedule | ClosedLoop, *,
        processes: int = 1, concurrency: int = 1, warmup: float = 0.5,
        workload: np.ndarray | None = None, radius: int = 64, timeout: float | None = None,
        grace: float | None = None, label: str | None = None, progress: bool = False,
        max_busy: float = 0.97, spin_us: float | None = None, clock=None):
    """Drive ``schedule`` at a variant (name) or client factory; return a ``LoadResult``.

    ``processes`` > 1 spawns workers (each connects on its own; a factory must pickle).
    ``processes=1`` runs in this process.  ``warmup`` seconds at the schedule's starting
    rate go first and are discarded (and counted).  ``workload`` is an (n, 4) array of
    ``x y z r`` queries, cycled; by default the overlay workload on the default index
    (``lootlab.overlay.overlay_queries``, seeded with the schedule's seed, r = ``radius``).
    ``timeout`` counts slower answers as timeouts (kept out of the latency histogram, in
    the errors one).  ``grace`` is how long past the schedule a late generator may go on
    sending before the rest count as unsent (default max(1 s, 25 %)).  ``spin_us``: how
    long before each due time a sender stops sleeping and spins (default 200 us; more
    gives tighter send times on a busy machine, at the cost of CPU a local server needs).
    """
    from .results import combine

    if workload is None:
        n = len(schedule) if isinstance(schedule, Schedule) else 65_536
        workload = default_workload(int(min(max(n, 1), 65_536)), seed=schedule.seed,
                                    radius=radius)
    queries = np.asarray(workload, dtype=np.int64)
    if queries.ndim != 2 or queries.shape[1] != 4 or len(queries) == 0:
        raise LoadgenError(f"workload must be an (n, 4) array of x y z r, got shape "
                           f"{queries.shape}")
    label = label or target_label(target)
    target = client_factory(target)
    jobs = plan(schedule, processes=processes, concurrency=concurrency, warmup=warmup,
                queries=queries, target=target, timeout=timeout, grace=grace)
    for job in jobs:
        job.spin_us = spin_us
    parts = execute(jobs, progress=progress, total_s=warmup + schedule.duration, clock=clock)
    crashes = [p.crash for p in parts if p.crash]
    if crashes:
        raise LoadgenError("a load sender crashed:\n" + crashes[0])
    return combine(parts, schedule, variant=label,
                   processes=len(jobs), concurrency=jobs[0].threads if jobs else concurrency,
                   warmup=warmup, max_busy=max_busy)


__all__ = ["run", "plan", "execute", "run_job", "Job", "Part", "Clock", "LoadgenError",
           "client_factory", "default_workload", "OK", "ERROR", "TIMEOUT"]
