"""Benchmark: what the server's answer encoding costs next to the client's decoding, and
what a sequential pooled ``near`` costs end to end with each server encoder.

``python -m lootlab.benchmarks.encode [--queries 300] [--radius 64] [--index PATH]``

On the default index, for ``near`` overlay queries (around sampled loot, so in towns):

1. per answer, in this process: the naive python encoder (one ``Record`` per result,
   then ``SerializeToString``), the fast encoder (C, and its numpy fallback), the
   client's ``Records.FromString`` and the client's row parse of the decoded message;
2. a sequential ``grpc-tls-pooled`` client against a loopback server of each kind
   (``sync``: gRPC's thread pool, ``aio``: its asyncio server) with each encoder: p50 per
   call, the server's own compute and queue time (trailing metadata, read on a raw
   channel), the server's CPU seconds per request (``ServerStats``), and the p50 and CPU
   per request of a ``get`` (a one-record answer: what a call costs before any payload);
3. the same servers under ``--rate`` req/s pooled open-loop load (``lootlab.loadgen``):
   the server's CPU per request and in cores next to the load generator's (the client).

The server configurations run in turn, ``--rounds`` times over (alternated, so a change
in the machine's load hits every one alike); each figure is the median over the rounds.

The server's targets, checked (never asserted: this box is shared and noisy): fast
encode >= 20x faster than the python loop; server CPU per request < 10 % of the client's
decode; pooled ``near`` p50 within 3x of the bare ``FromString`` of the same answers.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..console import handle_errors


def _per_call_us(fn: Callable[[Any], Any], args: list[Any], repeat: int = 3) -> np.ndarray:
    """Microseconds of ``fn(a)`` for each ``a``, the best of ``repeat`` passes per item
    (a pass over all items at a time, so caches and the GIL see a realistic mix)."""
    best = np.full(len(args), np.inf)
    clock = time.perf_counter_ns
    for _ in range(repeat):
        for i, a in enumerate(args):
            t0 = clock()
            fn(a)
            best[i] = min(best[i], (clock() - t0) / 1e3)
    return best


def measure_codecs(results: list[np.ndarray], generation: int) -> dict[str, np.ndarray]:
    """Per-answer times (us) of each encoder and of the client's decoding."""
    from ..clients import _decode_messages  # the client's own row parse, read-only use
    from ..remote import encode
    from ..remote import loot_pb2 as pb

    wire = [encode.encode_records(r, generation) for r in results]
    messages = [pb.Records.FromString(b) for b in wire]
    times = {
        "python encoder": _per_call_us(lambda r: encode.encode_records_python(r, generation),
                                       results, repeat=1),
        "numpy encoder": _per_call_us(lambda r: encode.encode_records_numpy(r, generation),
                                      results),
        "client FromString": _per_call_us(pb.Records.FromString, wire),
        "client row parse": _per_call_us(_decode_messages, messages),
    }
    if encode.kernel() == "c":
        times["C encoder"] = _per_call_us(lambda r: encode.encode_records(r, generation),
                                          results)
    times["client decode (both)"] = times["client FromString"] + times["client row parse"]
    return times


