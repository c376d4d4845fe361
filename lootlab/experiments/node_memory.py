"""Memory per node: N reader processes mapping one index file, against N clients of the
remote service (plus the server), for index sizes from the default world up.

Each reader opens the index with ``open_index`` and queries it uniformly (``sample`` then
``get_many``: ``queries_per_page`` times the file's page count, so nearly every page is
touched, as a replica serving uniform traffic touches its whole file).  Then, all alive and
idle, each one's ``/proc/PID/smaps_rollup`` is read: PSS, USS (Private_Clean +
Private_Dirty), RSS, shared.  A node's memory is the sum of its processes' PSS, which counts
the shared index pages once.  The swap's peak: a new generation is published while the
readers hold the old one; each opens and queries the new one before letting the old go, and
the node is read at that moment.  A reader in a child memory cgroup shows what a limit
charges for the page cache (cold: it faults the file in itself; warm: another process did).
Remote: N clients of ``remote_variant`` (their memory) and the server (its own node).

Rows (``NodeMemoryRun.rows``, bytes): kind ("mmap" | "remote-client" | "remote-server"),
phase ("steady" | "swap-peak"), n (readers or clients), index_records, index_bytes, pss/
uss/rss mean and max per process, node_bytes (sum of PSS), index_pss_sum_bytes,
index_resident_share.  ``cgroup``: one row per (index size, cache state).
``processes``: the per-process samples the rows are summed from.

Suggested sizes (records; the default world is 350_000 records, 11.2 MiB; one record costs
about 35.6 bytes of file, so 1 GiB is about 30.2 M records; a world builds at about
1.3 us per record and needs a few GB of RAM while building):
  quick:    readers=(1, 2, 4), index_records=(350_000,), remote_clients=(1, 4)  ~20-30 s
  standard: readers=(1, 2, 4, 8), index_records=(350_000, 2_000_000),
            remote_clients=(1, 4, 16)  under 3 min (with readers up to 16 it took 4.1 min
            on 2 busy cores, load average 11-15)
  full:     readers=(1, 2, 4, 8, 16, 32), index_records=(350_000, 4_000_000, 30_200_000),
            remote_clients=(1, 4, 16)  several minutes (the 1 GiB world: ~40 s to build
            twice, 2 GiB of disk for its two generations)
"""

from __future__ import annotations

import math
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

from ..loadgen.units import plural
from .cold_start_pagecache import drop_file_cache, read_ahead_kb, warm_file_cache
from .node_memory_cgroup import memory_cgroup, memory_cgroup_unavailable
from .node_memory_procs import Pool, Worker, read_process
from .node_memory_sums import summarize

Progress = Callable[[str], None]
#: probe(kind, phase, n, pids) runs right after a measurement, its processes still idle.
Probe = Callable[[str, str, int, list[int]], None]
CGROUP_COLUMNS = ["index_records", "index_bytes", "cache", "resident_share_before",
                  "usage_bytes", "cache_bytes", "rss_bytes", "mapped_file_bytes", "reason"]


@dataclass(frozen=True)
class NodeMemoryRun:
    rows: pd.DataFrame
    cgroup: pd.DataFrame
    processes: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


