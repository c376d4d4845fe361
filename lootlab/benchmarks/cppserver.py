"""Benchmark: the C++ loot server next to the Python one, and against the server's targets.

``python -m lootlab.benchmarks.cppserver [--queries 300] [--radius 64] [--rounds 3]``

Same index, same ``near`` overlay queries (``lootlab.overlay.overlay_queries``, around
sampled loot), same client variants, TLS on loopback.  For each server (the Python one,
``LoopbackServer`` with its default fast encoder; the C++ one, ``CppServer``):

* sequential ``grpc-tls-pooled`` ``near``: p50 and p99 per call;
* the server's CPU seconds per request (``ServerStats.cpu_seconds`` before / after the
  pooled pass, divided by the requests it counted);
* the server's own compute time p50 (its ``lootlab-compute-us`` trailing metadata);
* sequential ``grpc-tls-packed`` ``near`` p50 (the hand-coded answer).

The servers take turns, ``--rounds`` times over (the order swapped every round, so a
change in the machine's load hits both alike); each figure is the median over rounds.
In this process: the client's decode of the same answers (``Records.FromString`` plus
``lootlab.clients._decode_messages``, the grpc-tls-pooled client's row parse) and the
bare ``FromString``.  The issue's targets are checked, never asserted (shared machine):
server CPU per request < 10 % of the client's decode; pooled ``near`` p50 within 3x of
the bare ``FromString`` of the same answers.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..console import handle_errors
from .encode import _per_call_us as _best_us  # best of N passes, us per item

Query = tuple[int, int, int, int]
SERVERS = ("python", "c++")


def client_decode(results: list[np.ndarray], generation: int) -> dict[str, np.ndarray]:
    """Per-answer us of the pooled client's decode: FromString, then its row parse."""
    from ..clients import _decode_messages  # the client's own row parse, read-only use
    from ..remote import encode
    from ..remote import loot_pb2 as pb

    wire = [encode.encode_records(r, generation) for r in results]
    messages = [pb.Records.FromString(b) for b in wire]
    bare = _best_us(pb.Records.FromString, wire)
    parse = _best_us(_decode_messages, messages)
    return {"FromString": bare, "row parse": parse, "decode": bare + parse}


def _timed_pass(client: Any, queries: list[Query]) -> np.ndarray:
    clock = time.perf_counter_ns
    lat = np.empty(len(queries))
    for i, (x, y, z, r) in enumerate(queries):
        t0 = clock()
        client.near(x, y, z, r)
        lat[i] = (clock() - t0) / 1e3
    return lat


def _compute_us(srv: Any, queries: list[Query]) -> float:
    """Median of the server's own ``lootlab-compute-us`` over the queries (raw channel)."""
    import grpc

    from ..remote import loot_pb2 as pb
    from ..remote import servertiming

    creds = grpc.ssl_channel_credentials(Path(srv.ca).read_bytes())
    with grpc.secure_channel(srv.target, creds) as channel:
        call = channel.unary_unary("/lootlab.v1.LootService/Near",
                                   request_serializer=lambda m: m.SerializeToString())
        found = []
        for x, y, z, r in queries:
            _, c = call.with_call(pb.NearRequest(at=pb.Point(x=x, y=y, z=z), radius=r),
                                  timeout=30)
            timing = servertiming.parse(c.trailing_metadata())
            if timing is not None:
                found.append(timing.compute_us)
    return float(np.median(found)) if found else float("nan")


def measure(srv: Any, queries: list[Query], warmup: int = 30) -> dict[str, float]:
    """One server, started: pooled p50/p99, CPU per request, compute p50, packed p50."""
    from ..targets import connect
    with connect("grpc-tls-pooled", srv) as client:
        _timed_pass(client, queries[:warmup])
        before = srv.stats()
        lat = _timed_pass(client, queries)
        after = srv.stats()
    with connect("grpc-tls-packed", srv) as packed:
        _timed_pass(packed, queries[:warmup])
        packed_lat = _timed_pass(packed, queries)
    served = after["requests"] - before["requests"]
    return {
        "pooled_p50_us": float(np.percentile(lat, 50)),
        "pooled_p99_us": float(np.percentile(lat, 99)),
        "cpu_us_per_request": (after["cpu_seconds"] - before["cpu_seconds"]) / served * 1e6,
        "compute_p50_us": _compute_us(srv, queries),
        "packed_p50_us": float(np.percentile(packed_lat, 50)),
    }


def _server(kind: str, path: Path, threads: int) -> Any:
    if kind == "python":
        from ..remote.loopback import LoopbackServer
        return LoopbackServer(path, tls=True)
    from ..remote.cppserver import CppServer
    return CppServer(path, tls=True, threads=threads)


