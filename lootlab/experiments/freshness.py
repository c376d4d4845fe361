"""Freshness: how long after a change is made does every replica serve it?

``freshness(interval, changes, source)`` writes ``changes`` changes to a source (a local
directory table, or one object in a loopback S3 server), one at a time, while a rebuild
worker (``lootlab.rebuild.Rebuilder``, in its own process) polls it every ``interval``
seconds, and ``readers`` reader processes hold the published index open as replicas do
(``open_index`` with its refresh) and poll each change's position.  A change is one new
loot record at a position the world does not hold, carrying a marker value, so the first
``get`` that returns it is the first read that serves it.

Beside them (``remote=True``) the remote service (``targets.start_server``, gRPC over TLS)
serves the same published file, and one client of it polls the same changes: its
staleness is on the same rows (``kind="remote"``).  It reads the same file, so it can
only add its own refresh (the server's, 50 ms by default in both servers) and a round
trip; what it saves is that one server refresh stands for every client.

The next change is written only once every reader has served the previous one (or a
timeout passed), after a further pause uniform in ``[0, interval)``, so each change lands
at a random phase of the worker's poll: the wait for the poll is then uniform in
``[0, interval)`` and the median staleness about half an interval plus one build.

Rows and their columns: ``freshness_rows``; the PBS curve: ``freshness_curve.pbs_curve``.

Suggested sizes (``sizes.py`` is the lead's).  The wall time is about ``changes * (interval
+ staleness)`` plus the start-up (a world, an index, five spawned processes: 5-15 s on a
busy 2-core machine):

* quick: ``interval=1.0, changes=4, readers=2, records=50_000``, local and s3: 21 s and
  15 s at a load average of 13 (both together under 40 s; less on a quiet machine)
* standard: ``changes=10, readers=3, records=350_000`` (the default world and its 11 MiB
  index): local at ``interval=1.0`` and ``2.0``, s3 at ``2.0`` (44 s and 57 s per 2 s
  run at a load average of 12): ``pbs_curve(rows, measured_intervals=(1, 2))`` then has
  two measured intervals and models 10 s and 60 s
* full: as standard plus ``interval=10.0`` measured for both sources (~2.5 min each)
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue as queue_mod
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..processes import end_process
from .freshness_curve import pbs_curve
from .freshness_procs import local_opener, reader_main, rebuilder_main
from .freshness_rows import staleness_rows, summarize

#: The marker value of change ``i`` (so a record found at its position is that change).
MARKER_BASE = 3_000_000_000
BUCKET, KEY = "lootlab", "world.parquet"


@dataclass(frozen=True)
class FreshnessRun:
    """``rows``: one per (change, reader), ``freshness_rows.ROW_COLUMNS``; ``cycles``: the
    rebuild worker's cycles (wall times, outcome, generation, changes first carried);
    ``meta``: what was run and on what (parameters, server, load average before/after)."""

    rows: pd.DataFrame
    meta: dict[str, Any]
    cycles: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> pd.DataFrame:
        return summarize(self.rows)

    def curve(self, **options: Any) -> pd.DataFrame:
        return pbs_curve(self.rows, **options)


def fresh_positions(world: pd.DataFrame, n: int, seed: int) -> list[tuple[int, int, int]]:
    """``n`` distinct positions inside the world's bounds that the world does not hold."""
    rng = np.random.default_rng(seed + 7919)
    taken = set(zip(world["x"].tolist(), world["y"].tolist(), world["z"].tolist()))
    lo = [int(world[c].min()) for c in "xyz"]
    hi = [int(world[c].max()) for c in "xyz"]
    out: list[tuple[int, int, int]] = []
    while len(out) < n:
        p = tuple(int(rng.integers(a, b + 1)) for a, b in zip(lo, hi))
        if p not in taken:
            taken.add(p)
            out.append(p)         # type: ignore[arg-type]
    return out


def change_rows(world: pd.DataFrame, positions: list[tuple[int, int, int]]) -> pd.DataFrame:
    """One loot record per change, at its position, with its marker value."""
    n = len(positions)
    frame = pd.DataFrame(positions, columns=["x", "y", "z"])
    frame["item_id"] = np.arange(n, dtype=np.uint32) + 1
    frame["value"] = (MARKER_BASE + np.arange(n)).astype(np.uint32)
    frame["quantity"], frame["rarity"], frame["flags"] = 1, 0, 0
    frame["tick"] = int(world["tick"].max()) + 1 + np.arange(n)
    return frame.astype({c: world[c].dtype for c in world.columns})


