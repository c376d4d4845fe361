"""Why a run's tail is what it is: what the kernel saw while it ran.

A p99 of hundreds of milliseconds in a run whose median is 10 ms is a handful of events,
and the histogram cannot say which.  Two kinds were found behind the channel-per-call
swings on the 2-core VM: TCP timers (a dropped SYN waits 1 s, a lost segment the 200 ms
minimum RTO: ``tcpstats``) and CPU starvation (runnable threads of the client or the
server waiting for a core while other work held both, which stalls all senders together
for 100-300 ms and more).  So every run reads, before and after, the kernel's TCP
counters and its CPU pressure (``/proc/pressure/cpu``: the time some runnable task waited
for a CPU), and ``explain`` names what it saw.  Both are machine-wide: they describe the
machine during the run, this run's own processes included.  So a run whose clients open no
connections (a local variant reading its mapped file) is not given the TCP events: another
program connecting meanwhile is not its cause.  Whether they connect is the factory's to
say (``opens_connections``): this module knows nothing of variants.
"""

from __future__ import annotations

import time
from typing import Any

from . import tcpstats

PRESSURE = "/proc/pressure/cpu"
# share of a run during which some runnable task waited for a CPU, above which it is named
PRESSURE_NAMED_SHARE = 0.10


def _cpu_stalled_us() -> int | None:
    """The kernel's running total of microseconds in which some task waited for a CPU."""
    try:
        with open(PRESSURE) as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def start() -> dict[str, Any]:
    """What ``finish`` subtracts: now, the TCP counters, the CPU pressure total."""
    return {"time": time.monotonic(), "tcp": tcpstats.snapshot(),
            "cpu_stalled_us": _cpu_stalled_us()}


def finish(before: dict[str, Any], connects: bool | None = None) -> dict[str, Any]:
    """The run's deltas: ``tcp`` (non-zero counters only), ``seconds``, and
    ``cpu_pressure`` (share of the run in which some runnable task waited for a CPU; None
    where the kernel does not say); ``connects`` (whether the run's clients open
    connections, ``opens_connections``) when known, so ``explain`` can leave a run without
    sockets out of the machine's TCP events."""
    seconds = max(1e-9, time.monotonic() - before["time"])
    tcp = {k: v for k, v in tcpstats.delta(before["tcp"], tcpstats.snapshot()).items() if v}
    stalled, was = _cpu_stalled_us(), before.get("cpu_stalled_us")
    pressure = None if stalled is None or was is None else \
        min(1.0, (stalled - was) / 1e6 / seconds)
    out: dict[str, Any] = {"seconds": seconds, "tcp": tcp, "cpu_pressure": pressure}
    if connects is not None:
        out["connects"] = bool(connects)
    return out


def opens_connections(target: Any) -> bool | None:
    """Whether the clients ``target`` opens make network connections, as its factory says:
    its variant's ``remote`` (a ``lootlab.targets.ClientFactory``), else whether it has an
    ``endpoint`` (None for a local one).  None: a plain callable, which does not say."""
    remote = getattr(getattr(target, "variant", None), "remote", None)
    if isinstance(remote, bool):
        return remote
    try:
        return target.endpoint is not None if hasattr(target, "endpoint") else None
    except Exception:  # noqa: BLE001 - a factory that cannot say has not said
        return None


def explain(tails: dict[str, Any] | None, requests: int | None = None) -> list[str]:
    """Plain words for what the kernel saw during a run that can delay requests (empty
    when nothing notable): TCP timers and drops, CPU starvation; not resets on close.
    TCP events are left out for a run whose clients open no connections (``connects``
    False): on this machine they were another program's and could not delay it."""
    if not tails:
        return []
    tcp = {} if tails.get("connects") is False else (tails.get("tcp") or {})
    out = tcpstats.explain(tcp, requests, delays_only=True)
    pressure = tails.get("cpu_pressure")
    if pressure is not None and pressure >= PRESSURE_NAMED_SHARE:
        out.append(f"CPU starvation: runnable threads waited for a core {pressure:.0%} of "
                   f"the run (other work, or the generator and server themselves, wanted "
                   f"more cores than there are): stalls of every sender at once follow")
    return out


__all__ = ["PRESSURE_NAMED_SHARE", "explain", "finish", "opens_connections", "start"]
