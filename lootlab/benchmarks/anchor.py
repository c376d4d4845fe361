"""``python -m lootlab.benchmarks.anchor``: lootlab's load generator held against wrk2.

Starts ``lootlab serve --http 0`` (mmap backend) and drives its ``/near`` at fixed rates,
each rate first with wrk2 (Gil Tene's constant-throughput wrk, which measures from the
intended send time) and then with ``lootlab.loadgen`` through ``HttpNearClient`` (same
rate, duration, connections and overlay queries; the order alternates between rates so
drift falls on both).  Prints both percentile sets side by side and both saturation
points.  wrk2 is not in Debian: build it from github.com/giltene/wrk2 and put it on PATH as
``wrk2``; without it the benchmark says so and exits 0.

``lootlab.benchmarks.resolution`` holds the instruments' own comparison: wrk2 alone
against a null HTTP server, and both tools side by side against it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import click
import numpy as np
import pandas as pd

from ..console import handle_errors
from ..errors import LootlabError

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
WRK2 = "wrk2"
# wrk2 resets its histograms at its "calibration", 10 s + 5 ms per connection after the
# start: a run longer than that reports only what came after it.
CALIBRATION_S = 10.0

WRK2_MISSING = ("wrk2 is not on PATH: build it from https://github.com/giltene/wrk2 (make; "
                "needs libssl-dev, zlib1g-dev) and install it as `wrk2`")

_UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
_PCT = re.compile(r"^\s*([0-9.]+)%\s+([0-9.]+)(us|ms|s|m|h)\s*$")
_TOTAL = re.compile(r"^\s*([0-9]+) requests in ([0-9.]+)(us|ms|s|m|h)")


@dataclass
class Wrk2Result:
    """What wrk2 printed: its recorded (corrected, from intended time) percentiles."""

    requested_rate: float
    achieved_rate: float
    requests: int
    percentiles_us: dict[float, float] = field(default_factory=dict)
    errors: int = 0
    output: str = field(default="", repr=False)

    def latency_us(self, p: float) -> float:
        return self.percentiles_us.get(float(p), math.nan)


def wrk2_path() -> str | None:
    """The wrk2 binary on PATH, or None."""
    return shutil.which(WRK2)


def parse_wrk2(text: str, requested_rate: float = math.nan) -> Wrk2Result:
    """Parse ``wrk2 --latency`` output: the "Recorded Latency" block, totals and errors.

    Only the first (recorded, i.e. corrected) distribution is read; wrk2 prints the
    uncorrected one after it only with ``-U``."""
    pcts: dict[float, float] = {}
    achieved, requests, errors = math.nan, 0, 0
    in_block = False
    for line in text.splitlines():
        if "Latency Distribution (HdrHistogram - Recorded Latency)" in line:
            in_block = True
            continue
        if in_block:
            m = _PCT.match(line)
            if m:
                pcts[float(m.group(1))] = float(m.group(2)) * _UNIT_US[m.group(3)]
                continue
            in_block = False
        m = _TOTAL.match(line)
        if m:
            requests = int(m.group(1))
        if line.startswith("Requests/sec:"):
            achieved = float(line.split(":", 1)[1])
        if "Non-2xx or 3xx responses:" in line:
            errors += int(line.split(":", 1)[1])
        if line.strip().startswith("Socket errors:"):
            errors += sum(int(n) for n in re.findall(r"[a-z]+ ([0-9]+)", line))
    if not pcts:
        raise LootlabError("wrk2's output has no 'Recorded Latency' distribution (was it run "
                           "with --latency?):\n" + text[-2000:])
    return Wrk2Result(requested_rate, achieved, requests, pcts, errors, text)


def run_wrk2(url: str, rate: float, duration: float, *, connections: int = 8,
             threads: int = 1, script: str | Path | None = None,
             binary: str | None = None) -> Wrk2Result:
    """``wrk2 -tT -cC -dDs -R RATE --latency [-s SCRIPT] URL``, parsed."""
    exe = binary or wrk2_path()
    if exe is None:
        raise LootlabError(WRK2_MISSING)
    cmd = [exe, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "-R", f"{rate:g}",
           "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    proc = subprocess.run(cmd + [url], capture_output=True, text=True,
                          timeout=duration + 60)
    if proc.returncode != 0:
        raise LootlabError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-1000:]}")
    return parse_wrk2(proc.stdout, rate)


@contextlib.contextmanager
def http_endpoint(index: str | Path | None = None, *, backend: str = "mmap",
                  start_timeout: float = 120.0) -> Iterator[str]:
    """``lootlab serve --http 0`` in a child process; yields its URL, stops it on exit."""
    cmd = [sys.executable, "-m", "lootlab", "serve", "--http", "0", "--backend", backend]
    if index is not None:
        cmd += ["--index", str(index)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in proc.stdout:          # the child prints the URL once it has bound
            if "search endpoint on " in line:
                url = line.split(" on ", 1)[1].split()[0]
                break
        if url is None:
            raise LootlabError(f"`{' '.join(cmd[2:])}` did not start: "
                               f"{proc.stderr.read()[-1000:]}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=start_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def run_lootlab(url: str, rate: float, duration: float, *, connections: int = 8,
                workload=None):
    """The same run with ``lootlab.loadgen``: one process, ``connections`` sender threads
    (each with its own keep-alive connection), constant rate, 0.5 s warm-up discarded."""
    from .. import loadgen
    from ..remote.httpclient import HttpNearClient
    return loadgen.run(functools.partial(HttpNearClient, url),
                       loadgen.constant(rate, duration), concurrency=connections,
                       warmup=0.5, workload=workload, label="lootlab-http")


def _measure(tool: str, url: str, rate: float, duration: float, *, connections: int,
             queries: np.ndarray | None = None,
             script: str | Path | None = None) -> dict:
    """One tool's run at one rate as a row: achieved rate, counts, p50..p99.9 in us, and
    (lootlab only, NaN for wrk2) the generator's own lag p99, which bounds how much of its
    latency the generator itself added."""
    if tool == "wrk2":
        w = run_wrk2(url, rate, duration, connections=connections, script=script)
        row = {"achieved_rate": w.achieved_rate, "requests": w.requests,
               "errors": w.errors, "verdict": "", "generator_lag_p99_us": math.nan,
               "observed_p99_us": w.latency_us(99),
               "bottleneck": "", "reasons": ""}
        row.update({f"p{p:g}_us": w.latency_us(p) for p in PERCENTILES})
    else:
        res = run_lootlab(url, rate, duration, connections=connections, workload=queries)
        c = res.counts
        row = {"achieved_rate": res.achieved_rate, "requests": c["measured"],
               "errors": c["failed"] + c["timeouts"] + c["unsent"],
               "verdict": "valid" if res.health.valid else "INVALID",
               "generator_lag_p99_us": res.percentile_us(99, "generator_lag"),
               "observed_p99_us": res.percentile_us(99, "observed"),
               "bottleneck": getattr(res.health, "bottleneck", ""),
               "reasons": "; ".join(getattr(res.health, "reasons", ()))}
        row.update({f"p{p:g}_us": res.latency_us(p) for p in PERCENTILES})
    return {"rate": float(rate), "tool": tool, **row}


def compare(url: str, rates: list[float], duration: float, *, connections: int = 8,
            queries=None, script: str | Path | None = None,
            settle: bool = False) -> pd.DataFrame:
    """One row per (rate, tool): requested and achieved rate, p50..p99.9 in us.

    ``settle`` waits, before each run, for the endpoint to answer promptly again, so a
    run above saturation does not leave its queue to the next one."""
    rows = []
    for i, rate in enumerate(rates):
        tools = ["wrk2", "lootlab"] if i % 2 == 0 else ["lootlab", "wrk2"]
        for tool in tools:
            if settle:
                settle_endpoint(url, queries)
            rows.append(_measure(tool, url, rate, duration, connections=connections,
                                 queries=queries, script=script))
    return pd.DataFrame(rows)


def settle_endpoint(url: str, queries: np.ndarray | None = None, *, prompt_ms: float = 50.0,
                    budget_s: float = 20.0) -> float:
    """Wait (at most ``budget_s``) until two answers in a row take under ``prompt_ms``:
    after an overload the server may still be draining requests whose senders have gone,
    and those would land in the next tool's figures.  Returns the seconds waited."""
    from ..remote.httpclient import HttpNearClient

    x, y, z, r = (int(v) for v in queries[0]) if queries is not None and len(queries) \
        else (0, 0, 0, 16)
    cli = HttpNearClient(url, timeout=budget_s)
    t0 = time.monotonic()
    prompt = 0
    try:
        while prompt < 2 and time.monotonic() - t0 < budget_s:
            t = time.monotonic()
            try:
                cli.near(x, y, z, r)
                prompt = prompt + 1 if (time.monotonic() - t) * 1e3 < prompt_ms else 0
            except LootlabError:
                prompt = 0
            if prompt < 2:
                time.sleep(0.05)
    finally:
        cli.close()
    return time.monotonic() - t0


