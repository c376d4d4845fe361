"""Memory of K reader replicas at once: is the index paid once or K times?

K workload processes run the overlay workload, then hold (``--hold``) while their
``/proc/PID/smaps_rollup`` and the index file's mapping are read, all K alive together.
PSS divides each shared page among the processes that map it, so for ``mmap`` the index
pages (page cache, ``Pss_File``) stay about constant in total as K grows while each
replica's share shrinks; anonymous memory (``Pss_Anon``, the interpreter and heap) is paid
per replica.  Remote variants run against ONE loopback server, whose PSS is a row of its own.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ._run import ProfilerError, workload_args
from .procmem import mapping_of, read_proc

FIELDS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "RssAnon", "RssFile", "VmHWM")


def _measure(pid: int, index: str | None) -> dict[str, int]:
    proc = read_proc(pid)
    row = {f: proc.get(f, 0) for f in FIELDS}
    m = mapping_of(index, pid) if index else {}
    row["index_rss"], row["index_pss"] = m.get("Rss", 0), m.get("Pss", 0)
    return row


def _one_k(variant: str, k: int, *, queries: int, index: str | Path | None,
           target: str | None, ca: str | None, timeout: float, seed: int,
           vary_seed: bool) -> list[dict]:
    extra = ["--hold"]
    if target:
        extra += ["--target", target]
    if ca:
        extra += ["--ca", str(ca)]
    procs: list[subprocess.Popen] = []
    rows: list[dict] = []
    try:
        for i in range(k):
            procs.append(subprocess.Popen(
                workload_args(variant, queries=queries, index=index,
                              seed=seed + i if vary_seed else seed, extra=extra),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True))
        summaries = []
        for p in procs:
            line = p.stdout.readline()          # printed once the workload is done
            if not line.startswith("{"):
                err = p.stderr.read() if p.poll() is not None else ""
                raise ProfilerError(f"a {variant} replica did not start: {err.strip()[-300:]}")
            summaries.append(json.loads(line))
        for i, (p, s) in enumerate(zip(procs, summaries)):   # all K are alive now
            row = {"variant": variant, "k": k, "role": "replica", "replica": i, "pid": p.pid}
            row.update(_measure(p.pid, s.get("index_path")))
            rows.append(row)
    finally:
        for p in procs:
            if p.stdin and not p.stdin.closed:
                p.stdin.close()
        for p in procs:
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()
    return rows


def replicas(variant: str = "mmap", ks: Iterable[int] = (1, 2, 4, 8), *, queries: int = 2000,
             index: str | Path | None = None, timeout: float = 120, seed: int = 0,
             vary_seed: bool = False, progress: bool = False) -> pd.DataFrame:
    """One row per replica per K (and per server for remote variants): PSS/RSS in bytes.

    ``progress`` draws a bar over the K values (the CLI does; a notebook tracks its own, so
    by default nothing is written to stderr, which exports as an empty band).

    By default every replica runs the same queries (``seed``), so they touch the same index
    pages and the sharing is exact; ``vary_seed=True`` gives replica i the seed ``seed + i``.

    Columns: variant k role replica pid Rss Pss Pss_Anon Pss_File RssAnon RssFile VmHWM
    index_rss index_pss.  ``totals(frame)`` sums them per K.
    """
    ks = list(ks)
    rows: list[dict] = []
    with ExitStack() as stack:
        target = ca = None
        server_pid = None
        from ..variants import get
        v = get(variant)
        if v.remote:
            from ..remote.loopback import LoopbackServer
            srv = stack.enter_context(LoopbackServer(index=index, tls=v.tls))
            target, ca, server_pid = srv.target, srv.ca, srv.pid
            served = str(getattr(srv, "index", index) or "") or None
        for k in tqdm(ks, desc=f"replicas {variant}", unit="K", leave=False,
                      disable=not progress):
            rows += _one_k(variant, k, queries=queries, index=index, target=target, ca=ca,
                           timeout=timeout, seed=seed, vary_seed=vary_seed)
            if server_pid:
                row = {"variant": variant, "k": k, "role": "server", "replica": -1,
                       "pid": server_pid}
                row.update(_measure(server_pid, served))
                rows.append(row)
    return pd.DataFrame(rows)


def totals(frame: pd.DataFrame) -> pd.DataFrame:
    """Per variant and K: replica PSS total and mean, RSS total, index PSS total (MiB)."""
    rep = frame[frame["role"] == "replica"]
    g = rep.groupby(["variant", "k"])
    out = pd.DataFrame({
        "pss_total_MiB": g["Pss"].sum() / 2**20,
        "pss_per_replica_MiB": g["Pss"].mean() / 2**20,
        "pss_anon_per_replica_MiB": g["Pss_Anon"].mean() / 2**20,
        "pss_file_total_MiB": g["Pss_File"].sum() / 2**20,
        "rss_total_MiB": g["Rss"].sum() / 2**20,
        "index_rss_per_replica_MiB": g["index_rss"].mean() / 2**20,
        "index_pss_total_MiB": g["index_pss"].sum() / 2**20,
    }).reset_index()
    srv = frame[frame["role"] == "server"]
    if len(srv):
        out = out.merge((srv.groupby(["variant", "k"])["Pss"].sum() / 2**20)
                        .rename("server_pss_MiB").reset_index(), on=["variant", "k"], how="left")
    return out
