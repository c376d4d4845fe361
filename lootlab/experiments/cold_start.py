"""Cold start and swaps: how long a reader takes to its first answer, and how its first
second of queries looks, after a fresh process start and after a generation swap; with the
index's page cache cold or warm; with and without prefaulting the mapping.

Every combination runs in a fresh reader process (``cold_start_worker``) that queries as
fast as one reader can (closed loop, one thread, the overlay workload's ``near`` queries)
for ``window`` seconds from the moment it is told to serve; the window's p99 and its major
page faults per query come from that process alone (``getrusage``).

* cache "cold": the index file (for a swap, the new generation) is evicted with
  ``posix_fadvise(DONTNEED)`` after an ``fsync`` (no privilege needed; the machine's other
  caches are left alone; ``drop_caches`` is never written), and the share left resident
  is in the row; "warm": the file was read once just before.  Only the index is made cold:
  the interpreter and libraries a fresh process loads stay in the cache.  One major fault
  reads a whole read-ahead window (``meta["read_ahead_kb"]``; 8 MiB on some VMs, 128 KiB
  on many disks), so a file smaller than a few windows costs only a few faults cold.
* prefault: ``open_index(prefault=)``: "none", "populate" (``MADV_POPULATE_READ``, what
  ``MAP_POPULATE`` does, on the mapping ``Snapshot`` made), "willneed" (read-ahead).
* after "start": ``process_start_s`` is spawn to ready (imports), ``open_s`` the open with
  its prefault, ``first_answer_s`` from the command to the first answer.  After "swap":
  the reader serves generation 1, generation 2 is published, and the reader is told to take
  it now (``refresh()``, its prefault included, then queries).

Rows (``ColdStartRun.rows``): index_records index_bytes prefault cache after trial
resident_share_before process_start_s open_s first_answer_s first_query_ms queries_count
p50_ms p99_ms max_ms majflt_open_count majflt_count majflt_per_query minflt_per_query.

Suggested sizes: quick: index_records=350_000, window=0.5 (12 processes, ~15 s);
standard: index_records=2_000_000, window=1.0 (64 s on 2 busy cores, load average 14); full: index_records=30_200_000
(about 1 GiB), window=1.0, repeats=3 (a few minutes, the world build included).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .cold_start_pagecache import (
    drop_caches_status,
    drop_file_cache,
    read_ahead_kb,
    warm_file_cache,
)
from .node_memory_procs import Worker

Progress = Callable[[str], None]
WORKER = "lootlab.experiments.cold_start_worker"
COLUMNS = ["index_records", "index_bytes", "prefault", "cache", "after", "trial",
           "resident_share_before", "process_start_s", "open_s", "first_answer_s",
           "first_query_ms", "queries_count", "p50_ms", "p99_ms", "max_ms",
           "majflt_open_count", "majflt_count", "majflt_per_query", "minflt_per_query"]


@dataclass(frozen=True)
class ColdStartRun:
    rows: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


def _publish(gen: Path, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-link")
    tmp.unlink(missing_ok=True)
    os.link(gen, tmp)
    os.replace(tmp, path)


def _set_cache(path: Path, cache: str) -> float:
    return drop_file_cache(path) if cache == "cold" else warm_file_cache(path)


def _one(path: Path, gens: list[Path], qfile: Path, prefault: str, cache: str,
         after: str, window: float, timeout: float) -> dict[str, Any]:
    """One fresh reader for one combination; its window's figures."""
    _publish(gens[0], path)
    w = Worker(timeout, module=WORKER)
    try:
        if after == "start":
            share = _set_cache(path, cache)
            w.wait_ready()
            out = w.call("start", path=str(path), prefault=prefault, queries=str(qfile),
                         window=window)
            out["process_start_s"] = w.ready["ready_s"]
        else:
            warm_file_cache(path)
            w.call("serve", path=str(path), prefault=prefault, queries=str(qfile))
            share = _set_cache(gens[1], cache)
            _publish(gens[1], path)
            out = w.call("swap", window=window)
            out["process_start_s"] = float("nan")     # no process started: n/a for a swap
    finally:
        w.close()
    q = max(1, out["queries_count"])
    return {"resident_share_before": share, **{k: out[k] for k in (
        "process_start_s", "open_s", "first_answer_s", "first_query_ms", "queries_count",
        "p50_ms", "p99_ms", "max_ms", "majflt_open_count", "majflt_count")},
        "majflt_per_query": out["majflt_count"] / q,
        "minflt_per_query": out["minflt_count"] / q}