class _Events:
    """The one queue every child reports on, and what it has said so far."""

    def __init__(self, q: Any):
        self.q = q
        self.cycles: list[dict[str, Any]] = []
        self.seen: list[tuple[str, int, float, Any]] = []
        self.ready: set[str] = set()
        self.bye: set[str] = set()
        self.done: dict[str, Any] = {}
        self.watch: dict[str, Any] = {}      # label -> its process, to notice a silent death

    def pump(self, until: Callable[[], bool], deadline: float, *, strict: bool = True) -> bool:
        """Take events until ``until()`` holds (True) or the deadline passes (False);
        ``strict``: a child's error (or silent death) raises."""
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                kind, label, payload = self.q.get(timeout=min(left, 0.2))
            except queue_mod.Empty:
                dead = [lb for lb, p in self.watch.items()
                        if p.exitcode is not None and lb not in self.bye]
                if dead and strict:
                    raise RuntimeError(f"freshness: {', '.join(dead)} exited without a word "
                                       f"(exit code {self.watch[dead[0]].exitcode})")
                continue
            if kind == "cycle":
                self.cycles.append(payload)
            elif kind == "seen":
                self.seen.append((label, *payload))
            elif kind == "ready":
                self.ready.add(label)
            elif kind == "done":
                self.done = payload
            elif kind == "bye":
                self.bye.add(label)
            elif kind == "error" and strict:
                raise RuntimeError(f"freshness: {label} failed: {payload}")
        return True

    def has_seen(self, labels: list[str], change: int) -> bool:
        got = {label for label, i, _, _ in self.seen if i == change}
        return all(label in got for label in labels)


def freshness(interval: float = 2.0, changes: int = 10, source: str = "local",
              readers: int = 3, records: int = 350_000, remote: bool = True,
              progress: Callable[[str], None] | None = None, *, poll: float = 0.005,
              reader_refresh: float = 0.05, source_delay: float = 0.0, seed: int = 0,
              server: str = "auto", change_timeout: float | None = None,
              workdir: str | Path | None = None, start_timeout: float = 90.0) -> FreshnessRun:
    """Measure the staleness of ``changes`` changes (see the module docstring).

    ``poll``: how often each reader queries the positions of the changes written so far
    (the resolution of ``seen_at``); ``reader_refresh``: the readers' ``refresh_interval``
    (the library default); ``source_delay``: seconds the source holds each new table before
    handing it to the worker (a known delay, for tests); ``server``: which remote server
    (``targets.start_server``); ``change_timeout``: how long to wait for every reader to
    serve a change before writing the next (default ``3 * interval + 30 + source_delay``).
    """
    from ..build import build_index
    from ..paths import data_dir
    from ..tables import write_table
    from ..world import generate_world

    if source not in ("local", "s3"):
        raise ValueError(f"source must be 'local' or 's3', not {source!r}")
    if interval <= 0 or changes < 1 or readers < 1 or records < 1:
        raise ValueError("interval must be positive; changes, readers and records at least 1")
    say = progress or (lambda _msg: None)
    timeout = change_timeout if change_timeout is not None else 3 * interval + 30 + source_delay
    load_before = [round(v, 2) for v in os.getloadavg()]
    started = time.monotonic()
    base = Path(workdir) if workdir else data_dir()
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"freshness-{source}-", dir=base))
    ctx = mp.get_context("spawn")
    events = _Events(ctx.Queue())
    stop, written = ctx.Event(), ctx.Value("i", 0)
    procs: list[Any] = []
    s3 = srv = None
    try:
        world = generate_world(records, seed)
        positions = fresh_positions(world, changes, seed)
        adds = change_rows(world, positions)
        markers = adds["value"].astype(int).tolist()
        index_path = work / "loot.idx"
        if source == "local":
            (work / "source").mkdir()
            write_table(world, work / "source" / "0000-world.parquet")
            spec: dict[str, Any] = {"kind": "local", "path": str(work / "source")}
        else:
            from ..s3local import LoopbackS3
            s3 = LoopbackS3().start()
            s3.put_table(world, BUCKET, KEY)
            spec = {"kind": "s3", "endpoint": s3.endpoint_url, "bucket": BUCKET, "key": KEY}
        build_index(world, index_path, source_version="initial")
        say(f"freshness {source}: {records:,} records, worker every {interval:g} s")
        worker = ctx.Process(target=rebuilder_main, name="lootlab-freshness-rebuilder",
                             args=(spec, str(index_path), interval, source_delay, positions,
                                   events.q, stop), daemon=True)
        worker.start()
        procs.append(worker)
        events.watch["rebuilder"] = worker
        if not events.pump(lambda: "rebuilder" in events.ready,
                           time.monotonic() + start_timeout):
            raise RuntimeError(f"freshness: the rebuild worker did not start in "
                               f"{start_timeout:g} s")
        labels = [f"reader-{k}" for k in range(readers)]
        openers: dict[str, Any] = {lb: partial(local_opener, str(index_path), reader_refresh)
                                   for lb in labels}
        server_words = "n/a: remote=False"
        if remote:
            from ..targets import client_factory, start_server
            srv, server_words = start_server(server, index=str(index_path), tls=True)
            openers["remote-0"] = client_factory("grpc-tls-pooled", srv)
        for label, opener in openers.items():
            p = ctx.Process(target=reader_main, name=f"lootlab-freshness-{label}",
                            args=(label, opener, positions, markers, written, poll,
                                  events.q, stop), daemon=True)
            p.start()
            procs.append(p)
            events.watch[label] = p
        if not events.pump(lambda: set(openers) <= events.ready,
                           time.monotonic() + start_timeout):
            raise RuntimeError(f"freshness: readers not ready in {start_timeout:g} s "
                               f"(ready: {sorted(events.ready)})")
        rng = random.Random(seed)
        made: list[dict[str, Any]] = []
        timeouts = 0
        for i in range(changes):
            events.pump(lambda: False, time.monotonic() + rng.uniform(0, interval))
            written.value = i + 1
            made.append(_write_change(i, spec, world, adds, s3, work))
            ok = events.pump(partial(events.has_seen, list(openers), i),
                             time.monotonic() + timeout)
            timeouts += not ok
            got = [at for label, j, at, _ in events.seen if j == i and label in labels]
            worst = (f"every reader in {max(got) - made[-1]['made_at']:.2f} s"
                     if len(got) == len(labels) else f"not served by all in {timeout:g} s")
            say(f"change {i + 1}/{changes}: {worst}")
        stop.set()
        events.pump(lambda: {"rebuilder", *openers} <= events.bye, time.monotonic() + 30)
        rows = staleness_rows(made, events.cycles, events.seen, labels,
                              [lb for lb in openers if lb.startswith("remote")],
                              source=source, interval=interval)
        meta = {"source": source, "interval_s": float(interval), "changes": changes,
                "readers": readers, "records": records, "remote": remote,
                "remote_server": server_words, "server_refresh_s": 0.05 if remote else None,
                "poll_s": poll, "reader_refresh_s": reader_refresh,
                "source_delay_s": source_delay, "seed": seed, "change_timeout_s": timeout,
                "changes_timed_out": timeouts, "index_bytes": index_path.stat().st_size,
                "worker": events.done, "cpu_count": os.cpu_count(),
                "loadavg_before": load_before,
                "loadavg_after": [round(v, 2) for v in os.getloadavg()],
                "wall_s": round(time.monotonic() - started, 2), "start_method": "spawn"}
        cycles = pd.DataFrame(events.cycles)
        return FreshnessRun(rows=rows, meta=meta, cycles=cycles)
    finally:
        stop.set()
        # drain what the children still say: one with unread events on the queue cannot exit
        with contextlib.suppress(Exception):
            events.pump(lambda: set(events.watch) <= events.bye | _gone(events.watch),
                        time.monotonic() + 10, strict=False)
        _clean_up(procs, [srv, s3], work)