def run(*, queries: int = 300, radius: int = 64, seed: int = 0, index: str | None = None,
        rounds: int = 3, threads: int = 4) -> dict[str, Any]:
    from ..index import open_index
    from ..overlay import overlay_queries
    from ..paths import ensure_default_index

    path = Path(index or ensure_default_index())
    with open_index(path) as idx:
        work: list[Query] = [tuple(int(v) for v in q)     # type: ignore[misc]
                             for q in overlay_queries(idx, queries, seed=seed, radius=radius)]
        results = [idx.near(x, y, z, r) for x, y, z, r in work]
        decode = client_decode(results, idx.generation)
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in SERVERS}
    for i in range(rounds):
        for kind in (SERVERS if i % 2 == 0 else SERVERS[::-1]):
            with _server(kind, path, threads) as srv:
                runs[kind].append(measure(srv, work))
    return {"queries": queries, "radius": radius, "rounds": rounds, "threads": threads,
            "records_mean": float(np.mean([len(r) for r in results])), "decode": decode,
            "servers": {k: {key: float(np.median([r[key] for r in v])) for key in v[0]}
                        for k, v in runs.items()}}


def render(out: dict[str, Any]) -> str:
    dec = {name: float(np.median(t)) for name, t in out["decode"].items()}
    mean_decode = float(np.mean(out["decode"]["decode"]))
    py, cpp = out["servers"]["python"], out["servers"]["c++"]
    lines = [(f"{out['queries']} near queries, r = {out['radius']}, "
              f"{out['records_mean']:.0f} records per answer on average; C++ server with "
              f"{out['threads']} threads; TLS on loopback; median of {out['rounds']} rounds"),
             "",
             (f"client decode per answer (this process): FromString {dec['FromString']:.0f} us "
             f"+ row parse {dec['row parse']:.0f} us = {dec['decode']:.0f} us p50 "
             f"({mean_decode:.0f} us mean)"), "",
             (f"{'server':<10}{'pooled p50':>12}{'p99':>10}{'CPU/req':>10}{'compute p50':>13}"
              f"{'packed p50':>12}")]
    for name, m in (("python", py), ("c++", cpp)):
        lines.append(f"{name:<10}{m['pooled_p50_us']:>10.0f}us{m['pooled_p99_us']:>8.0f}us"
                     f"{m['cpu_us_per_request']:>8.0f}us{m['compute_p50_us']:>11.0f}us"
                     f"{m['packed_p50_us']:>10.0f}us")
    lines.append(f"{'python/c++':<10}{py['pooled_p50_us'] / cpp['pooled_p50_us']:>11.1f}x"
                 f"{py['pooled_p99_us'] / cpp['pooled_p99_us']:>9.1f}x"
                 f"{py['cpu_us_per_request'] / cpp['cpu_us_per_request']:>9.1f}x"
                 f"{py['compute_p50_us'] / max(cpp['compute_p50_us'], 1):>12.1f}x"
                 f"{py['packed_p50_us'] / cpp['packed_p50_us']:>11.1f}x")
    bare = dec["FromString"]
    lines += ["", "checks (the server's targets; the box is shared, so read with the load):"]
    for name, m in (("c++", cpp), ("python", py)):
        cpu, e2e = m["cpu_us_per_request"], m["pooled_p50_us"]
        checks = [
            ("server CPU per request < 10 % of the client's decode (mean)",
             cpu < 0.1 * mean_decode,
             f"{cpu:.0f} us vs {mean_decode:.0f} us = {cpu / mean_decode:.0%}"),
            ("sequential pooled near p50 within 3x of the bare FromString", e2e <= 3 * bare,
             f"{e2e:.0f} us vs {bare:.0f} us = {e2e / bare:.1f}x"),
        ]
        lines += [f"  [{'ok' if ok else 'NO'}] {name}: {claim}: {figures}"
                  for claim, ok, figures in checks]
    lines += ["", ("no target (protobuf's FromString is lazy; the row parse is where the client "
              "decodes):")]
    lines += [f"  {name}: pooled near p50 / the client's whole decode p50: "
              f"{m['pooled_p50_us'] / dec['decode']:.1f}x" for name, m in (("c++", cpp),
                                                                       ("python", py))]
    return "\n".join(lines)


@click.command(cls=handle_errors("python -m lootlab.benchmarks.cppserver"))
@click.option("--queries", type=click.IntRange(10, 100_000), default=300, show_default=True)
@click.option("--radius", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("--index", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Index file [default: the default index].")
@click.option("--rounds", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Turns of each server, alternated; medians reported.")
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True,
              help="The C++ server's handler threads.")
def main(queries: int, radius: int, index: str | None, rounds: int, threads: int) -> None:
    """The C++ server vs the Python one: pooled near p50, server CPU per request."""
    from ..remote.cppserver import find_binary

    find_binary()                            # says how to build it, before any work
    print(f"load average {os.getloadavg()[0]:.2f} at start", file=sys.stderr)
    print(render(run(queries=queries, radius=radius, index=index, rounds=rounds,
                     threads=threads)))
    print(f"load average {os.getloadavg()[0]:.2f} at the end", file=sys.stderr)


if __name__ == "__main__":
    main()