def saturation(table: pd.DataFrame, p99_target_us: float, *,
               keep_up: float = 0.95) -> pd.DataFrame:
    """Per tool: the highest rate whose p99 met the target, and the first rate whose
    achieved rate fell below ``keep_up`` of the requested (NaN: none did)."""
    out = []
    for tool, t in table.groupby("tool", sort=False):
        t = t.sort_values("rate")
        met = t[t["p99_us"] <= p99_target_us]["rate"]
        behind = t[t["achieved_rate"] < keep_up * t["rate"]]["rate"]
        out.append({"tool": tool, f"max rate with p99 <= {p99_target_us / 1e3:g} ms":
                    float(met.max()) if len(met) else math.nan,
                    f"first rate achieved < {keep_up:.0%}":
                    float(behind.min()) if len(behind) else math.nan})
    return pd.DataFrame(out)


def side_by_side(table: pd.DataFrame) -> pd.DataFrame:
    """One row per rate: both tools' percentiles (ms) and achieved rates, and the ratio."""
    cols = [f"p{p:g}_us" for p in PERCENTILES]
    w = table[table["tool"] == "wrk2"].set_index("rate")
    lo = table[table["tool"] == "lootlab"].set_index("rate")
    out = pd.DataFrame(index=w.index)
    for c in cols:
        name = c.removesuffix("_us")
        out[f"{name} wrk2 ms"] = w[c] / 1e3
        out[f"{name} lootlab ms"] = lo[c] / 1e3
    out["p99 lootlab/wrk2"] = lo["p99_us"] / w["p99_us"]
    out["achieved wrk2/s"] = w["achieved_rate"]
    out["achieved lootlab/s"] = lo["achieved_rate"]
    out["lootlab verdict"] = lo["verdict"]
    return out.reset_index()