def _gone(watch: dict[str, Any]) -> set[str]:
    return {label for label, p in watch.items() if p.exitcode is not None}


def _clean_up(procs: list[Any], servers: list[Any], work: Path) -> None:
    """Stop every process and server this run started and remove its files; one step
    failing (or interrupted) never skips the others."""
    steps: list[Callable[[], None]] = [partial(_end_process, p) for p in procs]
    steps += [s.stop for s in servers if s is not None]
    try:
        for step in steps:
            with contextlib.suppress(Exception):   # keep cleaning; the run's own error wins
                step()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _end_process(p: Any) -> None:
    end_process(p, grace=10)


def _write_change(i: int, spec: dict[str, Any], world: pd.DataFrame, adds: pd.DataFrame,
                  s3: Any, work: Path) -> dict[str, Any]:
    """Write change ``i`` to the source; ``made_at`` when the write starts (an upload's time
    counts toward staleness), ``committed_at`` when the source has acknowledged it."""
    from ..tables import write_table

    if spec["kind"] == "local":
        made_at = time.time()
        write_table(adds.iloc[[i]], work / "source" / f"change-{i:04d}.parquet")
        committed_at = time.time()
    else:
        import io
        buf = io.BytesIO()
        pd.concat([world, adds.iloc[:i + 1]], ignore_index=True).to_parquet(buf, index=False)
        body = buf.getvalue()
        made_at = time.time()
        s3.client().put_object(Bucket=spec["bucket"], Key=spec["key"], Body=body,
                               ChecksumAlgorithm="SHA256")
        committed_at = time.time()
    return {"change": i, "made_at": made_at, "committed_at": committed_at}
