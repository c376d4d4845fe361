"""``python -m lootlab.benchmarks.loadgen``: the load generator's own limits, in one run.

Measures, on this machine: (1) the generator's overhead (latency percentiles of a no-op
client at 10 k req/s, one process), (2) the sustainable throughput of ``mmap`` and
``grpc-tls-pooled`` for p99 <= 1 ms (constant-rate search, 2 processes), and (3) whether
``mmap`` reaches the story's spike rate (130 k req/s = 7.8 M/min) across 2 processes, and
the p99 it held in the spike.  Every figure carries the run's health verdict: an INVALID
run measured the generator or a saturated machine, not the system.
"""

from __future__ import annotations

import json
import math
import os
import time

import click
import numpy as np
import pandas as pd

from .. import loadgen
from ..cli._util import handle_errors
from ..loadgen.runner import default_workload

STORY_SPIKE_RATE = 130_000
P99_TARGET_US = 1_000.0
OVERHEAD_GOAL_US = 100.0


class _Noop:
    def near(self, x, y, z, r):
        return None


def noop() -> _Noop:
    return _Noop()


def _fmt(x: float, unit: str = "") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.1f}{unit}"


def overhead(duration: float) -> dict:
    res = loadgen.run(noop, loadgen.constant(10_000, duration), warmup=0.5, label="no-op",
                      workload=np.zeros((16, 4), np.int64))
    return {"figure": "generator overhead: no-op client at 10k/s, 1 process",
            "p50_us": res.latency_us(50), "p99_us": res.latency_us(99),
            "p999_us": res.latency_us(99.9), "max_us": res.percentile_us(100),
            "generator_lag_p99_us": res.percentile_us(99, "generator_lag"),
            "achieved_rate": res.achieved_rate, "valid": res.health.valid,
            "goal": f"p99 <= {OVERHEAD_GOAL_US:g} us",
            "met": res.latency_us(99) <= OVERHEAD_GOAL_US, "health": str(res.health)}


def sustainable(variant: str, *, start: float, processes: int, concurrency: int,
                duration: float, workload, spin_us: float | None = None,
                retries: int = 1) -> dict:
    rate, trials = loadgen.max_sustainable(variant, P99_TARGET_US, start_rate=start,
                                           duration=duration, processes=processes,
                                           concurrency=concurrency, warmup=0.5,
                                           workload=workload, refine=3, retries=retries,
                                           spin_us=spin_us)
    best = trials[trials["rate"] == rate].tail(1) if not math.isnan(rate) else trials.head(0)
    first = trials.iloc[0]
    trials = trials.copy()
    return {"figure": f"{variant}: sustainable rate for p99 <= 1 ms ({processes} proc x "
                      f"{concurrency})",
            "rate": rate, "p99_us": float(best["p99_us"].iloc[0]) if len(best)
            else float(first["p99_us"]),
            "trials": len(trials), "valid": bool(len(best)),
            "detail": trials[["rate", "attempt", "achieved_rate", "p50_us", "p99_us",
                              "generator_lag_p99_us", "valid", "meets_target"]]
            .to_dict("records"),
            "note": "" if len(best) else f"even {first['rate']:,.0f}/s missed the target "
                                         f"(p99 {first['p99_us']:,.0f} us, valid "
                                         f"{bool(first['valid'])})"}


def spike(processes: int, workload, spin_us: float | None = None) -> dict:
    base = STORY_SPIKE_RATE / 10
    res = loadgen.run("mmap", loadgen.spike(base, 6.0, factor=10, at=2.0, length=2.0),
                      processes=processes, warmup=0.5, workload=workload, label="mmap",
                      spin_us=spin_us)
    tl = res.timeline()
    burst = tl[(tl["second"] >= 2) & (tl["second"] < 4)]
    peak = float(tl["completed"].max())
    return {"figure": f"mmap spike to {STORY_SPIKE_RATE:,}/s ({processes} processes)",
            "offered_peak": STORY_SPIKE_RATE, "completed_peak_per_s": peak,
            "reached": peak >= 0.99 * STORY_SPIKE_RATE,
            "p99_us_in_spike": float(burst["p99_us"].max()) if len(burst) else math.nan,
            "p99_us_overall": res.latency_us(99), "valid": res.health.valid,
            "unsent": res.counts["unsent"], "health": str(res.health),
            "timeline": tl[["second", "offered", "completed", "p50_us", "p99_us",
                            "max_us"]].to_dict("records")}


