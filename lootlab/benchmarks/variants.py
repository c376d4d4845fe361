"""Benchmark: every client variant, one after another, against loopback servers on the
default world, with the overlay workload (``near`` at r = 64).

``python -m lootlab.benchmarks.variants [--queries N] [--radius R] [--index PATH]``

Prints p50/p99 per variant in one table, measured in one run, then the expected shape of
the story as ratio checks (never asserted in tests: this box is shared and noisy):
fresh > resumed > pooled >= packed, plain < pooled, and mmap >= 100x faster than pooled
at p99.  The server's own counters are shown too, so a reader can see that ``fresh``
opened a connection per request and ``resumed`` resumed its TLS sessions.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import click
import numpy as np
import pandas as pd

from ..cli._util import handle_errors

# per-connection variants pay a handshake per call: fewer calls keep the run short
_SLOW = {"grpc-tls-fresh": 0.25, "grpc-tls-resumed": 0.25}


@dataclass
class VariantRun:
    variant: str
    latencies_ns: np.ndarray
    records: int
    tls_requests: int | None
    resumed_requests: int | None


def run(*, queries: int = 2000, radius: int = 64, warmup: int = 100, seed: int = 0,
        index: str | None = None, variants: list[str] | None = None, rounds: int = 10,
        progress: bool = True) -> pd.DataFrame:
    """Measure each variant, one call at a time; one row per variant (microseconds).

    The timed queries are split into ``rounds``; each round runs every variant in turn,
    so a burst of background load on a shared machine falls on all variants alike.
    """
    from tqdm import tqdm

    from ..clients import VARIANTS, connect
    from ..index import open_index
    from ..overlay import overlay_queries
    from ..paths import ensure_default_index
    from ..remote.loopback import LoopbackServer

    path = index or ensure_default_index()
    names = variants or list(VARIANTS)
    with open_index(path) as idx:
        work = overlay_queries(idx, queries + warmup, seed=seed, radius=radius).tolist()
    warm_q, timed_q = work[:warmup], work[warmup:]
    counts = {name: max(rounds, int(queries * _SLOW.get(name, 1.0))) for name in names}
    lat = {name: np.empty(counts[name], np.int64) for name in names}
    total = dict.fromkeys(names, 0)
    done = dict.fromkeys(names, 0)
    clock = time.perf_counter_ns
    with LoopbackServer(path, tls=True) as tls_srv, LoopbackServer(path, tls=False) as plain_srv:
        servers = {name: None if name == "mmap" else plain_srv if name == "grpc-plain" else tls_srv
                   for name in names}
        clients = {name: connect("mmap", index=path) if srv is None else srv.connect(name)
                   for name, srv in servers.items()}
        try:
            for name, client in clients.items():
                for x, y, z, r in warm_q[:20 if name in _SLOW else warmup]:
                    client.near(x, y, z, r)
            bar = tqdm(total=sum(counts.values()), desc="queries", disable=not progress,
                       file=sys.stderr)
            for k in range(rounds):
                for name, client in clients.items():
                    n_here = counts[name] * (k + 1) // rounds - done[name]
                    near, out, start = client.near, lat[name], done[name]
                    for i in range(start, start + n_here):
                        x, y, z, r = timed_q[i % len(timed_q)]
                        t0 = clock()
                        res = near(x, y, z, r)
                        out[i] = clock() - t0
                        total[name] += len(res)
                    done[name] += n_here
                    bar.update(n_here)
            bar.close()
        finally:
            for client in clients.values():
                client.close()
    # The TLS variants share one server above, so its counters cannot be split among
    # them; what each variant does on the wire is counted separately, one at a time.
    runs = [VariantRun(name, lat[name], total[name], None, None) for name in names]
    _count_transport(runs, servers, path)
    rows = []
    for r in runs:
        us = r.latencies_ns / 1e3
        rows.append({"variant": r.variant, "queries": len(us),
                     "p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
                     "mean_us": float(us.mean()), "records_per_query": r.records / len(us),
                     "tls_requests": r.tls_requests, "resumed": r.resumed_requests})
    return pd.DataFrame(rows).set_index("variant")


def _count_transport(runs: list[VariantRun], servers: dict, path) -> None:
    """What each remote variant did on the wire for 20 calls, from the server's counters."""
    from ..remote.loopback import LoopbackServer
    with LoopbackServer(path, tls=True) as tls_srv, LoopbackServer(path, tls=False) as plain_srv:
        for r in runs:
            if servers.get(r.variant) is None:
                continue
            srv = plain_srv if r.variant == "grpc-plain" else tls_srv
            before = srv.stats()
            with srv.connect(r.variant) as client:
                for _ in range(20):
                    client.get(0, 0, 0)
            after = srv.stats()
            r.tls_requests = after["tls_requests"] - before["tls_requests"]
            r.resumed_requests = after["resumed_requests"] - before["resumed_requests"]


