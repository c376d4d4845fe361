"""Production conditions on one machine: what the delaying proxy costs and delivers.

``python -m lootlab.benchmarks.conditions [--quick]`` measures, in one run:

a. the proxy's own overhead at ``rtt_ms=0``: p50 of a pooled ``near`` direct and through
   a proxy (a ``DelayProxy`` with a null network still forwards), in interleaved rounds;
   the figure is the median over rounds of (proxied p50 - direct p50) (target < 100 us);
b. the delivered RTT against the asked one at 1, 5, 20 ms: raw TCP ping-pong with an echo
   server in its own process, and a pooled ``get``; delivered = proxied p50 - direct p50
   in the same round (target: within 5 %).  Each against two direct baselines: back to
   back, and each call after sleeping the RTT (behind the proxy client and server idle
   that long between calls, and on this VM a process answers slower after idling, gRPC
   by ~0.4-0.9 ms: that part is the endpoints', which netem would show too);
c. at ``rtt_ms=5``: each variant's p50 in round trips, (p50 at 5 ms - p50 direct) / 5 ms
   (targets: ``grpc-tls-fresh`` >= 3, ``grpc-tls-pooled`` about 1, ``mmap`` unchanged);
d. CPU limits: rows from ``cpu_limit_rows()`` (filled by the cgroup side of the conditions).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import click

from ..console import handle_errors

Row = dict[str, Any]


def _p50_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def _timed(call: Callable[[], Any], n: int, idle: float = 0.0) -> list[float]:
    """Seconds per call; with ``idle``, each call comes after that long asleep (untimed),
    as a call through the proxy comes after client and server idled for the RTT."""
    clock = time.perf_counter
    out = []
    for _ in range(n):
        if idle:
            time.sleep(idle)
        t = clock()
        call()
        out.append(clock() - t)
    return out


def _row(measure: str, value: float, unit: str, target: str, ok: bool | None,
         note: str = "") -> Row:
    verdict = "-" if ok is None else ("PASS" if ok else "MISS")
    return {"measure": measure, "value": value, "unit": unit, "target": target,
            "verdict": verdict, "note": note}


def overhead_rows(srv: Any, spot: tuple[int, int, int], rounds: int, n: int) -> list[Row]:
    """(a): p50 added to a pooled ``near`` by a proxy at rtt 0, interleaved rounds."""
    from ..conditions import Network
    from ..conditions.proxies import DelayProxy
    from ..targets import client_factory
    x, y, z = spot
    with DelayProxy(srv.target, Network()) as proxy:
        direct = client_factory("grpc-tls-pooled", srv)()
        proxied = client_factory("grpc-tls-pooled", srv, target=proxy.target)()
        try:
            diffs = []
            for cli in (direct, proxied):
                _timed(lambda c=cli: c.near(x, y, z, 8.0), 20)
            for _ in range(rounds):
                a = _p50_us(_timed(lambda: direct.near(x, y, z, 8.0), n))
                b = _p50_us(_timed(lambda: proxied.near(x, y, z, 8.0), n))
                diffs.append(b - a)
            chunks = proxy.stats()["chunks_up"]
        finally:
            direct.close()
            proxied.close()
    added = statistics.median(diffs)
    return [_row("proxy overhead, pooled near, rtt 0", added, "us", "< 100 us", added < 100,
                 f"median of {rounds} rounds x {n} calls ({chunks} requests forwarded)")]


def _in_rounds(measures: dict[str, Callable[[int], list[float]]], n: int, rounds: int
               ) -> dict[str, float]:
    """Median over ``rounds`` of each measure's p50 (us) of ``n // rounds`` samples, the
    measures interleaved round by round so a change in the machine's load hits all alike."""
    per: dict[str, list[float]] = {k: [] for k in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            per[name].append(_p50_us(measure(max(3, n // rounds))))
    return {k: statistics.median(v) for k, v in per.items()}


def _delivered(kind: str, rtt: float, got: dict[str, float], note: str) -> list[Row]:
    rows = []
    for ref, against in (("direct", "back to back"), ("idle", f"after {rtt:g} ms idle")):
        added = got["proxied"] - got[ref]
        err = added / (rtt * 1000) - 1
        rows.append(_row(f"delivered RTT, {kind}, asked {rtt:g} ms", added / 1000, "ms",
                         "within 5 %", abs(err) <= 0.05,
                         f"{err:+.1%} vs direct {against} (p50 {got[ref]:.0f} us){note}"))
    return rows


def _raw_tcp(echo: str, rtt: float, n: int, rounds: int) -> tuple[dict[str, float], float]:
    """Ping-pong p50s direct, direct after idling, proxied; and the proxy's lateness."""
    from ..conditions import Network
    from ..conditions.echo import dial, ping_pong
    from ..conditions.proxies import DelayProxy
    with DelayProxy(echo, Network(rtt_ms=rtt)) as proxy:
        direct, proxied = dial(echo), dial(proxy.target)
        try:
            ping_pong(proxy.target, 3, sock=proxied)
            got = _in_rounds({
                "direct": lambda k: ping_pong(echo, k, sock=direct),
                "idle": lambda k: ping_pong(echo, k, sock=direct, idle=rtt / 1000),
                "proxied": lambda k: ping_pong(proxy.target, k, sock=proxied),
            }, n, rounds)
        finally:
            direct.close()
            proxied.close()
        return got, proxy.stats()["mean_late_us"]


def _pooled_get(srv: Any, direct: Any, spot: tuple[int, int, int], rtt: float, n: int,
                rounds: int) -> dict[str, float]:
    """Pooled ``get`` p50s direct, direct after idling, through a proxy at ``rtt``."""
    from ..conditions import Network
    from ..targets import client_factory
    via = client_factory("grpc-tls-pooled", srv, network=Network(rtt_ms=rtt))()
    try:
        via.get(*spot)
        return _in_rounds({
            "direct": lambda k: _timed(lambda: direct.get(*spot), k),
            "idle": lambda k: _timed(lambda: direct.get(*spot), k, idle=rtt / 1000),
            "proxied": lambda k: _timed(lambda: via.get(*spot), k),
        }, n, rounds)
    finally:
        via.close()


def delivered_rows(srv: Any, spot: tuple[int, int, int], rtts: list[float], quick: bool
                   ) -> list[Row]:
    """(b): delivered added RTT against the asked one, raw TCP and pooled ``get``."""
    from ..conditions.echo import EchoServer
    from ..targets import client_factory
    rows = []
    rounds = 3 if quick else 5
    with EchoServer() as echo:
        direct = client_factory("grpc-tls-pooled", srv)()
        try:
            for rtt in rtts:
                n = max(10 * rounds, int((0.6 if quick else 2.0) / (rtt / 1000)))
                got, late = _raw_tcp(echo.target, rtt, n, rounds)
                rows += _delivered("raw TCP", rtt, got, f"; {n} pings, the proxy {late:.0f} us "
                                   f"late/chunk")
                rows += _delivered("pooled get", rtt, _pooled_get(srv, direct, spot, rtt, n,
                                                                  rounds), "")
        finally:
            direct.close()
    return rows


def round_trip_rows(srv: Any, spot: tuple[int, int, int], rtt: float, quick: bool
                    ) -> list[Row]:
    """(c): what each variant pays at ``rtt`` ms, in round trips."""
    from ..conditions import Network
    from ..targets import client_factory
    from ..variants import get
    x, y, z = spot
    rows = []
    targets = {"grpc-tls-fresh": (">= 3", lambda r: r >= 3),
               "grpc-tls-resumed": ("(fewer than fresh)", None),
               "grpc-tls-pooled": ("about 1", lambda r: 0.8 <= r <= 1.3),
               "mmap": ("unchanged (ratio ~1)", None)}
    for name, (target, check) in targets.items():
        remote = get(name).remote
        n = 15 if quick else 40
        where = srv if remote else None
        base = client_factory(name, where)()
        via = client_factory(name, where, network=Network(rtt_ms=rtt))()
        try:
            for cli in (base, via):
                _timed(lambda c=cli: c.get(x, y, z), 3)
            a = _p50_us(_timed(lambda c=base: c.get(x, y, z), n if remote else 2000))
            b = _p50_us(_timed(lambda c=via: c.get(x, y, z), n if remote else 2000))
        finally:
            base.close()
            via.close()
        if remote:
            trips = (b - a) / (rtt * 1000)
            rows.append(_row(f"{name} at rtt {rtt:g} ms", trips, "RTTs", target,
                             None if check is None else check(trips),
                             f"p50 {a / 1000:.2f} -> {b / 1000:.2f} ms"))
        else:
            ratio = b / a
            rows.append(_row(f"{name} at rtt {rtt:g} ms", ratio, "x", target,
                             0.7 <= ratio <= 1.4, f"p50 {a:.1f} -> {b:.1f} us"))
    return rows


def cpu_limit_rows(quick: bool) -> list[Row]:
    """(d) throttling at cpu_limit=0.25: every variant at 100/s with its client side in a
    0.25-core cgroup (``lootlab.benchmarks.cpulimit``, which says how): throttled periods
    (target > 0 for the remote variants) and how many times more than ``mmap``'s."""
    from .cpulimit import rows
    return rows(quick)


def run(*, quick: bool = False) -> dict[str, Any]:
    from ..paths import ensure_default_index
    from ..remote.loopback import LoopbackServer
    from ..remote.service import _populated_spot
    path = ensure_default_index()
    spot = _populated_spot(path)
    rows: list[Row] = []
    with LoopbackServer(path) as srv:
        rows += overhead_rows(srv, spot, 5 if quick else 15, 100 if quick else 300)
        rows += delivered_rows(srv, spot, [1.0, 5.0, 20.0], quick)
        rows += round_trip_rows(srv, spot, 5.0, quick)
    rows += cpu_limit_rows(quick)
    return {"rows": rows, "load": os.getloadavg(), "quick": quick}


def render(out: dict[str, Any]) -> str:
    lines = [f"{'measure':<44}{'value':>10} {'unit':<5} {'target':<22}{'verdict':<8}note"]
    for r in out["rows"]:
        value = f"{r['value']:.3f}" if abs(r["value"]) < 100 else f"{r['value']:.0f}"
        lines.append(f"{r['measure']:<44}{value:>10} {r['unit']:<5} {r['target']:<22}"
                     f"{r['verdict']:<8}{r['note']}")
    one, five, _ = out["load"]
    lines += ["", (f"load average {one:.2f} / {five:.2f} (1 / 5 min); p50s on one connection "
                   "per client, direct and proxied measured back to back in the same run."),
              ("Raw TCP: an echo server in its own process; delivered = proxied - direct p50. "
               "Round trips: (p50 through the proxy - p50 direct) / asked RTT.")]
    return "\n".join(lines)


@click.command(cls=handle_errors("python -m lootlab.benchmarks.conditions"))
@click.option("--quick", is_flag=True, help="Fewer rounds and calls (about a minute).")
def main(quick: bool) -> None:
    """What the delaying proxy costs at rtt 0 and delivers at 1-20 ms, the round trips each
    variant pays at 5 ms, and throttling under a CPU limit."""
    print(render(run(quick=quick)))


if __name__ == "__main__":
    main()
