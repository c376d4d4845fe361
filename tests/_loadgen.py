"""Helpers for the load generator tests: clients with known behaviour and a virtual clock.

The virtual clock replaces only time (the runner's ``clock=`` hook): the runner, its
histograms and the merging are the real code.  A client advances virtual time by a
known service time, so what the harness must report is known exactly.
"""

from __future__ import annotations

import time

import numpy as np

QUERIES = np.array([[0, 64, 0, 64], [100, 64, -100, 64], [-50, 70, 25, 64]], np.int64)


class VirtualClock:
    """Nanoseconds that move only when waited on or advanced.  ``hiccups`` maps the n-th
    wait (0-based) to extra ns lost there (a generator that was descheduled)."""

    threads = 1

    def __init__(self, start: int = 10**15, hiccups: dict[int, int] | None = None):
        self.t = start
        self.waits = 0
        self.hiccups = hiccups or {}

    def now(self) -> int:
        return self.t

    def wait_until(self, due: int) -> None:
        self.t = max(self.t, due) + self.hiccups.get(self.waits, 0)
        self.waits += 1

    def sleep(self, seconds: float) -> None:
        self.t += int(seconds * 1e9)

    def advance(self, ns: int) -> None:
        self.t += int(ns)


class ServiceClient:
    """Each ``near`` takes the next service time (ns) of a known sequence, in virtual time.
    ``fail_every``: every n-th call raises (after taking its time)."""

    def __init__(self, clock: VirtualClock, service_ns, fail_every: int = 0):
        self.clock = clock
        self.service = [int(v) for v in service_ns]
        self.calls = 0
        self.fail_every = fail_every

    def near(self, x, y, z, r):
        self.clock.advance(self.service[self.calls % len(self.service)])
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError("injected failure")
        return None


def lindley(intended: np.ndarray, service: np.ndarray) -> np.ndarray:
    """Oracle: open-loop latencies of one sender with zero overhead (a plain Python loop)."""
    out = np.empty(len(intended), np.int64)
    free = -(1 << 62)
    for i, (t, s) in enumerate(zip(intended.tolist(), service.tolist())):
        start = max(t, free)
        free = start + s
        out[i] = free - t
    return out


class Noop:
    """A client that does nothing (the generator's own cost)."""

    def near(self, x, y, z, r):
        return None


def noop_factory() -> Noop:
    return Noop()


class Spin:
    """A client whose every call burns ``us`` microseconds of CPU on the sender thread."""

    def __init__(self, us: float):
        self.ns = int(us * 1000)

    def near(self, x, y, z, r):
        end = time.perf_counter_ns() + self.ns
        while time.perf_counter_ns() < end:
            pass


class StallOnce:
    """Answers at once, except one call ``after`` s past the first call, which freezes for
    ``stall`` s (a GC pause, a lost packet, a stop-the-world)."""

    def __init__(self, after: float = 1.0, stall: float = 0.2):
        self.after, self.stall = after, stall
        self.first: float | None = None
        self.stalled = False

    def near(self, x, y, z, r):
        now = time.monotonic()
        if self.first is None:
            self.first = now
        elif not self.stalled and now - self.first >= self.after:
            self.stalled = True
            time.sleep(self.stall)