@click.command(cls=handle_errors("python -m lootlab.benchmarks.loadgen"), help=__doc__)
@click.option("--duration", type=float, default=2.0, help="seconds per search trial")
@click.option("--processes", type=int, default=2)
@click.option("--grpc-concurrency", type=int, default=4,
              help="sender threads per process for gRPC (it releases the GIL)")
@click.option("--skip-grpc", is_flag=True)
@click.option("--spin-us", type=float, default=500.0,
              help="mmap runs: spin this long before each send (no local server to "
                   "starve); gRPC runs keep the default 200 us")
@click.option("--retries", type=int, default=2,
              help="run a missed search rate again this many times (shared machines)")
@click.option("--json", "json_out", help="also write the figures here")
def main(duration: float, processes: int, grpc_concurrency: int, skip_grpc: bool,
         spin_us: float, retries: int, json_out: str | None) -> None:

    t = time.time()
    load_before = os.getloadavg()
    workload = default_workload(65_536)
    rows = []
    o = overhead(3.0)
    rows.append((o["figure"], f"p99 {_fmt(o['p99_us'], ' us')} (p50 {_fmt(o['p50_us'])}, "
                 f"max {_fmt(o['max_us'])}; generator's own lag p99 "
                 f"{_fmt(o['generator_lag_p99_us'])})", o["goal"], o["met"], o["valid"]))
    m = sustainable("mmap", start=1_000, processes=processes, concurrency=1,
                    duration=duration, workload=workload, spin_us=spin_us,
                    retries=retries)
    rows.append((m["figure"], f"{_fmt(m['rate'], '/s')} (p99 {_fmt(m['p99_us'], ' us')})"
                 + (f" - {m['note']}" if m["note"] else ""),
                 f"{STORY_SPIKE_RATE:,}/s", (m["rate"] or 0) >= STORY_SPIKE_RATE, m["valid"]))
    g = None
    if not skip_grpc:
        g = sustainable("grpc-tls-pooled", start=250, processes=processes,
                        concurrency=grpc_concurrency, duration=duration,
                        workload=workload, retries=retries)
        ratio = m["rate"] / g["rate"] if g["rate"] and not math.isnan(g["rate"]) else math.nan
        rows.append((g["figure"], f"{_fmt(g['rate'], '/s')} (p99 {_fmt(g['p99_us'], ' us')})"
                     + (f" - {g['note']}" if g["note"] else ""),
                     f"mmap/pooled = {_fmt(ratio, 'x')}", None, g["valid"]))
    s = spike(processes, workload, spin_us)
    rows.append((s["figure"], f"peak {s['completed_peak_per_s']:,.0f}/s completed, p99 in "
                 f"spike {_fmt(s['p99_us_in_spike'], ' us')}, unsent {s['unsent']:,}",
                 f"{STORY_SPIKE_RATE:,}/s", s["reached"], s["valid"]))
    table = pd.DataFrame(rows, columns=["figure", "measured", "goal", "met", "valid run"])
    with pd.option_context("display.max_colwidth", 120, "display.width", 250):
        print(table.to_string(index=False))
    load_after = os.getloadavg()
    print(f"\nmeasured in one run of {time.time() - t:.0f} s on {os.cpu_count()} cores; load "
          f"average {load_before[0]:.2f} before, {load_after[0]:.2f} after (other work on the "
          f"machine shows up as generator lag and INVALID verdicts)")
    print(f"health of the spike run: {s['health']}")
    for fig in (m, g):
        if fig:
            print(f"\n{fig['figure']} - every trial (a missed rate is retried {retries}x):")
            print(pd.DataFrame(fig["detail"]).round(1).to_string(index=False))
    print("\nspike timeline (per second after warm-up):")
    print(pd.DataFrame(s["timeline"]).round(1).to_string(index=False))
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"overhead": o, "mmap": m, "grpc_tls_pooled": g, "spike": s,
                       "loadavg": [load_before, load_after]}, f,
                      indent=1, default=float)


if __name__ == "__main__":
    main(prog_name="python -m lootlab.benchmarks.loadgen")
