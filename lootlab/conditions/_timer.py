"""Timing for the proxy's epoll loop: a CLOCK_MONOTONIC ``timerfd`` for wake-ups finer than
epoll's 1 ms timeout (libc through ctypes; ``fd`` is -1 where that is not available), and
the real-time priority that keeps a busy machine from making those wake-ups late."""

from __future__ import annotations

import ctypes
import os
import time


class Timer:
    """A CLOCK_MONOTONIC timerfd armed at absolute times (None where ctypes cannot)."""

    def __init__(self) -> None:
        self.fd = -1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(29, 1, 0, 0, 0)                       # PR_SET_TIMERSLACK = 1 ns
            fd = libc.timerfd_create(time.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return
        if fd >= 0:
            self.fd = fd
            self._spec = (ctypes.c_long * 4)()
            self._settime = libc.timerfd_settime
            self._ref = ctypes.byref(self._spec)

    def arm(self, at: float) -> None:
        ns = max(int(at * 1e9), 1)
        self._spec[2], self._spec[3] = divmod(ns, 1_000_000_000)
        self._settime(self.fd, 1, self._ref, None)          # TFD_TIMER_ABSTIME


def realtime() -> str:
    """Ask for the lowest real-time priority (SCHED_FIFO 1) so a busy machine does not
    make the proxy's wake-ups late (netem runs in the kernel; this is the nearest a user
    process gets).  Its loop spins only for tens of microseconds at a time, and the
    kernel's RT throttling keeps 5 % of each CPU for others.  Without permission: normal
    priority."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        return "SCHED_FIFO"
    except (OSError, AttributeError):
        return "normal"
