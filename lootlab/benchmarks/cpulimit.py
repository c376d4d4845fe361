"""Throttling under a container's CPU limit: each variant's client side at 0.25 core.

``python -m lootlab.benchmarks.cpulimit [--quick] [--rate R] [--cpu-limit C]`` runs every
variant at the same offered rate (default 100/s, 4 senders) with its client side (generator
+ client, one spawned worker) in a cgroup of ``--cpu-limit`` cores (default 0.25), the
server outside it, as in production: the overlay replica was the one with the limit.  Trials
are interleaved (trial 1 of every variant, then trial 2...); a variant's throttle counters
are its trials' summed over their measured windows.  The figure is how many times more
periods the remote variants were throttled than ``mmap`` at that rate; when ``mmap`` was
never throttled the ratio is a lower bound (against 1 period).  ``rows()`` gives the table
rows in the same shape as ``lootlab.benchmarks.conditions`` (measure, value, unit, target,
verdict, note), so that benchmark can include them.
"""

from __future__ import annotations

import os
from typing import Any

import click

from ..console import handle_errors

Row = dict[str, Any]
#: the local variant every remote one's throttling is compared with
REFERENCE = "mmap"
VARIANTS = (REFERENCE, "grpc-tls-fresh", "grpc-tls-resumed", "grpc-tls-pooled",
            "grpc-tls-packed", "grpc-plain")


def _row(measure: str, value: float, unit: str, target: str, ok: bool | None,
         note: str = "") -> Row:
    verdict = "-" if ok is None else ("PASS" if ok else "MISS")
    return {"measure": measure, "value": value, "unit": unit, "target": target,
            "verdict": verdict, "note": note}


def measure(*, quick: bool = False, rate: float = 100.0, cpu_limit: float = 0.25,
            variants: tuple[str, ...] = VARIANTS, concurrency: int = 4) -> dict[str, Any]:
    """Per variant: trials' results under the limit (plain data: counters, p99, CPU)."""
    from ..loadgen import constant, run
    from ..loadgen.limits import merge_throttle
    from ..targets import client_factory
    trials, duration = (1, 1.5) if quick else (3, 3.0)
    runs: dict[str, list] = {v: [] for v in variants}
    for t in range(trials):
        for v in variants:
            runs[v].append(run(client_factory(v), constant(rate, duration, seed=t),
                               cpu_limit=cpu_limit,
                               concurrency=concurrency, warmup=0.5))
    out = {}
    for v, results in runs.items():
        throttle = merge_throttle([r.throttle for r in results])
        out[v] = {"throttle": throttle, "applied": all(r.conditions["cpu_limit_applied"]
                                                       for r in results),
                  "note": results[0].conditions.get("cpu_limit_note"),
                  "p99_ms": max(r.latency_us(99) for r in results) / 1e3,
                  "achieved": min(r.achieved_rate for r in results),
                  "cpu": max(r.generator_cpu for r in results),
                  "bottleneck": sorted({r.health.bottleneck for r in results})}
    return {"variants": out, "rate": rate, "cpu_limit": cpu_limit, "trials": trials,
            "duration": duration, "concurrency": concurrency, "load": os.getloadavg()}


def rows(quick: bool = False, **kw: Any) -> list[Row]:
    """The benchmark's rows: throttled periods per variant at the limit, and the ratio of
    each remote variant's to ``mmap``'s (target: > 0 and more than mmap)."""
    m = kw.pop("measured", None) or measure(quick=quick, **kw)
    per = m["variants"]
    lim = m["cpu_limit"]
    if not all(v["applied"] for v in per.values()):
        note = next(v["note"] for v in per.values() if not v["applied"])
        return [_row(f"throttling at cpu_limit {lim:g}", float("nan"), "-", "cgroups",
                     None, f"not measured: {note}")]
    base = per.get(REFERENCE, {}).get("throttle") or {"throttled_periods": 0}
    base_n = int(base["throttled_periods"])
    out = []
    for name, v in per.items():
        t = v["throttle"] or {"throttled_periods": 0, "periods": 0, "throttled_ms": 0.0}
        n = int(t["throttled_periods"])
        note = (f"{n} of {int(t['periods'])} periods, {t['throttled_ms']:,.0f} ms; p99 "
                f"{v['p99_ms']:,.1f} ms, achieved {v['achieved']:,.0f}/s, client CPU "
                f"{v['cpu']:.2f} cores; bottleneck {'/'.join(v['bottleneck'])}")
        out.append(_row(f"{name} throttled periods at {lim:g} core", n, "n",
                        "> 0" if name != REFERENCE else "(reference)",
                        n > 0 if name != REFERENCE else None, note))
    for name, v in per.items():
        if name == REFERENCE or REFERENCE not in per:
            continue
        n = int((v["throttle"] or {"throttled_periods": 0})["throttled_periods"])
        if n == 0 and base_n == 0:
            out.append(_row(f"{name} throttled / mmap's", float("nan"), "x", "> 1", False,
                            "neither was throttled at this rate"))
            continue
        ratio = n / max(base_n, 1)
        out.append(_row(f"{name} throttled / mmap's", ratio, "x", "> 1", ratio > 1,
                        f"{n} vs {base_n}" + (" (mmap never throttled: at least this)"
                                              if base_n == 0 else "")))
    return out


def render(result_rows: list[Row], m: dict[str, Any] | None = None) -> str:
    lines = [f"{'measure':<46}{'value':>9} {'unit':<4} {'target':<13}{'verdict':<8}note"]
    for r in result_rows:
        value = r["value"]
        text = f"{value:.0f}" if r["unit"] == "n" else f"{value:.2f}"
        lines.append(f"{r['measure']:<46}{text:>9} {r['unit']:<4} {r['target']:<13}"
                     f"{r['verdict']:<8}{r['note']}")
    if m:
        one, five, _ = m["load"]
        lines += ["", (f"{m['rate']:g}/s offered to every variant, {m['concurrency']} senders "
                       f"in one worker in a {m['cpu_limit']:g}-core cgroup, {m['trials']} "
                       f"interleaved trial(s) of {m['duration']:g} s (+0.5 s warm-up, not "
                       f"counted); counters summed over the trials' measured windows (cgroup "
                       f"cpu.stat); the loopback server outside the cgroup."),
                  f"load average {one:.2f} / {five:.2f} (1 / 5 min) at the end."]
    return "\n".join(lines)


@click.command(cls=handle_errors("python -m lootlab.benchmarks.cpulimit"))
@click.option("--quick", is_flag=True, help="One trial of 1.5 s per variant.")
@click.option("--rate", type=click.FloatRange(1, 10_000), default=100.0, show_default=True,
              help="Offered requests/s.")
@click.option("--cpu-limit", type=click.FloatRange(0.01, 64), default=0.25, show_default=True,
              help="Cores of the client side's CPU quota.")
def main(quick: bool, rate: float, cpu_limit: float) -> None:
    """Throttled periods of every variant with its client side under a CPU quota."""
    m = measure(quick=quick, rate=rate, cpu_limit=cpu_limit)
    print(render(rows(measured=m), m))


if __name__ == "__main__":
    main()
