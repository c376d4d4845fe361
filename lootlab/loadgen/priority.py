"""How the senders are scheduled: raised above other work, so a busy machine cannot make
the instrument coarser than what it measures.

Measured on a 2-core VM with two CPU-bound processes beside the generator: at normal
priority a sleeping sender wakes milliseconds late (the other processes hold both cores)
and its own send error reaches 4-6 ms at p99; as a real-time thread (``SCHED_FIFO``) it
preempts them on wake-up and sleeps end 15-30 us late at p99.  Real-time threads that
spin would hit the kernel's real-time throttling (95 % of each CPU per second by
default) and stall for 50 ms, so a real-time sender sleeps until just before each due
time (``clock.Clock``) and spins only the last few microseconds.

Three policies, tried in order where ``mode="auto"``:

* ``realtime``: ``SCHED_FIFO`` at a low priority for every thread of the process (threads
  started later inherit it), so no thread of the generator holding the GIL can be
  preempted by other work while a sender waits for it;
* ``nice``: the highest CFS weight allowed (nice -20 as root), where real-time scheduling
  is refused (no privilege, or a cgroup with no real-time budget);
* ``normal``: nothing changed (not permitted, or asked for).

Never under a CPU limit: a real-time thread escapes the CFS quota that emulates the
container, which is the condition being measured.  The kernel's real-time throttling
stays on, so even a runaway sender leaves 5 % of each CPU to the system under test.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

#: Low on purpose: above every normal process, below the kernel's own real-time threads
#: and the network proxy's (``conditions._timer.realtime`` asks for 1; a sender above it
#: would delay the proxy's wake-ups, so the generator stays at the same level).
REALTIME_PRIORITY = 1
NICE = -20
MODES = ("auto", "realtime", "nice", "normal")


@dataclass
class Raised:
    """What was changed, so ``restore`` can put it back; ``text`` is what results carry."""

    policy: str                      # "SCHED_FIFO 1", "nice -20" or "normal"
    note: str = ""                   # why not higher, where it was refused
    saved: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # tid: policy, prio, nice

    @property
    def text(self) -> str:
        return self.policy + (f" ({self.note})" if self.note else "")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        from .errors import LoadgenError
        raise LoadgenError(f"priority must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def _state(tid: int) -> tuple[int, int, int]:
    return (os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority,
            os.getpriority(os.PRIO_PROCESS, tid))


def raise_priority(mode: str = "auto") -> Raised:
    """Raise every thread of this process as ``mode`` allows; never raises an error.  The
    previous policy of each thread is kept in the result for ``restore``."""
    check_mode(mode)
    if mode == "normal" or not hasattr(os, "sched_setscheduler"):
        return Raised("normal", "" if mode == "normal" else "no scheduling control here")
    tids = _threads()
    saved = {}
    for tid in tids:
        try:
            saved[tid] = _state(tid)
        except OSError:
            continue
    note = ""
    if mode in ("auto", "realtime"):
        try:
            for tid in saved:
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
            return Raised(f"SCHED_FIFO {REALTIME_PRIORITY}", saved=saved)
        except OSError as exc:
            note = f"real-time scheduling refused: {exc.strerror or exc}"
            _put_back(saved)
            if mode == "realtime":
                return Raised("normal", note, {})
    try:
        for tid in saved:
            os.setpriority(os.PRIO_PROCESS, tid, NICE)
        return Raised(f"nice {NICE}", note, saved)
    except OSError as exc:
        _put_back(saved)
        return Raised("normal", "; ".join(filter(None, [
            note, f"a higher nice level refused: {exc.strerror or exc}"])), {})


def _put_back(saved: dict[int, tuple[int, int, int]]) -> None:
    for tid, (policy, prio, nice) in saved.items():
        try:
            os.sched_setscheduler(tid, policy, os.sched_param(prio))
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError:
            continue        # the thread has ended, or lowering is refused: nothing to do


def restore(raised: Raised) -> None:
    """Put this process's threads back as they were: the ones ``raise_priority`` saw get
    their old policy; threads started since (a client library's) go back to normal."""
    if not raised.saved:
        return
    _put_back(raised.saved)
    for tid in _threads():
        if tid in raised.saved:
            continue
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, 0)
        except OSError:
            continue


def demote() -> None:
    """Drop the calling thread from real-time to the highest normal weight allowed: a
    sender that must spin most of the time (``clock.Clock``) would otherwise run into the
    kernel's real-time throttling and stall for 50 ms."""
    tid = threading.get_native_id()
    try:
        os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, tid, NICE)
    except OSError:
        pass


def demote_process() -> None:
    """``demote`` every thread of this process (threads started later inherit it)."""
    for tid in _threads():
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, NICE)
        except OSError:
            continue


def is_realtime(text: str) -> bool:
    return text.startswith("SCHED_FIFO")


__all__ = ["raise_priority", "restore", "Raised", "check_mode", "is_realtime", "demote", "demote_process", "MODES", "NICE",
           "REALTIME_PRIORITY"]
