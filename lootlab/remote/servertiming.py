"""The server's own time in every answer: queue wait and compute, as trailing metadata.

``lootlab-queue-us``: microseconds the call waited for a worker thread (from gRPC handing
it to the worker pool until a worker picked it up); on the asyncio server, for the event
loop (from gRPC starting the call's task until the task first ran: the time it spent
behind the handlers running before it, see ``loop_task_factory``).
``lootlab-compute-us``: from the handler starting (the request received and decoded)
until the answer was encoded (validation, fault-injection delay, the query, the
encoding; not sending).  Between the two, the worker waits for the request's bytes to
arrive: that is transport, in neither.  Both are decimal integers, on every answer,
errors included.

The server side is ``TimingExecutor`` (passed to ``grpc.server``: its ``submit`` stamps
the time and wraps the call), or ``loop_task_factory`` on the asyncio server's loop, and
``metadata()``; a client reads the pair with ``parse(call.trailing_metadata())`` after
``multicallable.with_call(request)``.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

QUEUE_KEY = "lootlab-queue-us"
COMPUTE_KEY = "lootlab-compute-us"

_local = threading.local()
_task_stamp: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "lootlab_task_stamp", default=None)


@dataclass(frozen=True)
class ServerTiming:
    """What the server says one answer cost it, in microseconds."""

    queue_us: int
    compute_us: int

    @property
    def total_us(self) -> int:
        return self.queue_us + self.compute_us


class TimingExecutor(ThreadPoolExecutor):
    """A worker pool that knows, in each call, when the call was queued and when it
    started.  ``waiting`` counts calls queued and not yet started (tests wait on it);
    the condition is only notified while someone waits on it, so a call pays for a
    plain lock, not for a notification nobody hears."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self.waiting = 0
        self.changed = threading.Condition()
        self._count = threading.Lock()
        self._watchers = 0

    def _moved(self, delta: int) -> None:
        with self._count:
            self.waiting += delta
        if self._watchers:          # read after the change: a watcher that missed it
            with self.changed:      # was counted before it checked, so is notified here
                self.changed.notify_all()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        queued = time.perf_counter_ns()

        def run() -> Any:
            started = time.perf_counter_ns()
            self._moved(-1)
            _local.stamp = (queued, started)
            try:
                return fn(*args, **kwargs)
            finally:
                _local.stamp = None

        self._moved(1)
        try:
            return super().submit(run)
        except BaseException:
            self._moved(-1)
            raise

    def wait_waiting(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` calls wait for a worker (False on timeout)."""
        with self.changed:
            self._watchers += 1
            try:
                return self.changed.wait_for(lambda: self.waiting >= count, timeout)
            finally:
                self._watchers -= 1


def loop_task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
                      ) -> asyncio.Task:
    """The asyncio server's task factory: each task knows when it was created and when it
    first ran (``task_stamp``).  gRPC's asyncio server starts one task per call as the call
    arrives, so the gap is the time the call waited behind the handlers (and other
    callbacks) running on the loop before it: the asyncio counterpart of the pool's queue."""
    queued = time.perf_counter_ns()

    async def stamped() -> Any:
        _task_stamp.set((queued, time.perf_counter_ns()))
        return await coro

    return asyncio.Task(stamped(), loop=loop, **kwargs)


def task_stamp() -> tuple[int, int]:
    """(queued, started) of the running task, in ``perf_counter_ns``; a task not made by
    ``loop_task_factory`` counts as queued and started now."""
    found = _task_stamp.get()
    if found is None:
        now = time.perf_counter_ns()
        return now, now
    return found


def stamp() -> tuple[int, int]:
    """(queued, started) of the call this worker thread runs, in ``perf_counter_ns``; a
    call not run by a ``TimingExecutor`` counts as queued and started now."""
    found = getattr(_local, "stamp", None)
    if found is None:
        now = time.perf_counter_ns()
        return now, now
    return found


def metadata(queue_ns: int, compute_ns: int) -> tuple[tuple[str, str], ...]:
    """The trailing metadata of one answer."""
    return ((QUEUE_KEY, str(max(0, queue_ns) // 1000)),
            (COMPUTE_KEY, str(max(0, compute_ns) // 1000)))


def parse(trailing_metadata: Iterable[Any] | None) -> ServerTiming | None:
    """The server's timing from an answer's trailing metadata (``call.trailing_metadata()``,
    or (key, value) pairs); None when the server sent none (another server, an old one)."""
    found: dict[str, int] = {}
    for item in trailing_metadata or ():
        key, value = item[0], item[1]
        if key in (QUEUE_KEY, COMPUTE_KEY):
            try:
                found[key] = int(value.decode() if isinstance(value, bytes) else value)
            except (ValueError, UnicodeDecodeError):
                return None
    if len(found) != 2 or min(found.values()) < 0:
        return None
    return ServerTiming(found[QUEUE_KEY], found[COMPUTE_KEY])