def measure_server(path: Path, queries: list[tuple[int, int, int, int]], encoder: str,
                   server: str = "sync", warmup: int = 30, rate: float = 200.0,
                   duration: float = 5.0) -> dict[str, float]:
    """A loopback server of kind ``server`` with ``encoder``: pooled p50, server
    compute/queue p50 and CPU per request, sequentially and at ``rate`` req/s."""
    import grpc

    from ..remote import loot_pb2 as pb
    from ..remote import servertiming
    from ..remote.loopback import LoopbackServer

    clock = time.perf_counter_ns
    from ..targets import connect
    with LoopbackServer(path, tls=True, encoder=encoder, server=server) as srv:
        with connect("grpc-tls-pooled", srv) as client:
            for x, y, z, r in queries[:warmup]:
                client.near(x, y, z, r)
            before = srv.stats()
            lat = np.empty(len(queries))
            for i, (x, y, z, r) in enumerate(queries):
                t0 = clock()
                client.near(x, y, z, r)
                lat[i] = (clock() - t0) / 1e3
            after = srv.stats()
            floor = np.empty(len(queries))
            for i in range(len(queries)):        # a one-record answer: the call's own cost
                t0 = clock()
                client.get(0, 0, 0)
                floor[i] = (clock() - t0) / 1e3
            after_get = srv.stats()
        load = measure_load(srv, queries, rate, duration) if rate > 0 else {}
        creds = grpc.ssl_channel_credentials(Path(srv.ca).read_bytes())
        with grpc.secure_channel(srv.target, creds) as channel:
            call = channel.unary_unary("/lootlab.v1.LootService/Near",
                                       request_serializer=lambda m: m.SerializeToString())
            timings = []
            for x, y, z, r in queries:
                _, c = call.with_call(pb.NearRequest(at=pb.Point(x=x, y=y, z=z), radius=r),
                                      timeout=30)
                timings.append(servertiming.parse(c.trailing_metadata()))
    served = after["requests"] - before["requests"]
    gets = after_get["requests"] - after["requests"]
    return {
        **load,
        "server_cpu_us_per_get": (after_get["cpu_seconds"] - after["cpu_seconds"]) / gets * 1e6,
        "pooled_p50_us": float(np.percentile(lat, 50)),
        "pooled_p99_us": float(np.percentile(lat, 99)),
        "pooled_get_p50_us": float(np.percentile(floor, 50)),
        "server_cpu_us_per_request": (after["cpu_seconds"] - before["cpu_seconds"]) / served * 1e6,
        "server_compute_p50_us": float(np.median([t.compute_us for t in timings if t])),
        "server_queue_p50_us": float(np.median([t.queue_us for t in timings if t])),
    }


def measure_load(srv: Any, queries: list[tuple[int, int, int, int]], rate: float,
                 duration: float) -> dict[str, float]:
    """``rate`` req/s of pooled ``near`` for ``duration`` s at ``srv``: the server's CPU per
    request and in cores (``ServerStats``), the load generator's (``LoadResult.cpu_s``)."""
    from .. import loadgen
    from ..targets import client_factory

    factory = client_factory("grpc-tls-pooled", srv)
    work = np.asarray(queries, dtype=np.int64)
    before = srv.stats()
    res = loadgen.run(factory, loadgen.constant(rate, duration), workload=work)
    after = srv.stats()
    served = after["requests"] - before["requests"]
    cpu = after["cpu_seconds"] - before["cpu_seconds"]
    return {"load_rate": rate, "load_p50_us": res.percentile_us(50),
            "load_server_cpu_us_per_request": cpu / served * 1e6,
            "load_server_cores": cpu / res.wall_s,
            "load_client_cpu_us_per_request": res.cpu_s / served * 1e6,
            "load_client_cores": res.generator_cpu}


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.median([r[key] for r in runs])) for key in runs[0]}


def run(*, queries: int = 300, radius: int = 64, seed: int = 0,
        index: str | None = None, servers: tuple[str, ...] = ("sync", "aio"),
        encoders: tuple[str, ...] = ("fast", "python"), rounds: int = 3,
        rate: float = 200.0, duration: float = 5.0) -> dict[str, Any]:
    from ..index import open_index
    from ..overlay import overlay_queries
    from ..paths import ensure_default_index
    from ..remote import encode

    path = Path(index or ensure_default_index())
    with open_index(path) as idx:
        work = [tuple(int(v) for v in q)
                for q in overlay_queries(idx, queries, seed=seed, radius=radius)]
        results = [idx.near(x, y, z, r) for x, y, z, r in work]
        codecs = measure_codecs(results, idx.generation)
    configs = [(kind, enc) for enc in encoders for kind in servers]
    runs: dict[tuple[str, str], list[dict[str, float]]] = {c: [] for c in configs}
    for _ in range(rounds):
        for kind, enc in configs:
            runs[(kind, enc)].append(measure_server(path, work, enc, kind, rate=rate,
                                                    duration=duration))
    return {"queries": queries, "radius": radius, "kernel": encode.kernel(),
            "records_mean": float(np.mean([len(r) for r in results])), "rounds": rounds,
            "codecs": codecs, "servers": {c: _median(r) for c, r in runs.items()}}


