"""``python -m lootlab.benchmarks.loadgen``: the load generator's own limits, quiet and
with every core busy, in one run.

Each figure is measured twice: on the machine as it is, then beside ``--hogs`` CPU-bound
processes (default 2: every core of a 2-core box busy), which is where an instrument's
error shows.  The figures and their goals:

1. resolution: the generator's own send error at p99 (a sender free to send and still
   late) for a client whose every call spins 20 us, one process at 1,000/s and 10,000/s
   (goal <= 50 us), and a no-op client over two processes at 50,000/s (<= 100 us);
2. wrk2 (Gil Tene's constant-throughput wrk, on PATH as ``wrk2``) at 1,000/s and 10,000/s
   against a null HTTP server: its whole p99 (loopback + server + its own timing) beside
   lootlab's own error at the same rate; skipped without wrk2;
3. mmap's sustainable rate for p99 <= 1 ms over two processes (goal >= 40,000/s);
4. the story's spike (130,000/s) on mmap over two processes: the peak second it completed
   (goal: all of it), beside the CPU bound (cores / the CPU one request costs, measured in
   a closed loop per core); and mmap offered 1.25x that bound, the rate it completed
   (goal >= 80 % of the bound: the generator, not its own overhead, meets the index's
   limit).

Every run carries its health verdict and how its senders were scheduled.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
from typing import Any, Callable, Iterator

import click
import numpy as np
import pandas as pd

from .. import loadgen
from ..console import handle_errors
from ..targets import client_factory, default_workload

STORY_SPIKE_RATE = 130_000
P99_TARGET_US = 1_000.0
SUSTAINABLE_GOAL = 40_000
BOUND_SHARE_GOAL = 0.80
FLAT_OUT = 1.25     # offered past the CPU bound by this much: what the senders can drive
# (label, client, rate, processes, goal for the generator's own error p99 in us)
RESOLUTION_RUNS = (("20 us client", "spin20", 1_000, 1, 50.0),
                   ("20 us client", "spin20", 10_000, 1, 50.0),
                   ("no-op client", "noop", 50_000, 2, 100.0))
WRK2_RATES = (1_000, 10_000)


class _Noop:
    def near(self, x, y, z, r):
        return None


class _Spin20:
    """Every call spins 20 us on the sender: a known, cheap service time."""

    def near(self, x, y, z, r):
        end = time.perf_counter_ns() + 20_000
        while time.perf_counter_ns() < end:
            pass


def noop() -> _Noop:
    return _Noop()


def spin20() -> _Spin20:
    return _Spin20()


CLIENTS: dict[str, Callable[[], Any]] = {"noop": noop, "spin20": spin20}


@contextlib.contextmanager
def hogs(n: int) -> Iterator[list[int]]:
    """``n`` CPU-bound processes (``while True: pass``) for the duration of the block:
    other work keeping every core busy, as on a shared CI runner or a busy 2-vCPU VM.
    Returns once each has been on a CPU, and stops them after, whatever happens."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(_cpu_ticks(p.pid) > 0 for p in procs):
            time.sleep(0.01)
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])          # utime + stime
    except (OSError, IndexError, ValueError):
        return 1                                          # cannot tell: do not wait


def resolution(client: str, rate: float, processes: int, duration: float) -> dict[str, Any]:
    """The generator's own send error against a client of known cost."""
    res = loadgen.run(CLIENTS[client], loadgen.constant(rate, duration), processes=processes,
                      warmup=0.5, label=client, workload=np.zeros((16, 4), np.int64))
    return {"error_p99_us": res.generator_error_us(99),
            "error_p999_us": res.generator_error_us(99.9),
            "latency_p99_us": res.latency_us(99), "observed_p99_us":
            res.percentile_us(99, "observed"), "valid": res.health.valid,
            "scheduling": res.scheduling, "achieved_rate": res.achieved_rate}


def wrk2_floor(duration: float) -> pd.DataFrame:
    """wrk2's p99 against a null HTTP server at ``WRK2_RATES`` (``resolution.wrk2_floor``),
    or an empty frame whose ``attrs["note"]`` says why not (no wrk2 on PATH)."""
    from .resolution import wrk2_floor as floor

    return floor(rates=WRK2_RATES, duration=duration)


def sustainable(workload: np.ndarray, duration: float, retries: int) -> dict[str, Any]:
    from ..experiments.latency import max_sustainable

    rate, trials = max_sustainable(client_factory("mmap"), P99_TARGET_US, start_rate=10_000,
                                   duration=duration, processes=2, warmup=0.5,
                                   workload=workload, refine=3, retries=retries)
    best = trials[trials["offered_per_s"] == rate].tail(1) if not math.isnan(rate) \
        else trials.head(0)
    return {"rate": rate,
            "p99_us": float(best["p99_ms"].iloc[0]) * 1e3 if len(best) else math.nan,
            "note": trials.attrs.get("note", ""),
            "detail": trials[["offered_per_s", "attempt", "achieved_per_s", "p50_ms", "p99_ms",
                              "generator_error_p99_ms", "valid", "meets_target"]]
            .to_dict("records")}


