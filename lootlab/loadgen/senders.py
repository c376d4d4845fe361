"""The sender loops: what one thread does with its share of a job, and nothing else.

* Open loop: every intended send time is known up front.  A sender that is on time waits
  for it (``Clock.wait_until``); a sender that is late sends at once, without waiting, and
  never skips a request.  Latency is later taken as ``end - intended``, so a request held
  back by a slow predecessor is charged for the wait (no coordinated omission).
* Closed loop: a fixed number of senders, each sending again as soon as the last answer
  came (plus think time); "intended" is the actual send, which is the omission.
* Timestamps go into plain lists and a status bytearray; histograms are built afterwards
  (``summary``), so the hot loop does no histogram work.
"""

from __future__ import annotations

import resource
import threading
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from .jobs import Job

OK, ERROR, TIMEOUT = 0, 1, 2


class Client(Protocol):
    def near(self, x: int, y: int, z: int, r: int) -> Any: ...


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
    vcsw: int = -1          # voluntary context switches outside the waits for a due time
    cpu_ns: int = 0         # this thread's CPU time over the run


_RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", None)


def _thread_usage() -> tuple[int, int]:
    """(voluntary context switches, CPU ns) of the calling thread; (-1, 0) where the OS
    cannot say.  A sender blocked on answers switches out voluntarily once per call or
    more; one burning CPU (its loop, or an in-process client) hardly ever does."""
    if _RUSAGE_THREAD is None:
        return -1, 0
    r = resource.getrusage(_RUSAGE_THREAD)
    return r.ru_nvcsw, int((r.ru_utime + r.ru_stime) * 1e9)


def _open_sender(lane: _Lane, near: Callable[..., Any], qs: list, gi: int, gstep: int,
                 hard_stop: int, clock: Any) -> None:
    now_fn, wait = clock.now, clock.wait_until
    behind = getattr(clock, "behind", None) or (lambda: None)
    dues = lane.intended
    n = len(dues)
    starts = [0] * n
    ends = [0] * n
    status = bytearray(n)
    nq = len(qs)
    gi %= nq
    idle = 0
    sent = 0
    waits = 0
    if n:
        wait(dues[0])   # the wait for the start is not idle time within the run
    vcsw0, cpu0 = _thread_usage()
    try:
        for i in range(n):
            due = dues[i]
            now = now_fn()
            if now < due:
                wait(due)
                waits += 1
                t = now_fn()
                idle += t - now
                now = t
            elif now > hard_stop:
                break
            else:
                behind()
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
    vcsw1, cpu1 = _thread_usage()
    # each wait for a due time may sleep once: what is left was switched out inside calls
    lane.vcsw = max(0, vcsw1 - vcsw0 - waits) if vcsw0 >= 0 else -1
    lane.cpu_ns = cpu1 - cpu0


def _closed_sender(lane: _Lane, near: Callable[..., Any], qs: list, gi: int, gstep: int,
                   t_start: int, t_end: int, think_s: float, clock: Any) -> None:
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


def _run_lanes(job: Job, client: Client, t0: int, clock: Any) -> list[_Lane]:
    """Run the job's ``threads`` senders (one inline, more in threads) and return their
    lanes.  Requests are dealt round-robin, so each sender sees an evenly thinned copy."""
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


__all__ = ["OK", "ERROR", "TIMEOUT", "Client"]