def render(out: dict[str, Any]) -> str:
    from ..remote.server import DEFAULT_SERVER

    codecs, servers = out["codecs"], out["servers"]
    p50 = {name: float(np.median(t)) for name, t in codecs.items()}
    lines = [(f"{out['queries']} near queries, r = {out['radius']}, "
              f"{out['records_mean']:.0f} records per answer on average; "
              f"fast encoder here: {out['kernel']}"), "",
             f"{'per answer (this process)':<28}{'p50 us':>10}{'mean us':>10}"]
    for name, t in codecs.items():
        lines.append(f"{name:<28}{p50[name]:>10.1f}{float(np.mean(t)):>10.1f}")
    lines += ["", f"loopback server, TLS, sequential pooled (median of {out['rounds']} rounds)",
              (f"{'server / encoder':<20}{'near p50':>10}{'p99':>9}{'compute':>9}{'queue':>7}"
               f"{'CPU/near':>10}{'get p50':>9}{'CPU/get':>9}")]
    for (kind, enc), m in servers.items():
        lines.append(f"{kind + ' / ' + enc:<20}{m['pooled_p50_us']:>8.0f}us"
                     f"{m['pooled_p99_us']:>7.0f}us{m['server_compute_p50_us']:>7.0f}us"
                     f"{m['server_queue_p50_us']:>5.0f}us{m['server_cpu_us_per_request']:>8.0f}us"
                     f"{m['pooled_get_p50_us']:>7.0f}us{m['server_cpu_us_per_get']:>7.0f}us")
    loaded = [m for m in servers.values() if "load_rate" in m]
    if loaded:
        lines += ["", (f"at {loaded[0]['load_rate']:g} req/s pooled near, open loop: the "
                       f"server's CPU next to the load generator's (the client)"),
                  (f"{'server / encoder':<20}{'p50':>9}{'server CPU/req':>16}{'cores':>7}"
                   f"{'client CPU/req':>16}{'cores':>7}{'server share':>14}")]
        for (kind, enc), m in servers.items():
            if "load_rate" not in m:
                continue
            share = m["load_server_cores"] / (m["load_server_cores"] + m["load_client_cores"])
            lines.append(f"{kind + ' / ' + enc:<20}{m['load_p50_us']:>7.0f}us"
                         f"{m['load_server_cpu_us_per_request']:>14.0f}us"
                         f"{m['load_server_cores']:>7.2f}"
                         f"{m['load_client_cpu_us_per_request']:>14.0f}us"
                         f"{m['load_client_cores']:>7.2f}{share:>14.0%}")
    fast = p50.get("C encoder", p50["numpy encoder"])
    decode = p50["client decode (both)"]
    bare = p50["client FromString"]
    kinds = sorted({kind for kind, _ in servers})
    default = servers.get((DEFAULT_SERVER, "fast")) or next(iter(servers.values()))
    cpu, e2e = default["server_cpu_us_per_request"], default["pooled_p50_us"]
    speed = p50["python encoder"] / fast
    checks = [
        (f"fast encode >= 20x faster than the python loop (p50, {out['kernel']})",
         speed >= 20, f"{speed:.0f}x"),
        ("numpy fallback vs the python loop (no target)", True,
         f"{p50['python encoder'] / p50['numpy encoder']:.1f}x"),
        (f"server CPU per request < 10 % of the client's decode ({DEFAULT_SERVER} server)",
         cpu < 0.1 * decode, f"{cpu:.0f} us vs {decode:.0f} us = {cpu / decode:.0%}"),
        ("server compute p50 < 10 % of the client's decode",
         default["server_compute_p50_us"] < 0.1 * decode,
         f"{default['server_compute_p50_us']:.0f} us vs {decode:.0f} us"),
        ("sequential pooled near p50 within 3x of the bare FromString", e2e <= 3 * bare,
         f"{e2e:.0f} us vs {bare:.0f} us = {e2e / bare:.1f}x"),
    ]
    if ("sync", "fast") in servers and ("aio", "fast") in servers:
        sync, aio = servers[("sync", "fast")], servers[("aio", "fast")]
        ratio = sync["server_cpu_us_per_request"] / aio["server_cpu_us_per_request"]
        claim = ("aio >= 1.3x less server CPU per near than sync, p50 no worse "
                 "(the bar to make it the default)")
        figures = (f"{ratio:.2f}x less CPU; p50 {aio['pooled_p50_us']:.0f} vs "
                   f"{sync['pooled_p50_us']:.0f} us; CPU per get "
                   f"{aio['server_cpu_us_per_get']:.0f} vs "
                   f"{sync['server_cpu_us_per_get']:.0f} us")
        checks.append((claim, ratio >= 1.3 and aio["pooled_p50_us"] <= sync["pooled_p50_us"],
                       figures))
    kind = DEFAULT_SERVER if (DEFAULT_SERVER, "fast") in servers else kinds[0]
    if (kind, "python") in servers and (kind, "fast") in servers:
        naive = servers[(kind, "python")]["pooled_p50_us"]
        checks.append((f"python-encoder server vs fast, pooled p50 ({kind}; no target)",
                       True, f"{naive / servers[(kind, 'fast')]['pooled_p50_us']:.1f}x"))
    lines += ["", "checks (the server's targets; the box is shared, so read with the load):"]
    lines += [f"  [{'ok' if ok else 'NO'}] {claim}: {figures}" for claim, ok, figures in checks]
    return "\n".join(lines)


