"""The sender's clock: real time, and how to wait for a due time without overshooting.

A sender sleeps until a margin before the due time and spins the rest: ``time.sleep``
alone overshoots, by ~60 us on a busy machine and by hundreds of microseconds at p99 on
an idle VM, which would show up as send lag.  The margin is learned from the sender's own
oversleeps (a high quantile of them), not fixed.  A real-time
sender (``priority``) is woken by the kernel ahead of other work, so its sleeps end
15-30 us late at p99 even with every core busy; it sleeps until a learned margin before
the due time (a high quantile of its recent oversleeps) and spins only that margin.
Spinning 200 us before every send would burn most of a core at 10 k/s and run into the
kernel's real-time throttling (95 % of each CPU per second), which stalls a thread for
50 ms: far worse than the wake-up it saves.

Which of the two wins depends on the machine, so each run measures it
(``calibrate_wakes``, a few milliseconds before the first send).  On a quiet machine
nothing preempts a spinning sender, and a VM whose cores idle wakes sleepers late whatever
their priority (100-800 us at p99: measured here), so the senders drop to the highest
normal weight (``priority.demote``) and spin, their margin learned.  Where other work
holds the cores (more runnable threads than cores) a spinner loses whole scheduler slices
to it, while a real-time sleeper preempts it on waking, 15-30 us late: the senders stay
real-time and sleep.  At high rates even the
learned margin leaves little to sleep, and a real-time thread that spins most of the time
would be throttled: a sender whose CPU duty over the last window passed ``_RT_MAX_DUTY``
sleeps all the way to its next due times for a window, accepting the wake-up error
(15-30 us when the cores are busy) instead of spinning; one that never waits (always
late) drops to the highest normal weight instead.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

_SPIN_NS = 200_000        # the margin a sender starts from: spin the last 200 us
_MARGIN_CAP_NS = 1_000_000  # never spin more than 1 ms before a send
_MARGIN_MIN_NS = 3_000
_GUARD_NS = 2_000          # added to the learned oversleep
_SLEEP_MIN_NS = 5_000      # a sleep shorter than this costs more than it saves
_RISE = 0.25               # follow a longer oversleep quickly ...
_FALL = 0.01               # ... and a shorter one slowly: the margin sits at a high quantile
_RT_MAX_DUTY = 0.8         # real-time CPU share past which a sender saves: sleeps, not spins
_RT_WINDOW_NS = 20_000_000  # how often a real-time sender checks its duty
_RT_SLOW_SHARE = 0.10      # saving sleeps that may wake late before a sender stops saving
_RT_OVER_WINDOWS = 3       # ... while over budget this many windows in a row
_RT_LATE_RUN = 256         # sends in a row without a wait that make a sender "always late"
# real-time sleeps that end later than this at the calibration's p95 are not worth it
_RT_PROMPT_NS = 40_000
_CALIBRATION_SLEEPS = 60
_CALIBRATION_SLEEP_NS = 100_000


@dataclass
class _Duty:
    """One real-time sender thread's CPU budget over the current window."""

    window: int            # when the window began (ns)
    cpu: int               # the thread's CPU time then (ns)
    saving: bool = False   # the last window ran over budget: sleep, do not spin
    rt: bool = True        # still real-time (``Clock.behind`` may drop it)
    late: int = 0          # sends in a row that found the thread late (no wait)
    over_windows: int = 0  # windows in a row over budget
    saved: int = 0         # sleeps to a due time in this window while saving ...
    slow: int = 0          # ... and how many of them woke later than _RT_PROMPT_NS