def spike(workload: np.ndarray) -> dict[str, Any]:
    """The spike beside the CPU bound: a closed loop per core measures the CPU one request
    costs (index read + the generator's loop), cores / that is the most any sender could
    complete; the spike's peak second is held against it."""
    cores = os.cpu_count() or 1
    mmap = client_factory("mmap")
    calib = loadgen.run(mmap, loadgen.closed(cores, 2.0), processes=cores, warmup=0.3,
                        workload=workload, label="mmap")
    cpu_per_request_us = calib.cpu_s / max(1, calib.completed_total) * 1e6
    bound = cores / (cpu_per_request_us / 1e6)
    res = loadgen.run(mmap, loadgen.spike(STORY_SPIKE_RATE / 10, 6.0, factor=10, at=2.0,
                                          length=2.0),
                      processes=cores, warmup=0.5, workload=workload, label="mmap")
    tl = res.timeline()
    burst = tl[(tl["second"] >= 2) & (tl["second"] < 4)]
    peak = float(burst["completed"].max()) if len(burst) else math.nan
    # the spike may stay under the bound: offered past it, the senders show how close to
    # the bound they can drive the index (a saturated run by design: its rate, not its p99)
    flat = loadgen.run(mmap, loadgen.constant(FLAT_OUT * bound, 2.0), processes=cores,
                       warmup=0.3, workload=workload, label="mmap", grace=1.0)
    flat_rate = flat.achieved_rate          # completions over the span they took
    return {"cpu_per_request_us": cpu_per_request_us, "bound_per_s": bound,
            "peak_per_s": peak, "share_of_offered": peak / STORY_SPIKE_RATE,
            "flat_out_per_s": flat_rate, "share_of_bound": flat_rate / bound,
            "p99_us_in_spike": float(burst["p99_us"].max()) if len(burst) else math.nan,
            "valid": res.health.valid, "saturated": res.health.saturated,
            "health": str(res.health),
            "timeline": tl[["second", "offered", "completed", "p50_us", "p99_us",
                            "max_us"]].to_dict("records")}


def measure(duration: float, wrk2_duration: float, workload: np.ndarray,
            retries: int) -> dict[str, Any]:
    """Every figure once, under whatever the machine is doing now."""
    load = os.getloadavg()[0]
    out: dict[str, Any] = {"resolution": [], "load_before": load}
    for label, client, rate, processes, goal in RESOLUTION_RUNS:
        print(f"  resolution: {label}, {rate:,}/s, {processes} process(es)", flush=True)
        out["resolution"].append({"label": label, "rate": rate, "processes": processes,
                                  "goal_us": goal,
                                  **resolution(client, rate, processes, duration)})
    print("  wrk2 against a null HTTP server", flush=True)
    out["wrk2"] = wrk2_floor(wrk2_duration)
    print("  mmap: sustainable rate for p99 <= 1 ms (2 processes)", flush=True)
    out["sustainable"] = sustainable(workload, duration, retries)
    print("  mmap: the spike and the CPU bound", flush=True)
    out["spike"] = spike(workload)
    out["load_after"] = os.getloadavg()[0]
    return out


def _us(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x / 1e3:,.2f} ms" if x >= 1_000 else f"{x:,.1f} us"