@click.command(cls=handle_errors("python -m lootlab.benchmarks.encode"))
@click.option("--queries", type=click.IntRange(10, 100_000), default=300, show_default=True)
@click.option("--radius", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("--index", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Index file [default: the default index].")
@click.option("--servers", default="sync,aio", show_default=True,
              help="Server kinds to measure, comma-separated (sync, aio).")
@click.option("--encoders", default="fast,python", show_default=True,
              help="Server encoders to measure, comma-separated (fast, python).")
@click.option("--rounds", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Passes over every server configuration, alternated; medians reported.")
@click.option("--rate", type=click.FloatRange(0, 5000), default=200.0, show_default=True,
              help="Open-loop pooled load per configuration, req/s (0: skip the load part).")
@click.option("--duration", type=click.FloatRange(1, 600), default=5.0, show_default=True,
              help="Seconds of that load per configuration and round.")
def main(queries: int, radius: int, index: str | None, servers: str, encoders: str,
         rounds: int, rate: float, duration: float) -> None:
    """Encode vs decode per answer; pooled near with each server kind and encoder."""
    import os

    from ..remote.encode import get_encoder
    from ..remote.server import check_server_kind

    kinds = tuple(check_server_kind(k.strip()) for k in servers.split(",") if k.strip())
    encs = tuple(e.strip() for e in encoders.split(",") if e.strip())
    for e in encs:
        get_encoder(e)
    if not kinds or not encs:
        raise click.BadParameter("name at least one server kind and one encoder")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} at start", file=sys.stderr)
    print(render(run(queries=queries, radius=radius, index=index, servers=kinds,
                     encoders=encs, rounds=rounds, rate=rate, duration=duration)))
    print(f"load average {os.getloadavg()[0]:.2f} at the end", file=sys.stderr)


if __name__ == "__main__":
    main()
