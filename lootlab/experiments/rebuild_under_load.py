"""The rebuild-under-load experiment behind notebook 05: readers at a constant rate
(through ``loadgen``) while a background worker rebuilds the index from a local directory or
a local S3 server and swaps it under them.  Returns a ``RebuildRun`` (plain data); the
notebook and ``lootlab.plots.steps`` only draw it, ``lootlab.report.rebuild`` words it.

The readers are a one-cell, one-trial ``experiments.grid`` (the same runner and schedule as
every other experiment) and its row an ``experiments.rows.Measurement``; what is particular
to the experiment is around the run: the rebuilding process and the generation log.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..processes import end_process

if TYPE_CHECKING:
    from ..loadgen.results import LoadResult

@dataclass
class RebuildRun:
    """Readers at a constant rate (through ``loadgen``) while the index was rebuilt and
    swapped under them.

    ``load``: the readers' ``LoadResult`` (latency from intended send times, per-second
    intervals, counts, health; the warm-up before ``t_s`` = 0 is discarded and counted).
    ``seen``: when the readers first saw each generation (``t_s`` from the start of the
    measured window, negative in the warm-up; ``generation``).
    ``swaps``: the worker's publications in the measured window (``t_s``, ``generation``,
    ``build_s``).  ``worker``: the worker's final status and cycle counts.
    """

    source: str
    rate: float
    duration: float
    records: int
    load: LoadResult
    seen: pd.DataFrame
    swaps: pd.DataFrame
    worker: dict[str, Any]

    @property
    def errors(self) -> int:
        """Reader queries that failed or timed out (a swap must cause none)."""
        return int(self.load.counts.get("failed", 0) + self.load.counts.get("timeouts", 0))

    @property
    def generations_seen(self) -> list[int]:
        """Generations the readers answered from during the measured window."""
        seen = self.seen[self.seen["t_s"] <= self.duration]
        before = seen[seen["t_s"] <= 0]
        keep = pd.concat([before.tail(1), seen[seen["t_s"] > 0]])
        return sorted(int(g) for g in keep["generation"].unique())

    def windows(self, width: float = 1.0) -> pd.DataFrame:
        """p50/p99/max latency (ms) per ``width``-second window of the measured run, from
        the merged per-second histograms (so ``width`` is a whole number of seconds)."""
        from ..loadgen import hist

        k = round(width)
        if k < 1 or abs(width - k) > 1e-9:
            raise ValueError(f"width must be a whole number of seconds, not {width!r}")
        intervals = self.load.intervals
        rows = []
        for s in range(0, len(intervals), k):
            h = hist.merge(intervals[s:s + k])
            p50, p99, pmax = hist.percentiles(h, [50, 99, 100]) / 1e6
            rows.append({"t_s": float(s), "t_end_s": float(min(s + k, len(intervals))),
                         "p50_ms": p50, "p99_ms": p99, "max_ms": pmax,
                         "count": int(h.get_total_count())})
        return pd.DataFrame(rows, columns=["t_s", "t_end_s", "p50_ms", "p99_ms", "max_ms",
                                           "count"])

    def summary(self) -> dict[str, Any]:
        """One row for the run: the readers' ``Measurement`` (latency in ms, rates per
        second, ``errors`` and ``timeouts``, health) and the rebuild's own figures (source,
        warm-up discarded, swaps, generations seen, worker failures)."""
        from .rows import measure

        return {**measure(self.load).as_dict(), "source": self.source,
                "warmup_discarded": int(self.load.counts.get("warmup_requests", 0)),
                "swaps": len(self.swaps), "generations_seen": len(self.generations_seen),
                "worker_failures": int(self.worker.get("failures", 0))}


class _GenerationClient:
    """A reader on the work index whose ``near`` notes (wall time, generation) whenever its
    generation changes: one comparison per query, nothing the latency would show."""

    def __init__(self, path: Path, refresh_interval: float):
        from ..index import open_index

        self.idx = open_index(path, refresh_interval=refresh_interval)
        self.log: list[tuple[float, int]] = []
        self._last: int | None = None

    def near(self, x: int, y: int, z: int, r: int) -> Any:
        t = time.time()
        out = self.idx.near(x, y, z, r)
        g = self.idx.generation
        if g != self._last:
            self._last = g
            self.log.append((t, g))
        return out

    def close(self) -> None:
        self.idx.close()


class _Readers:
    """The zero-argument factory ``loadgen.run`` opens its client with; it keeps the client
    so the generation log can be read after the run (``processes=1`` runs it here)."""

    def __init__(self, path: Path, refresh_interval: float):
        self.path, self.refresh_interval = path, refresh_interval
        self.clients: list[_GenerationClient] = []

    def __call__(self) -> _GenerationClient:
        self.clients.append(_GenerationClient(self.path, self.refresh_interval))
        return self.clients[-1]


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
    from ..rebuild import Rebuilder
    from ..tables import read_table, write_table

    work_dir = Path(work)
    table = read_table(work_dir / "world.parquet")
    rng = np.random.default_rng(seed)
    cycles: list[dict[str, Any]] = []
    s3 = None
    try:
        if kind == "s3":
            from ..s3local import LoopbackS3

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
                       refresh_interval: float = 0.02, warmup: float = 0.5,
                       workdir: str | Path | None = None, timeout: float = 60.0) -> RebuildRun:
    """Query an index at a constant ``rate`` while a worker (another process) rebuilds it
    from ``source`` ("local" file or "s3" through a loopback S3 server) every ``swap_every``
    seconds.  The readers are driven by ``loadgen.run`` (one process, inline), so latency
    is measured from each query's intended send time like every other experiment, and the
    first ``warmup`` seconds are discarded (and counted).  The world is a fresh
    ``records``-row one in a temporary directory under the data dir, removed afterwards."""
    from ..build import build_index
    from ..index import open_index
    from ..overlay import overlay_queries
    from ..paths import data_dir
    from ..tables import write_table
    from ..world import generate_world
    from .grid import Cell, run_grid

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
        with open_index(work / "loot.idx") as idx:
            queries = overlay_queries(idx, 4096, seed=seed, radius=radius)
        proc = ctx.Process(target=_rebuild_side, name="lootlab-rebuild-side",
                           args=(source, str(work), swap_every, check_every, seed, events, stop),
                           daemon=True)
        proc.start()
        kind, payload = events.get(timeout=timeout)
        if kind != "ready":
            raise RuntimeError(f"the rebuild side failed to start: {payload}")
        readers = _Readers(work / "loot.idx", refresh_interval)
        grid = run_grid([Cell(f"rebuild-{source}", readers, rate=rate)], duration=duration,
                        seed=seed, processes=1, warmup=warmup, workload=queries)
        load = grid.results[0][0]
        stop.set()
        done = _wait_done(events, timeout)
        log = [entry for client in readers.clients for entry in client.log]
        # the first query was due at the run's t0; the measured window starts warmup later
        t_start = (log[0][0] if log else time.time()) + warmup
        seen = pd.DataFrame([{"t_s": t - t_start, "generation": g} for t, g in log],
                            columns=["t_s", "generation"])
        swaps = pd.DataFrame([{"t_s": c["time"] - t_start, "generation": c["generation"],
                               "build_s": c["build_s"]}
                              for c in done.get("cycles", []) if c["outcome"] == "built"],
                             columns=["t_s", "generation", "build_s"])
        swaps = swaps[(swaps["t_s"] >= 0) & (swaps["t_s"] <= duration)].reset_index(drop=True)
        worker = dict(done.get("status", {}))
        worker["cycles_recorded"] = len(done.get("cycles", []))
        return RebuildRun(source=source, rate=float(rate), duration=float(duration),
                          records=int(records), load=load, seen=seen, swaps=swaps,
                          worker=worker)
    finally:
        stop.set()
        if proc is not None:
            end_process(proc, grace=15)
        shutil.rmtree(work, ignore_errors=True)


def _wait_done(events: Any, timeout: float) -> dict[str, Any]:
    """The rebuild side's final report (its status and cycles), or {} if it never came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kind, payload = events.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue_mod.Empty:
            break
        if kind == "done":
            return payload
        if kind == "error":
            raise RuntimeError(f"the rebuild side failed: {payload}")
    return {}
