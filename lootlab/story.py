"""The experiments behind the notebooks that no other module owns: the story's steps and
the rebuild-under-load run.  They return plain data (DataFrames, dataclasses); the
notebooks and ``lootlab.plots.story`` only draw it.

The story: the overlay search called a remote gRPC service over TLS and fixed it in steps,
``grpc-tls-fresh`` -> ``grpc-tls-resumed`` -> ``grpc-tls-pooled`` -> ``grpc-tls-packed``,
then replaced it with the memory-mapped file (``mmap``).  ``run_steps`` measures each step
at the same offered load on this machine; ``verdict`` says in words what the data shows.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import queue as queue_mod
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

#: The steps of the story, in order, with what each change was.
STEPS: dict[str, str] = {
    "grpc-tls-fresh": "remote service, new TLS connection per request",
    "grpc-tls-resumed": "TLS session resumption",
    "grpc-tls-pooled": "one pooled long-lived channel",
    "grpc-tls-packed": "packed records decoded with numpy",
    "mmap": "local memory-mapped index file",
}

#: What the original write-up reported (for reference beside our numbers, never mixed in).
WRITEUP = {
    "p99_ms": {"before (remote, TLS)": 95.0, "after TLS + decoder fixes": 78.0,
               "mmap file": 34.0},
    # which of our steps each of the write-up's figures corresponds to
    "p99_ms_by_step": {"grpc-tls-fresh": 95.0, "grpc-tls-packed": 78.0, "mmap": 34.0},
    "gc_pause_ms": {"before": 8.0, "after": 0.6},
    "rss_mb_max": 92.0,
    "allocs_per_op": {"before": 2.1, "after": 0.4},
    "memcpy_cpu_share": 0.68,
    "spike": {"rate_per_s": 130_000, "p99_ms_max": 42.0},
}


# --- the story's steps --------------------------------------------------------------------

@dataclass
class StoryRun:
    """Each step measured at one offered rate: ``steps`` (one row per step) and the raw
    ``LoadResult`` per variant (for spectra and the generator's health)."""

    rate: float
    duration: float
    steps: pd.DataFrame
    results: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def valid(self) -> bool:
        return bool(self.steps["valid"].all())


def step_row(variant: str, result: Any) -> dict[str, Any]:
    """One step's numbers from a ``LoadResult``: percentiles in ms, rates, health."""
    return {
        "step": variant, "change": STEPS.get(variant, ""),
        "p50_ms": result.latency_us(50) / 1e3, "p99_ms": result.latency_us(99) / 1e3,
        "p999_ms": result.latency_us(99.9) / 1e3,
        "service_p99_ms": result.service_us(99) / 1e3,
        "offered_per_s": float(result.offered_rate), "achieved_per_s": float(result.achieved_rate),
        "requests": int(result.requests), "errors": int(result.counts.get("failed", 0)),
        "valid": bool(result.health.valid), "health": "; ".join(result.health.reasons) or "ok",
        "writeup_p99_ms": WRITEUP["p99_ms_by_step"].get(variant, math.nan),
    }


def variant_target(variant: str, server: Any = None) -> Any:
    """What ``loadgen.run`` drives: a factory from the variant registry, reaching remote
    variants at ``server`` (a ``LoopbackServer``) or, without one, the embedded default."""
    from .variants import get, resolve
    return resolve(variant, server if server is not None and get(variant).remote else None)


def run_steps(rate: float, duration: float, *, variants: list[str] | None = None,
              warmup: float = 1.0, processes: int = 1, concurrency: int = 1, seed: int = 0,
              server: Any = None, on_step: Callable[[str], None] | None = None,
              **run_options: Any) -> StoryRun:
    """Run every step's variant at the same constant ``rate`` for ``duration`` seconds.

    Same schedule, same overlay workload (``loadgen``'s default), same generator settings
    for every step, so differences are the variants'.  Remote variants talk to ``server``
    (a ``LoopbackServer`` on the default index), or to the embedded shared one.
    """
    from . import loadgen

    variants = list(variants or STEPS)
    results: dict[str, Any] = {}
    rows = []
    for variant in variants:
        if on_step:
            on_step(variant)
        res = loadgen.run(variant_target(variant, server), loadgen.constant(rate, duration, seed=seed),
                          processes=processes, concurrency=concurrency, warmup=warmup,
                          label=variant, **run_options)
        results[variant] = res
        rows.append(step_row(variant, res))
    steps = pd.DataFrame(rows)
    steps["p99_change_ms"] = steps["p99_ms"].diff()
    return StoryRun(rate=float(rate), duration=float(duration), steps=steps, results=results)


def _fmt_ms(ms: float) -> str:
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def verdict(steps: pd.DataFrame) -> str:
    """Plain words for what the measured steps show (computed from the rows, not assumed)."""
    if steps.empty:
        return "No step was measured."
    by = steps.set_index("step")
    first, last = steps.iloc[0], steps.iloc[-1]
    parts = []
    rate = first["offered_per_s"]
    ratio = first["p99_ms"] / last["p99_ms"] if last["p99_ms"] > 0 else math.inf
    if last["p99_ms"] < first["p99_ms"]:
        parts.append(f"At {rate:,.0f} requests/s, p99 went from {_fmt_ms(first['p99_ms'])} "
                     f"({first['step']}) to {_fmt_ms(last['p99_ms'])} ({last['step']}), "
                     f"{ratio:.1f}x lower.")
    else:
        parts.append(f"At {rate:,.0f} requests/s, {last['step']} did not beat {first['step']} "
                     f"at p99 ({_fmt_ms(last['p99_ms'])} vs {_fmt_ms(first['p99_ms'])}).")
    deltas = steps["p99_ms"].diff().iloc[1:]
    if len(deltas):
        best = int(deltas.idxmin())
        gain = -deltas.loc[best]
        if gain > 0:
            parts.append(f"The largest single gain was {steps.loc[best, 'step']} "
                         f"({steps.loc[best, 'change']}): p99 {_fmt_ms(gain)} lower than the "
                         f"step before.")
        worse = [steps.loc[i, "step"] for i in deltas.index if deltas.loc[i] > 0]
        if worse:
            parts.append(f"p99 got worse at: {', '.join(worse)}.")
    if "mmap" in by.index and "grpc-tls-packed" in by.index:
        remote = by.loc["grpc-tls-packed", "p50_ms"]
        local = by.loc["mmap", "p50_ms"]
        if local < remote:
            parts.append(f"Even the best remote client pays {_fmt_ms(remote - local)} more at "
                         f"the median than reading the mapped file.")
    behind = steps[steps["achieved_per_s"] < 0.97 * steps["offered_per_s"]]
    for _, s in behind.iterrows():
        parts.append(f"{s['step']} could not keep up with {s['offered_per_s']:,.0f} requests/s "
                     f"here (it completed {s['achieved_per_s']:,.0f}/s), so its latency is "
                     f"mostly time spent queued: it is saturated at this load.")
    invalid = steps.loc[~steps["valid"], "step"].tolist()
    if invalid:
        parts.append(f"The load generator could not keep the schedule for {', '.join(invalid)}:"
                     f" those numbers describe the generator's limit as much as the variant.")
    errors = int(steps["errors"].sum())
    if errors:
        parts.append(f"{errors:,} requests failed.")
    parts.append("The write-up reported 95 -> 78 -> 34 ms p99 on production hardware with a "
                 "real network; a loopback server here has no network latency, so compare "
                 "the ratios, not the milliseconds.")
    return " ".join(parts)


def summary_rows(steps: pd.DataFrame) -> list[dict[str, Any]]:
    """The step chart's numbers as rows for ``lootlab.report.publish_summary``."""
    rows = []
    for _, s in steps.iterrows():
        rows.append({"step": s["step"], "p50 ms": round(float(s["p50_ms"]), 3),
                     "p99 ms": round(float(s["p99_ms"]), 3),
                     "achieved/s": round(float(s["achieved_per_s"]), 1),
                     "write-up p99 ms": (None if math.isnan(s["writeup_p99_ms"])
                                         else s["writeup_p99_ms"]),
                     "run": "valid" if s["valid"] else "INVALID (see health)"})
    return rows


# --- rebuild under load -------------------------------------------------------------------

@dataclass
class RebuildRun:
    """Readers at a constant rate while the index was rebuilt and swapped under them.

    ``requests``: one row per query (``t_s`` intended send time from the start,
    ``latency_ms`` from the intended time, ``generation`` the reader saw, ``ok``).
    ``swaps``: the worker's publications (``t_s``, ``generation``, ``build_s``).
    ``worker``: the worker's final status and cycle counts.
    """

    source: str
    rate: float
    duration: float
    records: int
    requests: pd.DataFrame
    swaps: pd.DataFrame
    worker: dict[str, Any]

    @property
    def errors(self) -> int:
        return int((~self.requests["ok"]).sum())

    @property
    def generations_seen(self) -> list[int]:
        return sorted(int(g) for g in self.requests["generation"].dropna().unique())

    def windows(self, width: float = 0.5) -> pd.DataFrame:
        """p50/p99/max latency per ``width``-second window of intended send time."""
        req = self.requests
        bins = (req["t_s"] // width) * width
        grouped = req.groupby(bins)["latency_ms"]
        out = pd.DataFrame({"p50_ms": grouped.quantile(0.5), "p99_ms": grouped.quantile(0.99),
                            "max_ms": grouped.max(), "count": grouped.size()})
        out.index.name = "t_s"
        return out.reset_index()

    def summary(self) -> dict[str, Any]:
        lat = self.requests["latency_ms"]
        achieved = len(self.requests) / self.duration if self.duration else math.nan
        return {"source": self.source, "rate": self.rate, "achieved_per_s": achieved,
                "requests": len(self.requests), "errors": self.errors,
                "p50_ms": float(lat.quantile(0.5)), "p99_ms": float(lat.quantile(0.99)),
                "max_ms": float(lat.max()), "swaps": len(self.swaps),
                "generations_seen": len(self.generations_seen),
                "worker_failures": int(self.worker.get("failures", 0))}


def _mutate(table: pd.DataFrame, rng: np.random.Generator, fraction: float = 0.01) -> pd.DataFrame:
    """Change some rows' value and tick: a new version of the source, same positions."""
    table = table.copy()
    rows = rng.choice(len(table), size=max(1, int(len(table) * fraction)), replace=False)
    table.loc[table.index[rows], "value"] = rng.integers(1, 10_000, size=len(rows))
    table.loc[table.index[rows], "tick"] = table["tick"].max() + 1
    return table


def _rebuild_side(kind: str, work: str, swap_every: float, check_every: float, seed: int,
                  events, stop) -> None:
    """Child process: the source (a file, or a loopback S3 server) and the rebuild worker.

    Every ``swap_every`` seconds it publishes a changed table to the source; the worker
    notices on its next check, rebuilds and swaps the index file atomically.
    """
    from .rebuild import Rebuilder
    from .tables import read_table, write_table

    work_dir = Path(work)
    table = read_table(work_dir / "world.parquet")
    rng = np.random.default_rng(seed)
    cycles: list[dict[str, Any]] = []
    s3 = None
    try:
        if kind == "s3":
            from .s3local import LoopbackS3

            s3 = LoopbackS3().start()
            s3.put_table(table, "lootlab", "world.parquet")
            source: Any = s3.source("lootlab", "world.parquet")

            def publish(df: pd.DataFrame) -> None:
                s3.put_table(df, "lootlab", "world.parquet")
        else:
            source = str(work_dir / "world.parquet")

            def publish(df: pd.DataFrame) -> None:
                write_table(df, work_dir / "world.parquet")

        def on_cycle(result: Any) -> None:
            cycles.append({"time": time.time(), "outcome": result.outcome,
                           "generation": result.generation, "build_s": result.build_seconds,
                           "error": result.error})

        worker = Rebuilder(source, work_dir / "loot.idx", interval=check_every, on_cycle=on_cycle)
        worker.run_once()          # the initial check (the index already matches the world)
        worker.start()
        events.put(("ready", time.time()))
        next_change = time.monotonic() + swap_every
        while not stop.is_set():
            if time.monotonic() >= next_change:
                table = _mutate(table, rng)
                publish(table)
                next_change += swap_every
            stop.wait(0.02)
        worker.stop()
        events.put(("done", {"status": worker.status.as_dict(), "cycles": cycles}))
    except BaseException as exc:  # report, never hang the parent
        events.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        if s3 is not None:
            s3.stop()


def rebuild_under_load(source: str = "local", *, rate: float = 500, duration: float = 10.0,
                       swap_every: float = 1.0, check_every: float = 0.2,
                       records: int = 50_000, radius: int = 32, seed: int = 0,
                       refresh_interval: float = 0.02, workdir: str | Path | None = None,
                       timeout: float = 60.0) -> RebuildRun:
    """Query an index at a constant ``rate`` while a worker (another process) rebuilds it
    from ``source`` ("local" file or "s3" through a loopback S3 server) every ``swap_every``
    seconds.

    Latency is measured from each query's intended send time (open loop: a query held up by
    a slow one is charged for the wait).  The world is a fresh ``records``-row one in a
    temporary directory under the data dir, removed afterwards.
    """
    from .build import build_index
    from .index import open_index
    from .overlay import overlay_queries
    from .paths import data_dir
    from .tables import write_table
    from .world import generate_world

    if source not in ("local", "s3"):
        raise ValueError(f"source must be 'local' or 's3', not {source!r}")
    base = Path(workdir) if workdir else data_dir()
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"rebuild-under-load-{source}-", dir=base))
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    stop = ctx.Event()
    proc = None
    try:
        world = generate_world(records, seed)
        write_table(world, work / "world.parquet")
        build_index(world, work / "loot.idx", source_version="initial")
        proc = ctx.Process(target=_rebuild_side, name="lootlab-rebuild-side",
                           args=(source, str(work), swap_every, check_every, seed, events, stop),
                           daemon=True)
        proc.start()
        kind, payload = events.get(timeout=timeout)
        if kind != "ready":
            raise RuntimeError(f"the rebuild side failed to start: {payload}")
        with open_index(work / "loot.idx", refresh_interval=refresh_interval) as idx:
            queries = overlay_queries(idx, 4096, seed=seed, radius=radius)
            n = int(rate * duration)
            intended = np.arange(n, dtype=np.float64) / rate
            lat = np.empty(n)
            gen = np.empty(n, dtype=np.int64)
            ok = np.ones(n, dtype=bool)
            t0_wall = time.time()
            t0 = time.perf_counter() + 0.05
            for i in range(n):
                due = t0 + intended[i]
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                x, y, z, r = queries[i % len(queries)]
                try:
                    idx.near(int(x), int(y), int(z), int(r))
                except Exception:
                    ok[i] = False
                lat[i] = (time.perf_counter() - due) * 1e3
                gen[i] = idx.generation
        stop.set()
        done: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                kind, payload = events.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue_mod.Empty:
                break
            if kind == "done":
                done = payload
                break
            if kind == "error":
                raise RuntimeError(f"the rebuild side failed: {payload}")
        t_start = t0_wall + 0.05
        swaps = pd.DataFrame([{"t_s": c["time"] - t_start, "generation": c["generation"],
                               "build_s": c["build_s"]}
                              for c in done.get("cycles", []) if c["outcome"] == "built"],
                             columns=["t_s", "generation", "build_s"])
        swaps = swaps[(swaps["t_s"] >= 0) & (swaps["t_s"] <= duration)].reset_index(drop=True)
        requests = pd.DataFrame({"t_s": intended, "latency_ms": lat, "generation": gen, "ok": ok})
        worker = dict(done.get("status", {}))
        worker["cycles_recorded"] = len(done.get("cycles", []))
        return RebuildRun(source=source, rate=float(rate), duration=float(duration),
                          records=int(records), requests=requests, swaps=swaps, worker=worker)
    finally:
        stop.set()
        if proc is not None:
            proc.join(timeout=15)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        shutil.rmtree(work, ignore_errors=True)