def rows(quiet: dict[str, Any], busy: dict[str, Any] | None) -> pd.DataFrame:
    """The table: one row per figure, its goal, the quiet and the busy reading, and whether
    both met the goal."""
    sides = [("quiet", quiet)] + ([("busy", busy)] if busy else [])
    table: list[dict[str, Any]] = []

    def add(figure: str, goal: str, cells: list[tuple[str, bool | None]]) -> None:
        row = {"figure": figure, "goal": goal}
        for (name, _), (text, _) in zip(sides, cells):
            row[name] = text
        verdicts = [ok for _, ok in cells if ok is not None]
        row["met"] = ("yes" if all(verdicts) else "no") if verdicts else "-"
        table.append(row)

    for i, (label, _, rate, processes, goal) in enumerate(RESOLUTION_RUNS):
        cells = []
        for _, m in sides:
            r = m["resolution"][i]
            cells.append((f"{_us(r['error_p99_us'])} (p99.9 {_us(r['error_p999_us'])}; "
                          f"{'valid' if r['valid'] else 'INVALID'}; {r['scheduling']})",
                          r["error_p99_us"] <= goal))
        add(f"generator's own error p99: {label}, {rate:,}/s, {processes} process(es)",
            f"<= {goal:g} us", cells)
    for rate in WRK2_RATES:
        cells = []
        for _, m in sides:
            w = m["wrk2"]
            own = next((r["error_p99_us"] for r in m["resolution"] if r["rate"] == rate),
                       math.nan)
            if w.empty or "rate" not in w or not (w["rate"] == rate).any():
                cells.append((f"skipped: {w.attrs.get('note', 'no wrk2')}", None))
                continue
            p99 = float(w.loc[w["rate"] == rate].iloc[0].get("p99_us", math.nan))
            cells.append((f"wrk2 p99 {_us(p99)} (loopback + null server + its own timing); "
                          f"lootlab's own error {_us(own)}", None))
        add(f"anchor: wrk2 at {rate:,}/s", "for comparison", cells)
    add("mmap sustainable rate, p99 <= 1 ms, 2 processes", f">= {SUSTAINABLE_GOAL:,}/s",
        [((f"{m['sustainable']['rate']:,.0f}/s (p99 {_us(m['sustainable']['p99_us'])})"
           if not math.isnan(m["sustainable"]["rate"])
           else f"none: {m['sustainable']['note']}"),
          (m["sustainable"]["rate"] or 0) >= SUSTAINABLE_GOAL) for _, m in sides])
    add(f"mmap spike to {STORY_SPIKE_RATE:,}/s, 2 processes: the peak second",
        f"{STORY_SPIKE_RATE:,}/s",
        [(f"peak {m['spike']['peak_per_s']:,.0f}/s (p99 in the spike "
          f"{_us(m['spike']['p99_us_in_spike'])}); the CPU bound "
          f"{m['spike']['bound_per_s']:,.0f}/s", m["spike"]["share_of_offered"] >= 0.99)
         for _, m in sides])
    add(f"mmap offered {FLAT_OUT:g}x the CPU bound, 2 processes: completed vs bound",
        f">= {BOUND_SHARE_GOAL:.0%} of the bound",
        [(f"{m['spike']['flat_out_per_s']:,.0f}/s of a bound {m['spike']['bound_per_s']:,.0f}"
          f"/s ({m['spike']['share_of_bound']:.0%}; cores / "
          f"{m['spike']['cpu_per_request_us']:.1f} us CPU per request)",
          m["spike"]["share_of_bound"] >= BOUND_SHARE_GOAL)
         for _, m in sides])
    return pd.DataFrame(table)


@click.command(cls=handle_errors("python -m lootlab.benchmarks.loadgen"), help=__doc__)
@click.option("--duration", type=float, default=4.0, show_default=True,
              help="seconds per run (search trials and resolution runs)")
@click.option("--hogs", "n_hogs", type=click.IntRange(0, 64), default=2, show_default=True,
              help="CPU-bound processes for the busy half (0: quiet only)")
@click.option("--wrk2-duration", type=float, default=5.0, show_default=True,
              help="seconds per wrk2 run (under its 10 s calibration)")
@click.option("--retries", type=int, default=1, show_default=True,
              help="run a missed search rate again this many times")
@click.option("--json", "json_out", help="also write the figures here")
def main(duration: float, n_hogs: int, wrk2_duration: float, retries: int,
         json_out: str | None) -> None:
    started = time.time()
    workload = default_workload(65_536)
    print("quiet (the machine as it is):", flush=True)
    quiet = measure(duration, wrk2_duration, workload, retries)
    busy = None
    if n_hogs:
        print(f"busy ({n_hogs} CPU-bound processes beside it):", flush=True)
        with hogs(n_hogs):
            busy = measure(duration, wrk2_duration, workload, retries)
    table = rows(quiet, busy)
    with pd.option_context("display.max_colwidth", 110, "display.width", 400):
        print(table.to_string(index=False))
    loads = f"load average {quiet['load_before']:.2f} -> {quiet['load_after']:.2f} quiet"
    if busy:
        loads += f", {busy['load_before']:.2f} -> {busy['load_after']:.2f} busy"
    print(f"\nmeasured in {time.time() - started:.0f} s on {os.cpu_count()} cores; {loads}")
    for name, m in (("quiet", quiet), ("busy", busy)):
        if m:
            print(f"\n{name}: mmap sustainable-rate trials:")
            print(pd.DataFrame(m["sustainable"]["detail"]).round(1).to_string(index=False))
            print(f"{name}: spike health: {m['spike']['health']}")
    if json_out:
        def plain(m):
            return None if m is None else {**m, "wrk2": m["wrk2"].to_dict("records")}
        with open(json_out, "w") as f:
            json.dump({"quiet": plain(quiet), "busy": plain(busy)}, f, indent=1, default=float)


if __name__ == "__main__":
    main(prog_name="python -m lootlab.benchmarks.loadgen")
