"""The sender's clock: real time, and how to wait for a due time without overshooting.

A sender that is on time sleeps until ~200 us before the due time and spins the rest:
``time.sleep`` alone overshoots by ~60 us, which would show up as send lag.  The runner
takes any object with the same four members (``now``, ``wait_until``, ``sleep``,
``threads``) through its ``clock=`` hook, so tests can drive it in virtual time.
"""

from __future__ import annotations

import time

_SPIN_NS = 200_000        # spin (not sleep) for the last 200 us before a send
_SLEEP_MIN_NS = 300_000   # below this much time to go, do not call sleep at all


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


def tight_timer_slack() -> bool:
    """Ask Linux to wake this thread (and threads it starts later) within 1 us of a sleep's
    end instead of its default 50 us of timer slack: a sender that sleeps without spinning
    (``spin_us=0``, the default under a CPU limit) then oversleeps ~40 us, not ~100 us.
    False where the OS has no such knob."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(29, 1000, 0, 0, 0) == 0     # PR_SET_TIMERSLACK, in ns
    except (OSError, AttributeError):
        return False


__all__ = ["Clock", "tight_timer_slack"]
