"""Production conditions of a load run: the network in front of a remote variant, and a CPU
limit on the client side (the "overlay service replica": generator and client together).

``network`` is applied where the client is made (``apply_network``: a factory that can be
re-routed, as ``lootlab.targets.ClientFactory`` can, gets ``with_network``).  ``cpu_limit``
puts the spawned sending workers in one cgroup with that quota
(``lootlab.conditions.cgroup``), like the processes of one container: each worker is moved in after it connected and before the
parent releases it to its schedule, so no request of the schedule is sent unlimited.  The
throttling counters are read at the start of the measured window and when every worker
has sent its last request (before it builds its histograms, which would count as throttling
nobody's user sees).  Where cgroups cannot be written the run goes on unlimited and says
so in one line (a warning and ``conditions["cpu_limit_note"]``), never silently.
"""

from __future__ import annotations

import math
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .errors import LoadgenError
from .units import plural

#: The keys of ``LoadResult.conditions`` (always all present; None when unset).
CONDITION_KEYS = ("rtt_ms", "jitter_ms", "bandwidth_mbit", "cpu_limit", "cpu_limit_applied",
                  "cpu_limit_note")
THROTTLE_KEYS = ("periods", "throttled_periods", "throttled_ms", "throttled_share")


class CpuLimitWarning(UserWarning):
    """A CPU limit was asked for but could not be applied: the run went on unlimited."""


def apply_network(factory: Callable[[], Any], network: Any) -> Callable[[], Any]:
    """``factory`` reached through ``network`` (as given: the factory checks it): a factory
    that can be re-routed takes it (``with_network``); another callable cannot, so a network
    with one is an error rather than a run on loopback that claims a delay (a null
    ``Network``, which delays nothing, is allowed)."""
    if network is None:
        return factory
    with_network = getattr(factory, "with_network", None)
    if callable(with_network):
        return with_network(network)
    if getattr(network, "is_null", False):
        return factory
    raise LoadgenError(f"network={network!r} needs a factory that can be re-routed "
                       f"(lootlab.targets.client_factory): a plain factory "
                       f"({type(factory).__name__}) decides its own server, so no proxy can "
                       f"be put in front of it")


def conditions(factory: Any, cpu_limit: float | None, *, applied: bool = False,
               note: str | None = None) -> dict[str, Any]:
    """``LoadResult.conditions``: the network the factory applied (None for a local variant
    or a plain factory), the CPU limit asked for, whether it was applied and why not."""
    net = getattr(factory, "network", None)
    out: dict[str, Any] = dict.fromkeys(CONDITION_KEYS)
    if net is not None:
        out.update(rtt_ms=float(net.rtt_ms), jitter_ms=float(net.jitter_ms),
                   bandwidth_mbit=net.bandwidth_mbit)
    if cpu_limit is not None:
        out.update(cpu_limit=float(cpu_limit), cpu_limit_applied=bool(applied),
                   cpu_limit_note=note)
    return out


class Limiter:
    """The cgroup of one run, as ``workers.execute`` uses it: place the workers, then meter
    the measured part (``start`` at release, ``finish`` after the last answer)."""

    def __init__(self, group: Any, warmup_ns: int):
        self.group = group
        self.warmup_ns = warmup_ns
        self._begin: dict | None = None
        self._end: dict | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    def place(self, pids: Sequence[int]) -> None:
        for pid in pids:
            self.group.add(int(pid))

    def start(self, t0_ns: int, marks: Any, workers: int) -> None:
        """Read the counters at t0 + warm-up, and again once ``workers`` marks arrived."""
        def meter() -> None:
            wait = (t0_ns + self.warmup_ns - time.perf_counter_ns()) / 1e9
            if wait > 0 and self._done.wait(wait):
                return
            self._begin = self.group.stats()
            seen = 0
            while seen < workers and not self._done.is_set():
                try:
                    marks.get(timeout=0.2)
                except queue.Empty:
                    continue
                seen += 1
            if seen == workers:
                self._end = self.group.stats()
        self._thread = threading.Thread(target=meter, name="lootlab-cpu-meter", daemon=True)
        self._thread.start()

    def finish(self) -> dict[str, Any] | None:
        """The counters over the measured part (None if it never began)."""
        from ..conditions.cgroup import delta
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._begin is None:
            return None
        return delta(self._begin, self._end or self.group.stats())


