"""Benchmark: the story's remote steps under load against the naive server, the fast one
and the C++ one, side by side (the "before and after" of a competent server).

``python -m lootlab.benchmarks.server [--rate 100] [--duration 8] [--trials 3]``

Loopback servers on the default index: ``python`` (the lab's old server: one protobuf
``Record`` per result in a Python loop), ``fast`` (the Python server with the vectorized
encoder handing gRPC ready bytes) and ``cpp`` (the C++ grpc++ server, when ``make
cpp-server`` has built it).  Every remote step of the story runs at one offered rate
(open loop) against each, trials interleaved (trial 1 of every step on every server,
then trial 2...), so machine drift hits them alike.  Per step and server it prints p50/p99
of the trials pooled (with [lowest-highest trial]), the server's CPU in cores and per
request (its own counters) next to the client's (the generator and its calls) and the
server's share of the two, and where the mean latency went (the client's split of every
call: client serialize, transport + TLS, server queue, server compute, client deserialize).
"""

from __future__ import annotations

import math
from typing import Any

import click
import pandas as pd

from ..console import handle_errors

STEPS = ["grpc-tls-fresh", "grpc-tls-resumed", "grpc-tls-pooled", "grpc-tls-packed"]
SERVERS = ("python", "fast", "cpp")


def _start(kind: str, path: str) -> Any:
    from ..remote.cppserver import CppServer
    from ..remote.loopback import LoopbackServer

    if kind == "cpp":
        return CppServer(path).start()
    return LoopbackServer(path, encoder=kind).start()


