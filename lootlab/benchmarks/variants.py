"""Benchmark: every client variant, one after another, against loopback servers on the
default world, with the overlay workload (``near`` at r = 64).

``python -m lootlab.benchmarks.variants [--queries N] [--radius R] [--index PATH]``

Prints p50/p99 per variant in one table, measured in one run, then the expected shape of
the story as ratio checks (never asserted in tests: this box is shared and noisy):
fresh > resumed > pooled >= packed, plain < pooled, and mmap >= 100x faster than pooled
at p99.  The timed queries run as ``--trials`` interleaved trials (each a run of rounds in
which every variant takes its turn): a figure is that of every query, ``[lo-hi]`` the
lowest and highest trial's, and a check whose two sides' ranges overlap says "within
noise" instead of ok or NO.  The server's own counters are shown too, so a reader can see that ``fresh``
opened a connection per request and ``resumed`` resumed its TLS sessions.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import click
import numpy as np
import pandas as pd

from ..console import handle_errors

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
        index: str | None = None, variants: list[str] | None = None, rounds: int = 12,
        trials: int = 3, progress: bool = True) -> pd.DataFrame:
    """Measure each variant, one call at a time; one row per variant (microseconds).

    The timed queries are split into ``rounds``; each round runs every variant in turn,
    so a burst of background load on a shared machine falls on all variants alike.
    Consecutive rounds make up ``trials`` trials: ``p50_lo``/``p50_hi`` (and p99's) are
    the lowest and highest trial's percentile, the spread a difference has to exceed.
    """
    if trials < 1 or rounds < trials:
        raise click.BadParameter(f"need 1 <= trials <= rounds, got trials={trials}, "
                                 f"rounds={rounds}")
    from tqdm import tqdm

    from ..index import open_index
    from ..overlay import overlay_queries
    from ..paths import ensure_default_index
    from ..remote.loopback import LoopbackServer
    from ..targets import connect
    from ..variants import VARIANTS

    path = index or ensure_default_index()
    names = variants or list(VARIANTS)
    with open_index(path) as idx:
        work = overlay_queries(idx, queries + warmup, seed=seed, radius=radius).tolist()
    warm_q, timed_q = work[:warmup], work[warmup:]
    counts = {name: max(rounds, int(queries * _SLOW.get(name, 1.0))) for name in names}
    lat = {name: np.empty(counts[name], np.int64) for name in names}
    total = dict.fromkeys(names, 0)
    done = dict.fromkeys(names, 0)
    # where each trial's queries end in lat[name]: trial t holds rounds [t*R/T, (t+1)*R/T)
    ends: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    with LoopbackServer(path, tls=True) as tls_srv, LoopbackServer(path, tls=False) as plain_srv:
        servers = {name: None if name == "mmap" else plain_srv if name == "grpc-plain" else tls_srv
                   for name in names}
        clients = {name: connect("mmap", index=path) if srv is None else connect(name, srv)
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
                    if (k + 1) * trials // rounds > k * trials // rounds:   # a trial ends
                        ends[name].append(done[name])
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
        parts = np.split(us, ends[r.variant][:-1])
        row = {"variant": r.variant, "queries": len(us), "trials": len(parts)}
        for key, q in (("p50", 50), ("p99", 99)):
            per_trial = [float(np.percentile(part, q)) for part in parts if len(part)]
            row.update({f"{key}_us": float(np.percentile(us, q)),
                        f"{key}_lo": min(per_trial), f"{key}_hi": max(per_trial)})
        rows.append({**row, "mean_us": float(us.mean()),
                     "records_per_query": r.records / len(us),
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
            from ..targets import connect
            with connect(r.variant, srv) as client:
                for _ in range(20):
                    client.get(0, 0, 0)
            after = srv.stats()
            r.tls_requests = after["tls_requests"] - before["tls_requests"]
            r.resumed_requests = after["resumed_requests"] - before["resumed_requests"]


def _above(df: pd.DataFrame, a: str, b: str, key: str) -> str:
    """"ok" when ``a``'s ``key`` percentile is above ``b``'s in every trial (their ranges do
    not overlap), "NO" when below in every trial, "within noise" when the ranges overlap.
    Rows without trial ranges compare the bare figures."""
    lo_a, hi_a = df.at[a, f"{key}_lo"], df.at[a, f"{key}_hi"]
    lo_b, hi_b = df.at[b, f"{key}_lo"], df.at[b, f"{key}_hi"]
    if lo_a > hi_b:
        return "ok"
    if hi_a < lo_b:
        return "NO"
    return "within noise"


def shape_checks(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The expected shape of the story, as (claim, verdict, figures) rows; verdict is "ok",
    "NO" or "within noise" (the trials' ranges overlap, so neither is shown)."""
    df = df.copy()
    for key in ("p50", "p99"):       # a frame without trial ranges: each figure its own range
        for end in ("lo", "hi"):
            if f"{key}_{end}" not in df:
                df[f"{key}_{end}"] = df[f"{key}_us"]
    p50, p99 = df["p50_us"], df["p99_us"]
    checks: list[tuple[str, str, str]] = []

    def has(*names: str) -> bool:
        return all(n in df.index for n in names)

    def us(name: str) -> str:
        return f"{p50[name]:.0f} [{df.at[name, 'p50_lo']:.0f}-{df.at[name, 'p50_hi']:.0f}]"

    for slow, fast, claim in (("grpc-tls-fresh", "grpc-tls-resumed", "fresh slower than resumed"),
                              ("grpc-tls-resumed", "grpc-tls-pooled", "resumed slower than pooled"),
                              ("grpc-tls-pooled", "grpc-plain", "plain below pooled")):
        if has(slow, fast):
            checks.append((f"{claim} (p50)", _above(df, slow, fast, "p50"),
                           f"{us(slow)} vs {us(fast)} us"))
    if has("grpc-tls-packed", "grpc-tls-pooled"):
        worse = _above(df, "grpc-tls-packed", "grpc-tls-pooled", "p50")
        checks.append(("packed at or below pooled (p50)",
                       {"ok": "NO", "NO": "ok"}.get(worse, worse),
                       f"{us('grpc-tls-packed')} vs {us('grpc-tls-pooled')} us"))
    if has("mmap", "grpc-tls-pooled"):
        ratio = p99["grpc-tls-pooled"] / p99["mmap"]
        worst = df.at["grpc-tls-pooled", "p99_lo"] / df.at["mmap", "p99_hi"]
        best = df.at["grpc-tls-pooled", "p99_hi"] / df.at["mmap", "p99_lo"]
        verdict = "ok" if worst >= 100 else "NO" if best < 100 else "within noise"
        checks.append(("mmap >= 100x faster than pooled (p99)", verdict,
                       f"{ratio:.0f}x [{worst:.0f}-{best:.0f}x across trials]"))
    if "grpc-tls-fresh" in df.index and df.at["grpc-tls-fresh", "resumed"] is not None:
        checks.append(("fresh never resumed a TLS session (20 calls)",
                       "ok" if df.at["grpc-tls-fresh", "resumed"] == 0 else "NO",
                       f"{int(df.at['grpc-tls-fresh', 'resumed'])} of 20"))
    if "grpc-tls-resumed" in df.index and df.at["grpc-tls-resumed", "resumed"] is not None:
        checks.append(("resumed resumed its TLS sessions (20 calls)",
                       "ok" if df.at["grpc-tls-resumed", "resumed"] >= 19 else "NO",
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
    for key in ("p50", "p99"):
        if f"{key}_lo" in show:
            show[f"{key}_us"] = [f"{v:,.1f} [{lo:,.0f}-{hi:,.0f}]" for v, lo, hi in
                                 zip(show[f"{key}_us"], show.pop(f"{key}_lo"),
                                     show.pop(f"{key}_hi"))]
    show["mean_us"] = show["mean_us"].map(lambda v: f"{v:,.1f}")
    show["records_per_query"] = show["records_per_query"].map(lambda v: f"{v:,.0f}")
    for col in ("tls_requests", "resumed"):
        show[col] = show[col].map(lambda v: "-" if v is None or pd.isna(v) else f"{int(v)}")
    show = show.rename(columns={"tls_requests": "tls/20", "resumed": "resumed/20"})
    trials = int(df["trials"].min()) if "trials" in df else 1
    lines = [show.to_string(), "",
             f"p50/p99 of every query, [lowest-highest of {trials} interleaved trials] beside "
             f"it; a check is called only when the trials' ranges do not overlap.",
             "", "expected shape:"]
    for claim, verdict, figures in shape_checks(df):
        lines.append(f"  [{verdict}] {claim}: {figures}")
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
@click.option("--trials", type=click.IntRange(1, 12), default=3, show_default=True,
              help="interleaved trials (groups of the 12 rounds) the spread comes from")
@click.option("--index", default=None, help="index file [default: data/loot.idx]")
@click.option("--variants", "variant_names", multiple=True,
              help="variant to run (repeatable, or comma-separated) [default: every variant]")
def main(queries: int, radius: int, warmup: int, seed: int, trials: int, index: str | None,
         variant_names: tuple[str, ...]) -> None:
    names = [n for item in variant_names for n in item.split(",") if n] or None
    df = run(queries=queries, radius=radius, warmup=warmup, seed=seed, index=index,
             variants=names, trials=trials)
    print(f"lootlab variant benchmark: near r={radius}, overlay workload, sequential, "
          f"loopback servers ({environment()})")
    print(render(df))


if __name__ == "__main__":
    main(prog_name="python -m lootlab.benchmarks.variants")