def _mutated(world: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The next generation's table: same positions, 1 % of values changed."""
    out = world.copy()
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(out), size=max(1, len(out) // 100), replace=False)
    out.loc[out.index[rows], "value"] = rng.integers(1, 10_000, size=len(rows))
    return out


def _publish(gen: Path, path: Path) -> None:
    """Publish a prebuilt generation at ``path`` atomically (a new link renamed over it),
    never writing onto a file readers map."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-link")
    tmp.unlink(missing_ok=True)
    os.link(gen, tmp)
    os.replace(tmp, path)


def _cgroup_rows(path: Path, records: int, size: int, reason: str | None,
                 timeout: float) -> list[dict[str, Any]]:
    """One reader in a fresh memory cgroup on a cold, then a warm page cache."""
    rows = []
    for cache in ("cold", "warm"):
        row: dict[str, Any] = {"index_records": records, "index_bytes": size, "cache": cache}
        if reason:
            rows.append({**row, "resident_share_before": math.nan, "usage_bytes": math.nan,
                         "cache_bytes": math.nan, "rss_bytes": math.nan,
                         "mapped_file_bytes": math.nan, "reason": reason})
            continue
        share = drop_file_cache(path) if cache == "cold" else warm_file_cache(path)
        with memory_cgroup() as group:
            w = Worker(timeout)
            try:
                w.wait_ready()            # before lootlab is imported: all its memory counts
                group.add(w.pid)
                w.call("open", path=str(path), queries_per_page=8, seed=0)
                rows.append({**row, "resident_share_before": share, **group.charges(),
                             "reason": ""})
            finally:
                w.close()
    return rows


def _remote_rows(path: Path, records: int, clients: Sequence[int], variant: str,
                 server_kind: str, queries: int, seed: int, timeout: float,
                 work: Path, meta: dict[str, Any], note: Progress,
                 probe: Probe | None) -> list[dict[str, Any]]:
    from ..index import open_index
    from ..overlay import overlay_queries
    from ..targets import start_server
    from ..variants import get

    with open_index(path) as idx:
        qs = overlay_queries(idx, queries, seed=seed)
    qfile = work / "remote-queries.npy"
    np.save(qfile, qs)
    server, words = start_server(server_kind, tls=get(variant).tls, index=str(path))
    meta["server"] = words
    samples: list[dict[str, Any]] = []
    try:
        with Pool(timeout) as pool:
            for n in sorted(set(clients)):
                note(f"memory per node: {plural(n, variant + ' client')}, {records:,} records")
                pool.grow(n, "remote", variant=variant, target=server.target,
                          ca=str(getattr(server, "ca", "") or "") or None, queries=str(qfile))
                base = {"phase": "steady", "n": n, "index_records": records,
                        "index_bytes": path.stat().st_size}
                samples += [{"kind": "remote-client", **base, **s} for s in pool.measure()]
                spids = list(getattr(server, "pids", [server.pid]))
                samples += [{"kind": "remote-server", **base, "pid": p,
                             **read_process(p, [str(path)])} for p in spids]
                if probe:
                    probe("remote-client", "steady", n, pool.pids)
                    probe("remote-server", "steady", n, spids)
    finally:
        server.stop()
    return samples


def node_memory(readers: Sequence[int] = (1, 2, 4, 8, 16, 32),
                index_records: Sequence[int] = (350_000,),
                remote_clients: Sequence[int] = (1, 4, 16),
                progress: Progress | None = None, *, queries_per_page: float = 8.0,
                swap: bool = True, cgroup: bool = True,
                remote_variant: str = "grpc-tls-pooled", server_kind: str = "auto",
                remote_queries: int = 300, seed: int = 0, timeout: float = 300.0,
                workdir: str | Path | None = None, probe: Probe | None = None) -> NodeMemoryRun:
    """Measure memory per node (see the module docstring); worlds are built in a temporary
    directory under the data dir (or ``workdir``) and removed, with every process."""
    from ..build import build_index
    from ..paths import data_dir
    from ..world import generate_world

    note = progress or (lambda _msg: None)
    base = Path(workdir) if workdir else data_dir()
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="node-memory-", dir=base))
    why_cgroup = (memory_cgroup_unavailable() if cgroup else "not asked (cgroup=False)")
    meta: dict[str, Any] = {
        "readers": list(readers), "index_records": list(index_records),
        "remote_clients": list(remote_clients), "queries_per_page": queries_per_page,
        "remote_variant": remote_variant, "remote_queries_per_client": remote_queries,
        "touch": "sample + get_many, uniform over records", "swap": swap,
        "cgroup_allowed": why_cgroup is None, "cgroup_reason": why_cgroup or "",
        "cache_control": "posix_fadvise(DONTNEED) after fsync on the index file",
        "loadavg_before": os.getloadavg(), "page_size": os.sysconf("SC_PAGE_SIZE")}
    samples: list[dict[str, Any]] = []
    cg_rows: list[dict[str, Any]] = []
    try:
        for records in index_records:
            t = time.perf_counter()
            note(f"memory per node: building two generations of {records:,} records")
            world = generate_world(records, seed)
            gens = [work / f"gen-{records}-1.idx", work / f"gen-{records}-2.idx"]
            build_index(world, gens[0], generation=1)
            build_index(_mutated(world, seed + 1), gens[1], generation=2)
            del world
            meta.setdefault("build_s", {})[records] = time.perf_counter() - t
            path = work / f"loot-{records}.idx"
            _publish(gens[0], path)
            size = path.stat().st_size
            meta["read_ahead_kb"] = read_ahead_kb(path)
            note(f"memory per node: a reader in a memory cgroup, {size / 2**20:.0f} MiB index")
            cg_rows += _cgroup_rows(path, records, size, why_cgroup, timeout)
            current = 0
            with Pool(timeout) as pool:
                for n in sorted(set(readers)):
                    note(f"memory per node: {plural(n, 'reader')}, {records:,} records")
                    pool.grow(n, "open", path=str(path), queries_per_page=queries_per_page,
                              seed=lambda i: seed + 7919 * i)
                    where = {"kind": "mmap", "n": n, "index_records": records,
                             "index_bytes": size}
                    samples += [{**where, "phase": "steady", **s}
                                for s in pool.measure(map(str, [path, *gens]))]
                    if probe:
                        probe("mmap", "steady", n, pool.pids)
                    if not swap:
                        continue
                    current = 1 - current
                    _publish(gens[current], path)
                    pool.broadcast("open_second", path=str(path),
                                   queries_per_page=queries_per_page,
                                   seed=lambda i: seed + 7919 * i)
                    samples += [{**where, "phase": "swap-peak", **s}
                                for s in pool.measure(map(str, [path, *gens]))]
                    if probe:
                        probe("mmap", "swap-peak", n, pool.pids)
                    pool.broadcast("release_first")
            if remote_clients:
                samples += _remote_rows(path, records, remote_clients, remote_variant,
                                        server_kind, remote_queries, seed, timeout, work,
                                        meta, note, probe)
            for g in gens:
                g.unlink(missing_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        meta["loadavg_after"] = os.getloadavg()
    processes = pd.DataFrame(samples)
    return NodeMemoryRun(rows=summarize(processes),
                         cgroup=pd.DataFrame(cg_rows, columns=CGROUP_COLUMNS),
                         processes=processes, meta=meta)


__all__ = ["NodeMemoryRun", "node_memory"]
