"""The rebuild's own cost, per worker: what one replica (or server) pays to keep its file.

A loopback S3 (in this process) holds the table; a spawned process (nothing else in it)
runs the rebuild worker's cycle against it exactly as a replica would:

* ``build``: a fresh worker with no version yet (every replica's first cycle, and every
  cycle after the source changed): one GET of the whole object, parse, build, publish;
* ``check``: the same worker again with the source unchanged: one conditional GET
  (``If-None-Match``) answered 304, no body.

CPU is ``getrusage(RUSAGE_SELF)`` of that process around each cycle (pyarrow's threads
included); GET requests are what the S3 server counted between the phases; bytes are
what the source received.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

BUCKET, KEY = "lootlab", "world.parquet"


def _cpu_now() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _CountingSource:
    """A source that notes the bytes each fetch received (0 for an unchanged check)."""

    def __init__(self, inner: Any):
        self.inner, self.description = inner, inner.description
        self.fetched: list[int] = []

    def fetch(self, known_version: str | None = None) -> Any:
        got = self.inner.fetch(known_version)
        self.fetched.append(0 if got is None else int(got.nbytes))
        return got


def _rebuild_side(endpoint: str, work: str, builds: int, checks: int, conn: Any) -> None:
    """Child process: ``builds`` first cycles, then ``checks`` unchanged ones."""
    try:
        from ..rebuild import Rebuilder
        from ..s3local import FAKE_CREDENTIALS
        from ..sources import S3Source

        def worker(i: int) -> tuple[Rebuilder, _CountingSource]:
            src = _CountingSource(S3Source(BUCKET, KEY, endpoint, **FAKE_CREDENTIALS))
            return Rebuilder(src, Path(work) / f"loot-{i}.idx", interval=3600), src

        rows = []
        for i in range(builds):
            w, src = worker(i)
            cpu0, t0 = _cpu_now(), time.perf_counter()
            result = w.run_once()
            rows.append({"step": "build", "outcome": result.outcome,
                         "cpu_s": _cpu_now() - cpu0, "wall_s": time.perf_counter() - t0,
                         "bytes": src.fetched[-1],
                         "index_bytes": (Path(work) / f"loot-{i}.idx").stat().st_size})
        conn.send(("built", rows))
        conn.recv()
        rows = []
        for _ in range(checks):
            cpu0, t0 = _cpu_now(), time.perf_counter()
            result = w.run_once()
            rows.append({"step": "check", "outcome": result.outcome,
                         "cpu_s": _cpu_now() - cpu0, "wall_s": time.perf_counter() - t0,
                         "bytes": src.fetched[-1], "index_bytes": 0})
        conn.send(("checked", rows))
    except BaseException as exc:  # noqa: BLE001 - report, never hang the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _recv(conn: Any, proc: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not conn.poll(0.2):
        if not proc.is_alive():
            raise RuntimeError(f"the rebuild process exited with code {proc.exitcode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the rebuild process said nothing in {timeout:.0f} s")
    kind, payload = conn.recv()
    if kind == "error":
        raise RuntimeError(f"the rebuild process failed: {payload}")
    return payload


def measure_rebuild(table_path: str | Path | None = None, *, builds: int = 3,
                    checks: int = 10, timeout: float = 300.0) -> pd.DataFrame:
    """One row per cycle: ``step`` (build / check), ``cpu_s``, ``wall_s``, ``bytes``
    downloaded, ``requests_count`` (GETs the S3 server counted, spread evenly over the
    phase's cycles), ``index_bytes`` (the file built), ``object_bytes`` (the table in S3).
    ``table_path``: the Parquet table (default: the default world)."""
    from ..paths import default_world_path, ensure_default_index
    from ..s3local import LoopbackS3

    if table_path is None:
        ensure_default_index()
        table_path = default_world_path()
    data = Path(table_path).read_bytes()
    work = Path(tempfile.mkdtemp(prefix="lootlab-cost-rebuild-"))
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = None
    with LoopbackS3() as s3:
        try:
            s3.put_bytes(data, BUCKET, KEY)
            start = s3.requests
            proc = ctx.Process(target=_rebuild_side, name="lootlab-cost-rebuild",
                               args=(s3.endpoint_url, str(work), builds, checks, child),
                               daemon=True)
            proc.start()
            built = pd.DataFrame(_recv(parent, proc, timeout))
            built["requests_count"] = (s3.requests - start) / max(1, len(built))
            middle = s3.requests
            parent.send("go")
            checked = pd.DataFrame(_recv(parent, proc, timeout))
            checked["requests_count"] = (s3.requests - middle) / max(1, len(checked))
        finally:
            if proc is not None:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(timeout=5)
            shutil.rmtree(work, ignore_errors=True)
    rows = pd.concat([built, checked], ignore_index=True)
    rows["object_bytes"] = len(data)
    return rows


__all__ = ["measure_rebuild"]