def shape_checks(df: pd.DataFrame) -> list[tuple[str, bool, str]]:
    """The expected shape of the story, as (claim, holds, figures) rows."""
    p50, p99 = df["p50_us"], df["p99_us"]
    checks: list[tuple[str, bool, str]] = []

    def has(*names: str) -> bool:
        return all(n in df.index for n in names)

    if has("grpc-tls-fresh", "grpc-tls-resumed"):
        checks.append(("fresh slower than resumed (p50)", p50["grpc-tls-fresh"] > p50["grpc-tls-resumed"],
                       f"{p50['grpc-tls-fresh']:.0f} vs {p50['grpc-tls-resumed']:.0f} us"))
    if has("grpc-tls-resumed", "grpc-tls-pooled"):
        checks.append(("resumed slower than pooled (p50)", p50["grpc-tls-resumed"] > p50["grpc-tls-pooled"],
                       f"{p50['grpc-tls-resumed']:.0f} vs {p50['grpc-tls-pooled']:.0f} us"))
    if has("grpc-tls-packed", "grpc-tls-pooled"):
        checks.append(("packed at or below pooled (p50)", p50["grpc-tls-packed"] <= p50["grpc-tls-pooled"],
                       f"{p50['grpc-tls-packed']:.0f} vs {p50['grpc-tls-pooled']:.0f} us"))
    if has("grpc-plain", "grpc-tls-pooled"):
        checks.append(("plain below pooled (p50)", p50["grpc-plain"] < p50["grpc-tls-pooled"],
                       f"{p50['grpc-plain']:.0f} vs {p50['grpc-tls-pooled']:.0f} us"))
    if has("mmap", "grpc-tls-pooled"):
        ratio = p99["grpc-tls-pooled"] / p99["mmap"]
        checks.append(("mmap >= 100x faster than pooled (p99)", ratio >= 100, f"{ratio:.0f}x"))
    if "grpc-tls-fresh" in df.index and df.at["grpc-tls-fresh", "resumed"] is not None:
        checks.append(("fresh never resumed a TLS session (20 calls)",
                       df.at["grpc-tls-fresh", "resumed"] == 0,
                       f"{int(df.at['grpc-tls-fresh', 'resumed'])} of 20"))
    if "grpc-tls-resumed" in df.index and df.at["grpc-tls-resumed", "resumed"] is not None:
        checks.append(("resumed resumed its TLS sessions (20 calls)",
                       df.at["grpc-tls-resumed", "resumed"] >= 19,
                       f"{int(df.at['grpc-tls-resumed', 'resumed'])} of 20"))
    return checks


def render(df: pd.DataFrame) -> str:
    """The table and the checks as text."""
    show = df.copy()
    base = show.at["mmap", "p99_us"] if "mmap" in show.index else None
    if base:
        base50 = show.at["mmap", "p50_us"]
        show["p50_vs_mmap"] = (show["p50_us"] / base50).map(lambda v: f"{v:.0f}x")
        show["p99_vs_mmap"] = (show["p99_us"] / base).map(lambda v: f"{v:.0f}x")
    for col in ("p50_us", "p99_us", "mean_us"):
        show[col] = show[col].map(lambda v: f"{v:,.1f}")
    show["records_per_query"] = show["records_per_query"].map(lambda v: f"{v:,.0f}")
    for col in ("tls_requests", "resumed"):
        show[col] = show[col].map(lambda v: "-" if v is None or pd.isna(v) else f"{int(v)}")
    show = show.rename(columns={"tls_requests": "tls/20", "resumed": "resumed/20"})
    lines = [show.to_string(), "", "expected shape:"]
    for claim, ok, figures in shape_checks(df):
        lines.append(f"  [{'ok' if ok else 'NO'}] {claim}: {figures}")
    return "\n".join(lines)


def environment() -> str:
    import os
    import platform

    import grpc
    return (f"python {platform.python_version()}, grpcio {grpc.__version__}, "
            f"{os.cpu_count()} cpus, {platform.machine()}")


@click.command(cls=handle_errors("python -m lootlab.benchmarks.variants"),
               help=__doc__.split("\n\n")[0])
@click.option("--queries", type=int, default=2000,
              help="timed queries per pooled variant (per-connection variants run a quarter)")
@click.option("--radius", type=int, default=64)
@click.option("--warmup", type=int, default=100)
@click.option("--seed", type=int, default=0)
@click.option("--index", default=None, help="index file [default: data/loot.idx]")
@click.option("--variants", "variant_names", multiple=True,
              help="variant to run (repeatable, or comma-separated) [default: every variant]")
def main(queries: int, radius: int, warmup: int, seed: int, index: str | None,
         variant_names: tuple[str, ...]) -> None:
    names = [n for item in variant_names for n in item.split(",") if n] or None
    df = run(queries=queries, radius=radius, warmup=warmup, seed=seed, index=index,
             variants=names)
    print(f"lootlab variant benchmark: near r={radius}, overlay workload, sequential, "
          f"loopback servers ({environment()})")
    print(render(df))


if __name__ == "__main__":
    main(prog_name="python -m lootlab.benchmarks.variants")