@click.command(cls=handle_errors("python -m lootlab.benchmarks.anchor"), help=__doc__)
@click.option("--rates", default="200,500,1000,2000", help="comma-separated requests/s")
@click.option("--duration", type=float, default=10.0,
              help=f"seconds per run (wrk2 keeps only what follows its {CALIBRATION_S:g} s "
                   "calibration in longer runs)")
@click.option("--connections", type=int, default=8)
@click.option("--p99-target-ms", type=float, default=10.0)
@click.option("--queries", "n_queries", type=int, default=1000)
@click.option("--index", default=None, help="index file (default: data/loot.idx)")
def main(rates: str, duration: float, connections: int, p99_target_ms: float,
         n_queries: int, index: str | None) -> None:
    if wrk2_path() is None:
        print("skipped: wrk2 is not on PATH (build it from https://github.com/giltene/wrk2 "
              "and install it as `wrk2`)")
        return
    from ..index import open_index
    from ..overlay import overlay_queries
    from ..paths import ensure_default_index
    from ..remote.wrk import lua_script

    rate_list = [float(r) for r in rates.split(",") if r.strip()]
    path = Path(index) if index else ensure_default_index()
    with open_index(path) as idx:
        qs = overlay_queries(idx, n_queries, seed=0)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="lootlab-anchor-") as tmp, \
            http_endpoint(path) as url:
        script = Path(tmp) / "overlay.lua"
        script.write_text(lua_script(qs.tolist()))
        table = compare(url, rate_list, duration, connections=connections, queries=qs,
                        script=script)
    load_after = os.getloadavg()
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(f"{url}: wrk2 -t1 -c{connections} -d{duration:g}s -R RATE --latency vs "
              f"lootlab.loadgen (1 process x {connections} threads), {len(qs)} overlay "
              "queries (r = 64)\n")
        print(side_by_side(table).round(2).to_string(index=False))
        print("\nsaturation:")
        sat = saturation(table, p99_target_ms * 1e3)
        print(sat.to_string(index=False))
    for _, row in sat.iterrows():
        met, behind = row.iloc[1], row.iloc[2]
        if math.isnan(met):
            print(f"{row['tool']}: no rate tried kept p99 <= {p99_target_ms:g} ms (try lower "
                  "--rates, or a quieter machine)")
        if math.isnan(behind):
            print(f"{row['tool']}: kept up with every rate tried (the endpoint saturates "
                  "above the highest; try higher --rates)")
    print(f"\n{os.cpu_count()} cores; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after; server, wrk2 and loadgen share the machine")


if __name__ == "__main__":
    main(prog_name="python -m lootlab.benchmarks.anchor")