@contextmanager
def cpu_limited(cpu_limit: float | None, warmup: float) -> Iterator[tuple[Limiter | None,
                                                                          str | None]]:
    """(limiter, None) inside a cgroup of ``cpu_limit`` cores; (None, note) where none can be
    made (warned once, in one line); (None, None) without a limit."""
    if cpu_limit is None:
        yield None, None
        return
    from ..conditions.cgroup import CpuCgroup, cgroup_unavailable
    from ..conditions.errors import ConditionsError
    why, group = cgroup_unavailable(), None
    if why is None:
        try:
            group = CpuCgroup(cpu_limit)      # the value was checked: this is the machine
        except ConditionsError as exc:
            why = str(exc)
    if group is not None:
        try:
            yield Limiter(group, round(warmup * 1e9)), None
        finally:
            group.close()
        return
    note = f"CPU limit {plural(cpu_limit, 'core')} not applied, ran unlimited: {why}"
    warnings.warn(note, CpuLimitWarning, stacklevel=3)
    yield None, note


def check_limit(cpu_limit: Any) -> float | None:
    if cpu_limit is None:
        return None
    from ..conditions.cgroup import check_cores
    return check_cores(cpu_limit)


def merge_throttle(throttles: Sequence[dict | None]) -> dict[str, Any] | None:
    """Trials' counters summed (the share recomputed); None when no trial has any."""
    got = [t for t in throttles if t]
    if not got:
        return None
    from ..conditions.cgroup import counters
    return counters(sum(int(t["periods"]) for t in got),
                    sum(int(t["throttled_periods"]) for t in got),
                    math.fsum(float(t["throttled_ms"]) for t in got))


def merge_conditions(conds: Sequence[dict]) -> dict[str, Any]:
    """The conditions trials share; a key on which they differ is None."""
    conds = [c for c in conds if c]
    out: dict[str, Any] = dict.fromkeys(CONDITION_KEYS)
    for key in dict.fromkeys([k for c in conds for k in c]):
        values = {repr(c.get(key)) for c in conds}
        out[key] = conds[0].get(key) if len(values) == 1 else None
    return out


def describe(conds: dict[str, Any], throttle: dict[str, Any] | None) -> str:
    """One line for ``LoadResult.describe``: the network and the CPU limit, with throttling."""
    parts = []
    if conds.get("rtt_ms") is not None:
        from ..conditions.network import Network
        parts.append("network " + Network(conds["rtt_ms"], conds.get("jitter_ms") or 0.0,
                                          conds.get("bandwidth_mbit")).label)
    if conds.get("cpu_limit") is not None:
        text = f"CPU limit {plural(float(conds['cpu_limit']), 'core')}"
        if throttle:
            text += ": " + throttle_text(throttle)
        elif not conds.get("cpu_limit_applied"):
            text += f" NOT applied ({conds.get('cpu_limit_note') or 'unknown why'})"
        parts.append(text)
    return "conditions: " + ("; ".join(parts) if parts else "none (loopback, unlimited CPU)")


def throttle_text(throttle: dict[str, Any]) -> str:
    return (f"throttled {int(throttle['throttled_periods']):,} of {int(throttle['periods']):,}"
            f" periods ({float(throttle['throttled_ms']):,.0f} ms)")


def frame_fields(conds: dict[str, Any], throttle: dict[str, Any] | None) -> dict[str, float]:
    """The columns ``to_frame`` and ``summary`` rows gain (NaN where unset)."""
    def num(v: Any) -> float:
        return math.nan if v is None else float(v)
    t = throttle or {}
    return {"rtt_ms": num(conds.get("rtt_ms")), "cpu_limit": num(conds.get("cpu_limit")),
            "throttled_periods": num(t.get("throttled_periods")),
            "throttled_ms": num(t.get("throttled_ms"))}


__all__ = ["CONDITION_KEYS", "THROTTLE_KEYS", "CpuLimitWarning", "Limiter", "apply_network",
           "check_limit", "conditions", "cpu_limited", "describe",
           "frame_fields", "merge_conditions", "merge_throttle", "throttle_text"]
