"""CPU seconds per query on each side: the client in a process of its own, the server
from its own counters, around a fixed number of queries sent at a fixed rate.

The client process (spawned, so nothing else runs in it) opens the variant's client,
warms it up, then sends ``n`` queries paced at ``rate`` by sleeping until each is due;
its CPU is ``getrusage(RUSAGE_SELF)`` (every thread: gRPC's own too) across those
queries.  The same loop with no query in it is timed first and taken out, so what is
left is the queries' cost, TLS handshakes included where a variant makes a channel per
call.  The server's CPU is read from its counters (``cpu_seconds``, the server's
``getrusage``) before and after; the cost of asking is measured and taken out, and so is
what the server burns idle over the same time (reported apart: ``server_idle_cores``).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _cpu_now() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _paced(n: int, rate: float, call: Callable[[int], Any]) -> tuple[float, float, int]:
    """Run ``call(i)`` for i < n, each at its due time; (CPU s, wall s, errors)."""
    period = 1.0 / rate
    errors = 0
    cpu0, t0 = _cpu_now(), time.perf_counter()
    for i in range(n):
        delay = t0 + i * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            call(i)
        except Exception:  # noqa: BLE001 - counted; the figure is per answered query
            errors += 1
    return _cpu_now() - cpu0, time.perf_counter() - t0, errors


def _client_side(factory: Any, queries: np.ndarray, n: int, rate: float, warm: int,
                 pacing: int, conn: Any) -> None:
    """Child process: warm up, time the empty loop, wait for "go", time the queries."""
    try:
        client = factory()
        qs = [tuple(int(v) for v in row) for row in queries]
        nq = len(qs)

        def query(i: int) -> Any:
            x, y, z, r = qs[i % nq]
            return client.near(x, y, z, r)

        for i in range(warm):
            query(i)
        empty_cpu, _, _ = _paced(pacing, rate, lambda i: None)
        conn.send(("ready", empty_cpu / pacing))
        if conn.recv() != "go":
            return
        cpu, wall, errors = _paced(n, rate, lambda i: query(i + warm))
        conn.send(("done", {"cpu_s": cpu, "wall_s": wall, "errors": errors}))
        close = getattr(client, "close", None)
        if callable(close):
            close()
    except BaseException as exc:  # noqa: BLE001 - report, never hang the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _recv(conn: Any, proc: Any, timeout: float) -> tuple[str, Any]:
    deadline = time.monotonic() + timeout
    while not conn.poll(0.2):
        if not proc.is_alive():
            raise RuntimeError(f"the client process exited with code {proc.exitcode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the client process said nothing in {timeout:.0f} s")
    kind, payload = conn.recv()
    if kind == "error":
        raise RuntimeError(f"the client process failed: {payload}")
    return kind, payload


class ServerMeter:
    """A server's CPU seconds from its counters, with the cost of asking taken out."""

    def __init__(self, server: Any):
        self.server = server
        a = self.read()
        b = self.read()
        self.ask_cpu_s = max(0.0, b["cpu_seconds"] - a["cpu_seconds"])

    def read(self) -> dict[str, Any]:
        stats = dict(self.server.stats())
        stats["at"] = time.perf_counter()
        return stats

    def idle_cores(self, seconds: float = 0.5) -> float:
        """CPU the server uses with no queries (its threads' polling), in cores."""
        a = self.read()
        time.sleep(seconds)
        b = self.read()
        return max(0.0, b["cpu_seconds"] - a["cpu_seconds"] - self.ask_cpu_s) / (b["at"] - a["at"])


def measure_variant(factory: Any, queries: np.ndarray, *, n: int, rate: float,
                    meter: ServerMeter | None, idle_cores: float = 0.0, warm: int = 50,
                    pacing: int = 300, timeout: float = 120.0) -> dict[str, Any]:
    """One variant's CPU per query on each side (seconds), from a spawned client."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_client_side, name="lootlab-cost-client",
                       args=(factory, queries, n, rate, warm, min(pacing, n), child),
                       daemon=True)
    proc.start()
    try:
        _, empty_per_iter = _recv(parent, proc, timeout)
        before = meter.read() if meter else None
        parent.send("go")
        _, done = _recv(parent, proc, timeout + n / rate)
        after = meter.read() if meter else None
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)
    answered = n - done["errors"]
    row = {"queries_count": n, "errors_count": done["errors"], "rate_per_s": rate,
           "wall_s": done["wall_s"], "client_gross_cpu_s": done["cpu_s"],
           "pacing_cpu_s_per_query": empty_per_iter,
           "client_cpu_s_per_query": max(0.0, done["cpu_s"] - empty_per_iter * n)
           / max(1, answered)}
    if meter and before and after:
        window = after["at"] - before["at"]
        server_cpu = after["cpu_seconds"] - before["cpu_seconds"] - meter.ask_cpu_s
        row.update({
            "server_gross_cpu_s": server_cpu,
            "server_idle_cores": idle_cores,
            "server_cpu_s_per_query": max(0.0, server_cpu - idle_cores * window)
            / max(1, answered),
            "server_requests_count": int(after["requests"]) - int(before["requests"]) - 1,
            # new client connections the server saw (approximate: loopback may reuse a
            # port); the stats call that closes the window is one of its own
            "connections_per_query": max(0, int(after.get("connections", 0))
                                         - int(before.get("connections", 0)) - 1) / max(1, n)})
    else:
        row.update({"server_gross_cpu_s": 0.0, "server_idle_cores": 0.0,
                    "server_cpu_s_per_query": 0.0, "server_requests_count": 0,
                    "connections_per_query": 0.0})
    return row


__all__ = ["ServerMeter", "measure_variant"]