def run(*, rate: float = 100.0, duration: float = 8.0, trials: int = 3, warmup: float = 1.0,
        steps: list[str] | None = None, index: str | None = None,
        servers: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per (step, server kind): pooled percentiles, server CPU, mean latency split.
    ``servers`` defaults to every kind of ``SERVERS`` that is available here."""
    from ..experiments import story
    from ..paths import ensure_default_index
    from ..remote.cppserver import find_binary
    from ..remote.loopback import LoopbackError

    path = str(index or ensure_default_index())
    steps = steps or STEPS
    if servers is None:
        try:
            find_binary()
            servers = SERVERS
        except LoopbackError:
            servers = SERVERS[:2]
    results: dict[tuple[str, str], list[Any]] = {}
    started: dict[str, Any] = {}
    try:
        for kind in servers:
            started[kind] = _start(kind, path)
        for trial in range(trials):
            for kind, srv in started.items():
                run_ = story.run_steps(rate, duration, variants=steps, trials=1, server=srv,
                                       warmup=warmup, seed=trial)
                for step, rs in run_.results.items():
                    results.setdefault((step, kind), []).extend(rs)
    finally:
        for srv in started.values():
            srv.stop()
    return _rows(results)


def _rows(results: dict[tuple[str, str], list[Any]]) -> pd.DataFrame:
    from ..loadgen.pooling import pooled

    rows = []
    for (step, kind), trials in results.items():
        pool = pooled(trials)
        p50s = [t.latency_us(50) / 1e3 for t in trials]
        p99s = [t.latency_us(99) / 1e3 for t in trials]
        cores = [t.server.get("cores", math.nan) for t in trials]
        client = [t.generator_cpu for t in trials]   # the client (generator + its calls)
        per_req = [t.server.get("cpu_per_request_us", math.nan) for t in trials]
        split = pd.DataFrame([t.split_us() for t in trials]).mean()
        rows.append({"step": step, "server": kind, "n": pool["n"],
                     "p50_ms": pool["p50_us"] / 1e3, "p50_lo": min(p50s), "p50_hi": max(p50s),
                     "p99_ms": pool["p99_us"] / 1e3, "p99_lo": min(p99s), "p99_hi": max(p99s),
                     "p99_enough": pool["p99_enough"],
                     "server_cores": float(pd.Series(cores).median()),
                     "client_cores": float(pd.Series(client).median()),
                     "server_cpu_per_request_us": float(pd.Series(per_req).median()),
                     "valid": all(t.health.valid for t in trials),
                     **{f"split_{k}_us": float(v) for k, v in split.items()}})
    return pd.DataFrame(rows)


def render(df: pd.DataFrame) -> str:
    """The before/after table, then the mean latency split per step and server."""
    from ..remote.callsplit import COMPONENTS, LABELS

    def span(v: float, lo: float, hi: float) -> str:
        return f"{v:.2f} [{lo:.2f}-{hi:.2f}]"

    table = pd.DataFrame({
        "step": df["step"], "server": df["server"], "n": df["n"],
        "p50 ms": [span(*r) for r in zip(df["p50_ms"], df["p50_lo"], df["p50_hi"])],
        "p99 ms": [span(*r) if ok else "too few samples"
                   for *r, ok in zip(df["p99_ms"], df["p99_lo"], df["p99_hi"], df["p99_enough"])],
        "server cores": df["server_cores"].map(lambda v: f"{v:.2f}"),
        "client cores": df["client_cores"].map(lambda v: f"{v:.2f}"),
        "server share": [f"{s / (s + c):.0%}" if s + c > 0 else "-"
                         for s, c in zip(df["server_cores"], df["client_cores"])],
        "server CPU/req us": df["server_cpu_per_request_us"].map(lambda v: f"{v:,.0f}"),
        "run": df["valid"].map({True: "valid", False: "INVALID"})})
    lines = [table.to_string(index=False)]
    by = df.set_index(["step", "server"])
    for kind in [k for k in dict.fromkeys(df["server"]) if k != "python"]:
        lines += ["", f"{kind} / python, per step (pooled figures):"]
        for step in dict.fromkeys(df["step"]):
            a, b = by.loc[(step, "python")], by.loc[(step, kind)]
            p99 = (f"{b['p99_ms'] / a['p99_ms']:.2f}x" if a["p99_enough"] and b["p99_enough"]
                   else "too few samples")
            cpu = b["server_cpu_per_request_us"] / a["server_cpu_per_request_us"]
            lines.append(f"  {step}: p50 {b['p50_ms'] / a['p50_ms']:.2f}x, p99 {p99}, "
                         f"server CPU per request {cpu:.2f}x")
    parts = ["send_wait", *COMPONENTS]
    names = {"send_wait": "wait to send", **LABELS}
    split = pd.DataFrame({names[p]: df[f"split_{p}_us"].map(lambda v: f"{v:,.0f}")
                          for p in parts if f"split_{p}_us" in df})
    split.insert(0, "server", df["server"])
    split.insert(0, "step", df["step"])
    lines += ["", "mean latency split (us per request, means of the trials):",
              split.to_string(index=False)]
    return "\n".join(lines)


@click.command(cls=handle_errors("python -m lootlab.benchmarks.server"),
               help=__doc__.split("\n\n")[0])
@click.option("--rate", type=click.FloatRange(1, 2000), default=100.0, show_default=True,
              help="offered requests/s for every step (below what grpc-tls-fresh sustains)")
@click.option("--duration", type=click.FloatRange(1, 600), default=8.0, show_default=True,
              help="seconds measured per step and trial")
@click.option("--trials", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--index", type=click.Path(exists=True, dir_okay=False), default=None,
              help="index file [default: the default index]")
def main(rate: float, duration: float, trials: int, index: str | None) -> None:
    import os

    df = run(rate=rate, duration=duration, trials=trials, index=index)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"lootlab server benchmark: {len(STEPS)} remote steps at {rate:g}/s for "
          f"{duration:g} s x {trials} interleaved trials, naive vs fast vs C++ server "
          f"(load average {load})")
    print(render(df))


if __name__ == "__main__":
    main(prog_name="python -m lootlab.benchmarks.server")
