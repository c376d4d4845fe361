"""Cost per million queries at fleet size N: measured inputs, then a pure model.

``cpu_per_query(variants, queries=...)`` measures, for each variant, CPU seconds per query
on the client's side and the server's (``cost_cpu``: a client in a process of its own,
queries at a fixed rate, TLS handshakes included where a variant pays them), and the
rebuild's own cost per worker (``cost_rebuild``: CPU per build of the default index, per
unchanged check, S3 GETs and bytes per cycle).  ``cost_inputs(run, memory=...)`` turns
that, and memory per node from the node-memory experiment when there is one, into the
model's ``CostInputs``; ``cost_per_million`` and ``crossover`` (``cost_model``) price them.

Each replica runs its own rebuild worker (the file on every replica); each server of the
remote service does the same for its copy.  A check is one conditional GET: an unchanged
object costs the request and no bytes; a changed one is downloaded whole.

Suggested sizes (timed at a load average of 10-15 on 2 cores): quick ``queries=300,
rate=200, builds=1, checks=3`` (~30 s); standard ``queries=2000, rate=200, builds=3,
checks=10`` (~70 s); full ``queries=10000, rate=500`` and every variant.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .cost_model import CostInputs, Prices, RebuildCost, VariantCost, cost_per_million, crossover

DEFAULT_VARIANTS = ("mmap", "grpc-tls-fresh", "grpc-tls-pooled", "grpc-tls-packed")


@dataclass(frozen=True)
class CpuRun:
    """``rows``: one per variant (``client_cpu_s_per_query``, ``server_cpu_s_per_query``,
    ``server_idle_cores``, ``connections_per_query``...); ``rebuild``: one per rebuild
    cycle measured (``step`` build / check, ``cpu_s``, ``bytes``, ``requests_count``);
    ``meta``: what was run and the load average around it."""

    rows: pd.DataFrame
    rebuild: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


def cpu_per_query(variants: tuple[str, ...] = DEFAULT_VARIANTS, *, queries: int = 2000,
                  rate: float = 200.0, builds: int = 3, checks: int = 10, warm: int = 50,
                  server: str = "auto", radius: int = 64, seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> CpuRun:
    """Measure CPU per query for each variant (``queries`` at ``rate``/s, after ``warm``
    unmeasured ones) and the rebuild's cost (``builds`` full cycles, ``checks`` unchanged
    ones; 0 builds skips it).  Remote variants talk to one loopback server per transport
    (``server``: "auto" is the C++ one when built)."""
    from ..paths import ensure_default_index
    from ..targets import client_factory, default_workload, start_server
    from ..variants import get
    from .cost_cpu import ServerMeter, measure_variant

    say = progress or (lambda _: None)
    load_before = os.getloadavg()
    index = ensure_default_index()
    workload = default_workload(4096, seed=seed, radius=radius)
    servers: dict[bool, tuple[Any, str, ServerMeter, float]] = {}
    rows = []
    try:
        for name in variants:
            v = get(name)
            meter, idle, words = None, 0.0, ""
            if v.remote:
                if v.tls not in servers:
                    srv, words = start_server(server, tls=v.tls)
                    meter = ServerMeter(srv)
                    servers[v.tls] = (srv, words, meter, meter.idle_cores())
                srv, words, meter, idle = servers[v.tls]
                factory = client_factory(name, srv)
            else:
                factory = client_factory(name)
            say(f"cost: CPU per query of {name} ({queries} queries at {rate:g}/s)")
            row = measure_variant(factory, workload, n=queries, rate=rate, meter=meter,
                                  idle_cores=idle, warm=warm)
            rows.append({"variant": name, "remote": v.remote,
                         "server": words if v.remote else "n/a: no server", **row})
    finally:
        for srv, *_ in servers.values():
            srv.stop()
    rebuild = pd.DataFrame()
    if builds > 0:
        say(f"cost: the rebuild's own cost ({builds} builds, {checks} unchanged checks)")
        from .cost_rebuild import measure_rebuild
        rebuild = measure_rebuild(builds=builds, checks=checks)
    meta = {"variants": list(variants), "queries": queries, "rate_per_s": rate,
            "warm": warm, "builds": builds, "checks": checks, "server": server,
            "index": str(index), "index_bytes": index.stat().st_size,
            "cpu_source": "getrusage(RUSAGE_SELF) of a client process of its own; the "
                          "server's own getrusage through its stats call",
            "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg())}
    return CpuRun(pd.DataFrame(rows), rebuild, meta)


def rebuild_cost(rebuild: pd.DataFrame, index_bytes: float | None = None) -> RebuildCost:
    """The model's ``RebuildCost`` from measured cycles (medians: one slow cycle on a
    busy machine should not set the price)."""
    built = rebuild[rebuild["step"] == "build"]
    checked = rebuild[rebuild["step"] == "check"]
    if built.empty:
        raise ValueError("no build was measured: run cpu_per_query with builds >= 1")
    return RebuildCost(
        build_cpu_s=float(built["cpu_s"].median()),
        check_cpu_s=float(checked["cpu_s"].median()) if len(checked) else 0.0,
        object_bytes=float(built["object_bytes"].iloc[0]),
        index_bytes=float(index_bytes or built["index_bytes"].median()),
        requests_per_check=float(pd.concat([built, checked])["requests_count"].median()))


def cost_inputs(run: CpuRun, memory: Mapping[str, Mapping[str, float]] | None = None,
                *, response_bytes_per_query: Mapping[str, float] | None = None) -> CostInputs:
    """The model's inputs from a ``CpuRun``.

    ``memory``: per variant, ``client_bytes`` (per replica: the local variant's process
    with its index mapped, or a remote variant's client process) and ``server_bytes``
    (remote), with one copy of the index, as the node-memory experiment measures them.
    Where it is absent the index file's size stands in (the local variant's replica, and
    a remote variant's server; a remote client then counts nothing), and
    ``memory_source`` says so."""
    rb = rebuild_cost(run.rebuild)
    variants = []
    for _, r in run.rows.iterrows():
        mem = (memory or {}).get(r["variant"])
        if mem is not None:
            client, srv, source = float(mem.get("client_bytes", 0.0)), \
                float(mem.get("server_bytes", 0.0)), "measured (node memory)"
        elif r["remote"]:
            client, srv = 0.0, rb.index_bytes
            source = "assumed: the index file's size on each server, nothing per client"
        else:
            client, srv = rb.index_bytes, 0.0
            source = "assumed: the index file's size per replica"
        variants.append(VariantCost(
            r["variant"], bool(r["remote"]), float(r["client_cpu_s_per_query"]),
            float(r["server_cpu_s_per_query"]), float(r["server_idle_cores"]),
            client_bytes=client, server_bytes=srv, memory_source=source,
            response_bytes_per_query=float((response_bytes_per_query or {}).get(
                r["variant"], 0.0))))
    return CostInputs(tuple(variants), rb)


__all__ = [
    "DEFAULT_VARIANTS",
    "CpuRun",
    "Prices",
    "cost_inputs",
    "cost_per_million",
    "cpu_per_query",
    "crossover",
    "rebuild_cost",
]
