"""The server's own time in every answer: queue wait and compute, as trailing metadata.

``lootlab-queue-us``: microseconds the call waited for a worker thread (from gRPC handing
it to the worker pool until a worker picked it up).  ``lootlab-compute-us``: from the
handler starting (the request received and decoded) until the answer was encoded
(validation, fault-injection delay, the query, the encoding; not sending).  Between the
two, the worker waits for the request's bytes to arrive: that is transport, in neither.
Both are decimal integers, on every answer, errors included.

The server side is ``TimingExecutor`` (passed to ``grpc.server``: its ``submit`` stamps
the time and wraps the call) and ``metadata()``; a client reads the pair with
``parse(call.trailing_metadata())`` after ``multicallable.with_call(request)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

QUEUE_KEY = "lootlab-queue-us"
COMPUTE_KEY = "lootlab-compute-us"

_local = threading.local()


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
    started.  ``waiting`` counts calls queued and not yet started (tests wait on it)."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self.waiting = 0
        self.changed = threading.Condition()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        queued = time.perf_counter_ns()

        def run() -> Any:
            started = time.perf_counter_ns()
            with self.changed:
                self.waiting -= 1
                self.changed.notify_all()
            _local.stamp = (queued, started)
            try:
                return fn(*args, **kwargs)
            finally:
                _local.stamp = None

        with self.changed:
            self.waiting += 1
            self.changed.notify_all()
        try:
            return super().submit(run)
        except BaseException:
            with self.changed:
                self.waiting -= 1
                self.changed.notify_all()
            raise

    def wait_waiting(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` calls wait for a worker (False on timeout)."""
        with self.changed:
            return self.changed.wait_for(lambda: self.waiting >= count, timeout)


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
