"""Benchmark: what the server's answer encoding costs next to the client's decoding, and
what a sequential pooled ``near`` costs end to end with each server encoder.

``python -m lootlab.benchmarks.encode [--queries 300] [--radius 64] [--index PATH]``

On the default index, for ``near`` overlay queries (around sampled loot, so in towns):

1. per answer, in this process: the naive python encoder (one ``Record`` per result,
   then ``SerializeToString``), the fast encoder (C, and its numpy fallback), the
   client's ``Records.FromString`` and the client's row parse of the decoded message;
2. a sequential ``grpc-tls-pooled`` client against a loopback server with each encoder:
   p50 per call, the server's own compute and queue time (trailing metadata, read on a
   raw channel), the server's CPU seconds per request (``ServerStats``), and the p50 of a
   ``get`` (a one-record answer: what a call costs before any payload).

Targets from issue 17, checked (never asserted: this box is shared and noisy): fast
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

from ..cli._util import handle_errors


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
                   warmup: int = 30) -> dict[str, float]:
    """A loopback server with ``encoder``: pooled p50, server compute/queue p50 and CPU
    per request."""
    import grpc

    from ..remote import loot_pb2 as pb
    from ..remote import servertiming
    from ..remote.loopback import LoopbackServer

    clock = time.perf_counter_ns
    with LoopbackServer(path, tls=True, encoder=encoder) as srv:
        with srv.connect("grpc-tls-pooled") as client:
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
    return {
        "pooled_p50_us": float(np.percentile(lat, 50)),
        "pooled_p99_us": float(np.percentile(lat, 99)),
        "pooled_get_p50_us": float(np.percentile(floor, 50)),
        "server_cpu_us_per_request": (after["cpu_seconds"] - before["cpu_seconds"]) / served * 1e6,
        "server_compute_p50_us": float(np.median([t.compute_us for t in timings if t])),
        "server_queue_p50_us": float(np.median([t.queue_us for t in timings if t])),
    }


def run(*, queries: int = 300, radius: int = 64, seed: int = 0,
        index: str | None = None) -> dict[str, Any]:
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
    servers = {name: measure_server(path, work, name) for name in ("fast", "python")}
    return {"queries": queries, "radius": radius, "kernel": encode.kernel(),
            "records_mean": float(np.mean([len(r) for r in results])),
            "codecs": codecs, "servers": servers}


def render(out: dict[str, Any]) -> str:
    codecs, servers = out["codecs"], out["servers"]
    p50 = {name: float(np.median(t)) for name, t in codecs.items()}
    lines = [(f"{out['queries']} near queries, r = {out['radius']}, "
              f"{out['records_mean']:.0f} records per answer on average; "
              f"fast encoder here: {out['kernel']}"), "",
             f"{'per answer (this process)':<28}{'p50 us':>10}{'mean us':>10}"]
    for name, t in codecs.items():
        lines.append(f"{name:<28}{p50[name]:>10.1f}{float(np.mean(t)):>10.1f}")
    lines += ["", (f"{'loopback server, TLS':<28}{'pooled p50':>12}{'p99':>10}"
                   f"{'compute p50':>13}{'queue p50':>11}{'CPU/request':>13}{'get p50':>10}")]
    for name, s in servers.items():
        lines.append(f"{'encoder ' + name:<28}{s['pooled_p50_us']:>10.0f}us"
                     f"{s['pooled_p99_us']:>8.0f}us{s['server_compute_p50_us']:>11.0f}us"
                     f"{s['server_queue_p50_us']:>9.0f}us"
                     f"{s['server_cpu_us_per_request']:>11.0f}us"
                     f"{s['pooled_get_p50_us']:>8.0f}us")
    fast = p50.get("C encoder", p50["numpy encoder"])
    decode = p50["client decode (both)"]
    bare = p50["client FromString"]
    cpu = servers["fast"]["server_cpu_us_per_request"]
    e2e = servers["fast"]["pooled_p50_us"]
    speed = p50["python encoder"] / fast
    checks = [
        (f"fast encode >= 20x faster than the python loop (p50, {out['kernel']})",
         speed >= 20, f"{speed:.0f}x"),
        ("numpy fallback vs the python loop (no target)", True,
         f"{p50['python encoder'] / p50['numpy encoder']:.1f}x"),
        ("server CPU per request < 10 % of the client's decode (FromString + rows)",
         cpu < 0.1 * decode, f"{cpu:.0f} us vs {decode:.0f} us = {cpu / decode:.0%}"),
        ("server compute p50 < 10 % of the client's decode", servers["fast"]
         ["server_compute_p50_us"] < 0.1 * decode,
         f"{servers['fast']['server_compute_p50_us']:.0f} us vs {decode:.0f} us"),
        ("sequential pooled near p50 within 3x of the bare FromString", e2e <= 3 * bare,
         f"{e2e:.0f} us vs {bare:.0f} us = {e2e / bare:.1f}x"),
        ("python-encoder server vs fast, pooled p50 (no target)", True,
         f"{servers['python']['pooled_p50_us'] / e2e:.1f}x"),
    ]
    lines += ["", "checks (issue 17 targets; the box is shared, so read with the load):"]
    lines += [f"  [{'ok' if ok else 'NO'}] {claim}: {figures}" for claim, ok, figures in checks]
    return "\n".join(lines)


@click.command(cls=handle_errors("python -m lootlab.benchmarks.encode"))
@click.option("--queries", type=click.IntRange(10, 100_000), default=300, show_default=True)
@click.option("--radius", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("--index", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Index file [default: the default index].")
def main(queries: int, radius: int, index: str | None) -> None:
    """Encode vs decode per answer, and pooled near with each server encoder."""
    import os
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} at start", file=sys.stderr)
    print(render(run(queries=queries, radius=radius, index=index)))


if __name__ == "__main__":
    main()