def cold_start(index_records: int = 350_000,
               prefault: Sequence[str] = ("none", "populate", "willneed"),
               cache: Sequence[str] = ("cold", "warm"), after: Sequence[str] = ("start", "swap"),
               progress: Progress | None = None, *, window: float = 1.0, repeats: int = 1,
               radius: int = 64, seed: int = 0, timeout: float = 300.0,
               workdir: str | Path | None = None) -> ColdStartRun:
    """Measure every (prefault, cache, after) combination ``repeats`` times (see the module
    docstring); the world is built in a temporary directory under the data dir (or
    ``workdir``) and removed, with every process."""
    from ..build import build_index, new_lineage
    from ..index import PREFAULTS, open_index
    from ..overlay import overlay_queries
    from ..paths import data_dir
    from ..world import generate_world

    for name, values, allowed in (("prefault", prefault, PREFAULTS),
                                  ("cache", cache, ("cold", "warm")),
                                  ("after", after, ("start", "swap"))):
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"{name} must be among {', '.join(allowed)}, not {bad}")
    note = progress or (lambda _msg: None)
    base = Path(workdir) if workdir else data_dir()
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cold-start-", dir=base))
    meta: dict[str, Any] = {
        "index_records": index_records, "window_s": window, "repeats": repeats,
        "load": "closed loop: one reader thread, as fast as it answers, overlay near "
                f"queries of radius {radius}",
        "cache_control": "posix_fadvise(DONTNEED) after fsync on the index file",
        "drop_caches": drop_caches_status(), "loadavg_before": os.getloadavg()}
    rows: list[dict[str, Any]] = []
    try:
        note(f"cold start: building two generations of {index_records:,} records")
        world = generate_world(index_records, seed)
        lineage = new_lineage()
        gens = [work / "gen-1.idx", work / "gen-2.idx"]
        t = time.perf_counter()
        build_index(world, gens[0], generation=1, lineage=lineage)
        world.loc[world.index[::100], "value"] += 1
        build_index(world, gens[1], generation=2, lineage=lineage)
        meta["build_s"] = time.perf_counter() - t
        del world
        with open_index(gens[0]) as idx:
            queries = overlay_queries(idx, 200_000, seed=seed, radius=radius)
        qfile = work / "queries.npy"
        np.save(qfile, queries)
        path = work / "loot.idx"
        size = gens[0].stat().st_size
        meta["read_ahead_kb"] = read_ahead_kb(gens[0])
        combos = list(itertools.product(range(repeats), after, cache, prefault))
        for i, (trial, aft, cch, pf) in enumerate(combos, 1):
            note(f"cold start {i}/{len(combos)}: after {aft}, {cch} cache, prefault {pf}")
            row = _one(path, gens, qfile, pf, cch, aft, window, timeout)
            rows.append({"index_records": index_records, "index_bytes": size, "prefault": pf,
                         "cache": cch, "after": aft, "trial": trial, **row})
        meta["fadvise_drop_worked"] = bool(all(
            r["resident_share_before"] < 0.05 for r in rows if r["cache"] == "cold"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        meta["loadavg_after"] = os.getloadavg()
    return ColdStartRun(rows=pd.DataFrame(rows, columns=COLUMNS), meta=meta)


__all__ = ["COLUMNS", "ColdStartRun", "cold_start"]
