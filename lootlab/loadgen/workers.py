"""Running jobs: inline for one job, else one spawned process per job, supervised.

Processes use the spawn start method, so gRPC channels are created inside each worker,
never inherited across a fork; threads inside a process (a job's ``threads``) only help
when the client releases the GIL while it waits, as gRPC does.  The parent never waits
on a dead worker: it notices a worker that exits without reporting and says which one
and how it ended.  ``_worker_main`` must stay a module-level function (spawn re-imports
it by module path).
"""

from __future__ import annotations

import ipaddress
import multiprocessing as mp
import os
import pickle
import queue as queue_mod
import signal
import tempfile
import threading
import time
import traceback
from typing import Any, Callable
from urllib.parse import urlsplit

from ..processes import end_process
from . import priority
from .clock import Clock, calibrate_wakes, tight_timer_slack
from .errors import LoadgenError
from .jobs import Job
from .schedules import NS
from .senders import _run_lanes
from .summary import Part, _summarize
from .ticker import _progress_thread
from .units import plural


def _close(client: Any) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        close()


def local_server(client: Any) -> str:
    """The client's server address when it is on this machine (loopback), else "".

    A server on the generator's machine competes with it for the cores (``health``)."""
    for attr in ("target", "url", "base_url", "endpoint"):
        value = getattr(client, attr, None)
        if not isinstance(value, str) or not value:
            continue
        host = urlsplit(value if "//" in value else "//" + value).hostname or ""
        try:
            if host == "localhost" or ipaddress.ip_address(host).is_loopback:
                return value
        except ValueError:
            continue
    return ""


def run_job(job: Job, start_at: Callable[[], int], clock: Any = None,
            on_sent: Callable[[], None] | None = None) -> Part:
    """Run one worker's share in this process: raise the senders' priority, connect, wait
    for t0, send, put the priority back, summarize.  ``on_sent`` is called once the last
    request was answered, before the summary.  A custom ``clock`` (virtual time) leaves
    the scheduling alone."""
    raised = priority.raise_priority(job.priority if clock is None else "normal")
    try:
        clock = clock or _real_clock(job, raised)
        client = job.target()
        try:
            where = local_server(client)
            split = getattr(client, "split", None)   # a remote client splits its calls' time
            t0 = start_at()
            if split is not None:
                split.start_measuring(t0 + job.warmup_ns)
            cpu0, wall0 = time.process_time(), clock.now()
            lanes = _run_lanes(job, client, t0, clock)
            cpu_s, wall_s = time.process_time() - cpu0, (clock.now() - wall0) / 1e9
            if on_sent is not None:
                on_sent()
        finally:
            _close(client)
    finally:
        priority.restore(raised)
    part = _summarize(job, lanes, t0, cpu_s, wall_s)
    part.local_server = where
    part.split = split.totals() if split is not None else {}
    part.scheduling = raised.text
    why = {"late": "always late, over the real-time CPU budget",
           "slow": "over the CPU budget, and sleeping to each send woke it late"}
    for cause, n in getattr(clock, "dropped", {}).items():
        part.scheduling += (f"; {plural(n, 'sender')} dropped to nice {priority.NICE} "
                            f"({why[cause]})")
    return part


def _real_clock(job: Job, raised: priority.Raised) -> Clock:
    """The senders' clock for how they were scheduled.  Real-time senders sleep until
    just before each send only where other work holds the cores and this machine wakes
    them promptly now (measured: ``clock.calibrate_wakes``); elsewhere (a quiet machine,
    or idle virtual CPUs that wake late) the whole process drops to the highest normal
    weight and its senders spin.  What was chosen is added to ``raised.policy``."""
    if not priority.is_realtime(raised.policy) or job.spin_us == 0:
        return Clock(job.threads, job.spin_us)
    wakes = calibrate_wakes()
    cores = os.cpu_count() or 1
    if wakes.sleep_to_send(cores):
        raised.policy += (f", sleeping (other work held the cores; wake-ups "
                          f"{wakes.error_ns / 1e3:,.0f} us late at p95)")
        return Clock(job.threads, job.spin_us, realtime=True, demote=priority.demote,
                     wake_error_ns=wakes.error_ns)
    priority.demote_process()
    why = ("quiet: nothing to preempt a spinner" if not wakes.contended(cores) else
           f"real-time wake-ups were {wakes.error_ns / 1e3:,.0f} us late at p95")
    raised.policy = f"nice {priority.NICE}, spinning ({why})"
    return Clock(job.threads, job.spin_us)


def _worker_main(job_path: str, worker: int, ready, go, t0_value, out, marks=None) -> None:
    """Entry point of a spawned worker process.

    The job is read from a file rather than passed as a Process argument: the spawn start
    method writes arguments into a pipe whose read end the parent keeps open until the
    write is done, so a job larger than the pipe (the default workload is 2 MiB) blocks the
    parent forever when the child dies before reading it, as it does when it re-runs an
    unguarded script.  Its ready message carries its pid (the parent may move it into a
    cgroup before releasing it); ``marks`` hears when it has sent its last request."""
    try:
        with open(job_path, "rb") as f:
            job = pickle.load(f)
        if job.spin_us == 0:
            tight_timer_slack()    # a sleep-only sender: wake on time, not 50 us late

        def start_at() -> int:
            ready.put((worker, "ready", os.getpid()))
            go.wait()
            return int(t0_value.value)
        part = run_job(job, start_at,
                       on_sent=None if marks is None else (lambda: marks.put(worker)))
        out.put((worker, "done", part))
    except BaseException:  # noqa: BLE001 - report, then exit
        try:
            ready.put((worker, "error", traceback.format_exc()))
        finally:
            out.put((worker, "error", traceback.format_exc()))


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
        end_process(p, stop_now=failed)


def execute(jobs: list[Job], *, start_delay: float = 0.05, progress: bool = False,
            total_s: float = 0.0, clock: Any = None, startup_timeout: float = 120.0,
            limiter: Any = None) -> list[Part]:
    """Run the jobs: inline for one job, else one spawned process per job.  With a
    ``limiter`` (``limits.Limiter``: a CPU-limited cgroup) every job is spawned, even one,
    and each worker is moved into the cgroup after it reported ready and before the
    release: no request of the schedule goes out unlimited."""
    stop = threading.Event()
    if len(jobs) == 1 and limiter is None:
        now = clock.now if clock is not None else Clock.now

        def start_at() -> int:
            _progress_thread(total_s, progress, stop)
            return now() + int(start_delay * NS)
        try:
            return [run_job(jobs[0], start_at, clock)]
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
    marks = ctx.Queue() if limiter is not None else None
    t0_value = ctx.Value("q", 0, lock=False)
    with tempfile.TemporaryDirectory(prefix="lootlab-loadgen-") as tmp:
        paths = _write_jobs(jobs, tmp)
        procs = {job.worker: ctx.Process(target=_worker_main,
                                         args=(path, job.worker, ready, go, t0_value, out,
                                               marks),
                                         name=f"loadgen-worker-{job.worker}", daemon=True)
                 for job, path in zip(jobs, paths)}
        failed = False
        try:
            for p in procs.values():
                p.start()
            pids = _collect(ready, procs, deadline=time.monotonic() + startup_timeout,
                            stage="before it started", hint=f" (the usual cause: {_MAIN_GUARD})")
            if limiter is not None:
                limiter.place([pids[k] for k in sorted(pids)])
            t0_value.value = time.perf_counter_ns() + int(start_delay * NS)
            go.set()
            if limiter is not None:
                limiter.start(t0_value.value, marks, len(procs))
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


__all__ = ["execute", "run_job", "local_server"]