class Clock:
    """Real time: ``time.perf_counter_ns`` (CLOCK_MONOTONIC, shared by all processes).

    ``spin_us`` fixes how long before each due time a sender stops sleeping and spins (0:
    never spin).  Left at None, the clock learns that margin from its own oversleeps (a
    high quantile of them, up to ``_MARGIN_CAP_NS``): an idle VM wakes a sleeper hundreds
    of microseconds late, a busy one or a real-time sender tens.  ``realtime``: the sender
    runs real-time (``priority.raise_priority``) and keeps within its CPU budget
    (``_duty``); ``demote`` drops the calling thread to normal weight."""

    now = staticmethod(time.perf_counter_ns)

    def __init__(self, threads: int = 1, spin_us: float | None = None,
                 realtime: bool = False, demote: Callable[[], None] | None = None,
                 wake_error_ns: float | None = None):
        self.threads = threads
        self.learn = spin_us is None
        self.cap_ns = _MARGIN_CAP_NS if spin_us is None else int(spin_us * 1000)
        self.spin_ns = self.cap_ns          # kept for callers that read it
        self.realtime = realtime and self.cap_ns > 0
        start = _SPIN_NS if wake_error_ns is None else wake_error_ns
        self.margin_ns = float(min(max(start, _MARGIN_MIN_NS), self.cap_ns))
        self._demote = demote
        self._local = threading.local()     # per sender thread: its CPU budget
        self.demoted = 0                    # sender threads that dropped to normal weight
        self.dropped: dict[str, int] = {}   # ... and why: "late" (flat out), "slow" wakes

    def wait_until(self, due: int) -> None:
        """Sleep to the margin before ``due`` and spin the rest.  A real-time thread over
        its CPU budget (``_duty``) sleeps all the way to ``due`` and accepts the wake-up
        error (15-30 us on a busy machine) instead of spinning."""
        saving = False
        if self.realtime:
            duty = self._duty()
            duty.late = 0
            saving = duty.rt and duty.saving
        clock = time.perf_counter_ns
        margin = 0 if saving or not self.cap_ns else int(self.margin_ns) + _GUARD_NS
        now = clock()
        wake = due - margin
        if wake - now > _SLEEP_MIN_NS:
            time.sleep((wake - now) / 1e9)
            woke = clock()
            if self.learn:
                self._learn(woke - wake)
            if saving:
                duty.saved += 1
                duty.slow += woke - due > _RT_PROMPT_NS
        self._spin(due)

    def _learn(self, over: int) -> None:
        """Move the margin toward a high quantile of the oversleeps: up fast, down slowly."""
        m = self.margin_ns
        m += _RISE * (over - m) if over > m else -_FALL * (m - over)
        self.margin_ns = min(float(self.cap_ns), max(float(_MARGIN_MIN_NS), m))

    def behind(self) -> None:
        """Called by a sender that found itself late.  A real-time sender that never waits
        cannot save CPU by sleeping: late ``_RT_LATE_RUN`` sends in a row while over its
        budget for ``_RT_OVER_WINDOWS`` windows (running flat out, not catching up after a
        hiccup), it drops to normal weight for the rest of the run (``demote``), before the
        kernel's throttling would stall it."""
        if not self.realtime:
            return
        duty = self._duty()
        duty.late += 1
        if duty.rt and duty.over_windows >= _RT_OVER_WINDOWS and duty.late >= _RT_LATE_RUN:
            self._drop(duty, "late")

    def _drop(self, duty: "_Duty", why: str) -> None:
        duty.rt, duty.saving = False, False
        self.demoted += 1
        self.dropped[why] = self.dropped.get(why, 0) + 1
        if self._demote is not None:
            self._demote()

    def _duty(self) -> "_Duty":
        """This real-time sender thread's CPU duty, re-measured every ``_RT_WINDOW_NS``.
        Over ``_RT_MAX_DUTY`` of a core it must save, by sleeping all the way to its due
        times.  Where that made more than ``_RT_SLOW_SHARE`` of those sends later than
        ``_RT_PROMPT_NS`` (sleeps end late: an idle machine), it drops to normal weight and
        spins there instead."""
        duty = getattr(self._local, "duty", None)
        now = time.perf_counter_ns()
        if duty is None:
            duty = self._local.duty = _Duty(now, time.thread_time_ns())
        elif duty.rt and now - duty.window >= _RT_WINDOW_NS:
            cpu = time.thread_time_ns()
            over = (cpu - duty.cpu) / (now - duty.window) > _RT_MAX_DUTY
            slow = duty.saved >= 20 and duty.slow > _RT_SLOW_SHARE * duty.saved
            duty.window, duty.cpu, duty.saved, duty.slow = now, cpu, 0, 0
            duty.over_windows = duty.over_windows + 1 if over else 0
            if slow:
                self._drop(duty, "slow")
            else:
                duty.saving = over
        return duty

    def _spin(self, due: int) -> None:
        clock = time.perf_counter_ns
        if self.threads > 1:
            while clock() < due:     # sleep(0) hands the GIL to the other senders
                time.sleep(0)
        else:
            while clock() < due:
                pass

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _runnable() -> int:
    """Threads running or waiting for a CPU on this machine now (``procs_running`` of
    ``/proc/stat``, the caller included); 0 where the kernel does not say."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("procs_running"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return 0


@dataclass(frozen=True)
class Wakes:
    """What the calibration saw: how late short sleeps ended (p95, ns) and how many
    threads wanted a CPU meanwhile (the median of ``procs_running`` after each wake)."""

    error_ns: float
    runnable: int

    def contended(self, cores: int) -> bool:
        """Other work wanted the cores: more runnable threads than cores."""
        return self.runnable > cores

    def sleep_to_send(self, cores: int) -> bool:
        """Whether a real-time sender should sleep to its sends (not spin): only where
        other work holds the cores (a spinning sender would lose slices to it) and sleeps
        end promptly.  On a quiet machine nothing preempts a spinner, and idle cores
        wake sleepers late."""
        return self.contended(cores) and self.error_ns <= _RT_PROMPT_NS


def wake_error_ns(samples: int = _CALIBRATION_SLEEPS,
                  sleep_ns: int = _CALIBRATION_SLEEP_NS) -> float:
    """How late this thread's short sleeps end (ns, the 95th percentile of ``samples``)."""
    return calibrate_wakes(samples, sleep_ns).error_ns


def calibrate_wakes(samples: int = _CALIBRATION_SLEEPS,
                    sleep_ns: int = _CALIBRATION_SLEEP_NS) -> Wakes:
    """Sleep ``samples`` times: the 95th percentile of how late they ended, and how many
    threads wanted a CPU each time this one woke."""
    clock = time.perf_counter_ns
    over, runnable = [], []
    for _ in range(samples):
        t = clock()
        time.sleep(sleep_ns / 1e9)
        over.append(clock() - t - sleep_ns)
        runnable.append(_runnable())
    over.sort()
    runnable.sort()
    return Wakes(float(over[min(len(over) - 1, int(0.95 * len(over)))]),
                 runnable[len(runnable) // 2])


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


__all__ = ["Clock", "Wakes", "tight_timer_slack", "wake_error_ns", "calibrate_wakes"]
