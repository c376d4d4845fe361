"""The server's side of a load run: its CPU time over the run, read from its own counters.

A target that knows its server offers ``server_stats()`` (a remote variant's
``lootlab.targets.ClientFactory`` does): the lab's server reports the CPU seconds of all its
processes there (``cpu_seconds``).  Sampled once before and
once after the run (outside the measured window), so the run can say how busy the server
was, and the health verdict can tell a saturated server (the system under test reached its
limit) from a generator that could not keep up.  A server that cannot be asked (another
implementation, no stats) gives no figures, never an error.
"""

from __future__ import annotations

import math
import time
from typing import Any

#: A server process whose CPU reaches this many cores is saturated: a Python gRPC server
#: holds the GIL for its handlers, so one process gets at most about one core of work done.
SATURATED_CORES_PER_PROCESS = 0.85


def start(target: Any) -> dict[str, Any] | None:
    """The server's counters now, or None when ``target`` has no server that reports them."""
    ask = getattr(target, "server_stats", None)
    if not callable(ask):
        return None
    try:
        stats = ask(timeout=5.0)
    except Exception:  # noqa: BLE001 - no figures is the answer, the run goes on
        return None
    if not stats or "cpu_seconds" not in stats:
        return None
    return {"ask": ask, "stats": stats, "at": time.perf_counter()}


def finish(before: dict[str, Any] | None) -> dict[str, Any]:
    """``cpu_s`` (server CPU seconds over the run), ``wall_s``, ``cores`` (cpu_s / wall_s),
    ``processes``, ``requests`` (answered in between, warm-up included) and
    ``cpu_per_request_us``; {} without a ``start``."""
    if before is None:
        return {}
    try:
        after = before["ask"](timeout=5.0)
    except Exception:  # noqa: BLE001
        return {}
    wall = time.perf_counter() - before["at"]
    cpu = float(after["cpu_seconds"]) - float(before["stats"]["cpu_seconds"])
    requests = int(after.get("requests", 0)) - int(before["stats"].get("requests", 0))
    return {"cpu_s": cpu, "wall_s": wall, "cores": cpu / wall if wall > 0 else math.nan,
            "processes": int(after.get("processes", 1) or 1), "requests": max(0, requests),
            "cpu_per_request_us": cpu / requests * 1e6 if requests > 0 else math.nan}


def saturated(server: dict[str, Any]) -> bool:
    """True when the server's CPU reached ``SATURATED_CORES_PER_PROCESS`` per process."""
    cores = server.get("cores", math.nan) if server else math.nan
    return not math.isnan(cores) and cores >= SATURATED_CORES_PER_PROCESS * server["processes"]


__all__ = ["SATURATED_CORES_PER_PROCESS", "finish", "saturated", "start"]
