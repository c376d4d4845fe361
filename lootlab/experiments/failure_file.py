"""The file variant under failure: readers keep answering from the published index while
S3 is down, answers 5xx, or holds a corrupt upload.

Another process (spawned) holds what a replica's surroundings are: a loopback S3 server,
a writer that changes the world every ``change_every`` seconds and uploads it (retrying
while S3 is away, as an exporter would), and the rebuild worker polling S3 every
``interval`` seconds.  This process runs the readers (``failure_load``) and, at set times,
tells the other one to break S3 and mend it.  Every log is wall-clock, so staleness can
be derived afterwards (``failure_windows``) from what the readers actually served.
"""

from __future__ import annotations

import io
import logging
import multiprocessing as mp
import queue as queue_mod
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..processes import end_process

BUCKET, KEY = "lootlab", "world.parquet"

#: scenario -> (command that breaks, command that mends, what it does in words)
FILE_SCENARIOS: dict[str, tuple[str, str, str]] = {
    "s3-down": ("s3-stop", "s3-start",
                "the S3 server stopped (connections refused), then started again"),
    "s3-500": ("error-on", "error-off",
               ("S3 answered every request with a 5xx error (HTTP 503 SlowDown, the loopback "
                "server's fault switch), then recovered")),
    "corrupt-upload": ("corrupt-on", "corrupt-off",
                       ("the writer uploaded truncated Parquet (a valid upload, checksum and "
                        "all, of bytes that do not parse), then good tables again")),
}


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


class _Writer:
    """Uploads the world to S3 with one attempt per try (no hidden retries), so a failed
    upload is logged when it fails and tried again on the next change."""

    def __init__(self, endpoint_url: str):
        import boto3
        from botocore.config import Config

        from ..s3local import FAKE_CREDENTIALS

        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, **FAKE_CREDENTIALS,
            config=Config(connect_timeout=1, read_timeout=5, retries={"total_max_attempts": 1}))

    def put(self, data: bytes) -> str:
        response = self.client.put_object(Bucket=BUCKET, Key=KEY, Body=data,
                                          ChecksumAlgorithm="SHA256")
        return response["ETag"].strip('"')


def _file_side(work: str, interval: float, change_every: float, seed: int, commands: Any,
               events: Any, stop: Any) -> None:
    """Child process: loopback S3, the writer and the rebuild worker; obeys ``commands``
    (break / mend S3) and reports every log on ``events`` when ``stop`` is set."""
    from ..rebuild import Rebuilder
    from ..s3local import FAKE_CREDENTIALS, LoopbackS3
    from ..sources import S3Source
    from ..tables import read_table
    from .rebuild_under_load import _mutate

    log: dict[str, list] = {"changes": [], "uploads": [], "cycles": [], "events": []}
    state: dict[str, Any] = {"s3": None, "corrupt": False}
    worker = None
    try:
        work_dir = Path(work)
        table = read_table(work_dir / "world.parquet")
        rng = np.random.default_rng(seed)
        # moto can fail a GET that races a PUT of the same key (it closes the old body):
        # the worker sees an S3 error and retries, so the server's traceback is noise
        logging.getLogger("werkzeug").addFilter(lambda record: False)
        s3 = state["s3"] = LoopbackS3().start()
        endpoint = s3.endpoint_url
        port = int(endpoint.rsplit(":", 1)[1])
        s3.ensure_bucket(BUCKET)
        writer = _Writer(endpoint)
        seq = 0
        log["changes"].append((time.time(), 0))
        log["uploads"].append((time.time(), writer.put(_parquet(table)), 0, "good", ""))

        def on_cycle(result: Any) -> None:
            end = time.time()
            log["cycles"].append((end - result.seconds, end, result.outcome,
                                  result.generation, result.error or ""))

        source = S3Source(BUCKET, KEY, endpoint, **FAKE_CREDENTIALS, connect_timeout=1.0,
                          read_timeout=5.0)
        worker = Rebuilder(source, work_dir / "loot.idx", interval=interval, on_cycle=on_cycle)
        first = worker.run_once()
        if first.outcome != "built":
            raise RuntimeError(f"the first build failed: {first.error}")
        worker.start()

        def obey() -> None:
            """Apply each command as it comes (a thread of its own, so a command never
            waits for an upload or a build in the loop below)."""
            while True:
                cmd = commands.get()
                if cmd is None:
                    return
                if cmd == "s3-stop" and state["s3"] is not None:
                    state["s3"].stop()
                    state["s3"] = None
                elif cmd == "s3-start" and state["s3"] is None:
                    state["s3"] = LoopbackS3(port=port).start()
                elif cmd in ("error-on", "error-off") and state["s3"] is not None:
                    state["s3"].fault = "error" if cmd == "error-on" else None
                elif cmd in ("corrupt-on", "corrupt-off"):
                    state["corrupt"] = cmd == "corrupt-on"
                # noted once done: S3 is away once stop() returns, back once start() has
                log["events"].append((time.time(), cmd))

        obeying = threading.Thread(target=obey, name="lootlab-failure-commands", daemon=True)
        obeying.start()
        events.put(("ready", None))
        next_change = time.monotonic() + change_every
        pending, next_try = False, 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_change:
                seq += 1
                table = _mutate(table, rng)
                log["changes"].append((time.time(), seq))
                pending, next_try = True, now
                next_change += change_every
            if pending and now >= next_try:
                data = _parquet(table)
                corrupt = state["corrupt"]
                kind = "corrupt" if corrupt else "good"
                if corrupt:
                    data = data[:len(data) // 2]
                try:
                    etag = writer.put(data)
                except Exception as exc:  # noqa: BLE001 - S3 away: try again shortly
                    log["uploads"].append((time.time(), "", seq, "failed",
                                           f"{type(exc).__name__}: {exc}"[:200]))
                    next_try = now + 0.25
                else:
                    log["uploads"].append((time.time(), etag, seq, kind, ""))
                    pending = False
            stop.wait(0.01)
        worker.stop()
        commands.put(None)
        obeying.join(timeout=10)
        log["status"] = worker.status.as_dict()
        events.put(("done", log))
    except BaseException as exc:  # noqa: BLE001 - report, never hang the parent
        events.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        if worker is not None:
            worker.stop(timeout=10)
        if state["s3"] is not None:
            state["s3"].stop()


def _wait_for(events: Any, kind: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the S3/rebuild process did not report {kind!r} in "
                               f"{timeout:.0f} s")
        try:
            got, payload = events.get(timeout=min(left, 0.5))
        except queue_mod.Empty:
            continue
        if got == "error":
            raise RuntimeError(f"the S3/rebuild process failed: {payload}")
        if got == kind:
            return payload


def run_file_scenario(scenario: str, *, duration: float, rate: float, interval: float,
                      fault_at: float, fault_for: float, warmup: float = 0.5,
                      change_every: float | None = None, records: int = 50_000,
                      radius: int = 32, seed: int = 0, workdir: str | Path | None = None,
                      timeout: float = 60.0) -> dict[str, Any]:
    """Readers on the file while ``scenario`` breaks S3 from ``fault_at`` for ``fault_for``
    seconds of the measured run; returns the logs and the load result (``failure``
    derives rows from them)."""
    from ..build import build_index
    from ..index import open_index
    from ..overlay import overlay_queries
    from ..paths import data_dir
    from ..tables import write_table
    from ..world import generate_world
    from .failure_load import Recorders, run_load

    brk, mend, words = FILE_SCENARIOS[scenario]
    base = Path(workdir) if workdir else data_dir()
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"failure-{scenario}-", dir=base))
    ctx = mp.get_context("spawn")
    commands, events, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    proc = None
    try:
        world = generate_world(records, seed)
        write_table(world, work / "world.parquet")
        build_index(world, work / "queries.idx")
        with open_index(work / "queries.idx") as idx:
            queries = overlay_queries(idx, 4096, seed=seed, radius=radius)
        proc = ctx.Process(target=_file_side, name="lootlab-failure-s3-side",
                           args=(str(work), interval, change_every or interval, seed,
                                 commands, events, stop), daemon=True)
        proc.start()
        _wait_for(events, "ready", timeout)
        path = work / "loot.idx"
        recorders = Recorders(lambda: open_index(path, refresh_interval=0.02), index=True)
        steps = [(fault_at, brk, lambda: commands.put(brk)),
                 (fault_at + fault_for, mend, lambda: commands.put(mend))]
        load, timeline = run_load(recorders, label="mmap", rate=rate, duration=duration,
                                  warmup=warmup, queries=queries, seed=seed, steps=steps)
        stop.set()
        log = _wait_for(events, "done", timeout)
        return {"scenario": scenario, "variant": "mmap", "kind": "file", "fault": words,
                "load": load, "origin": timeline.origin, "calls": recorders.calls(),
                "versions": recorders.versions(), "log": log, "records": records,
                "rate": rate, "seed": seed}
    finally:
        stop.set()
        if proc is not None:
            end_process(proc, grace=15)
        shutil.rmtree(work, ignore_errors=True)


def frames_of(log: dict[str, Any], versions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The child's logs as frames, and ``served`` (t, seq): which change the readers
    answered from, by the source version (ETag) stamped in the index."""
    changes = pd.DataFrame(log["changes"], columns=["t", "seq"])
    uploads = pd.DataFrame(log["uploads"], columns=["t", "etag", "seq", "kind", "error"])
    cycles = pd.DataFrame(log["cycles"], columns=["t_start", "t", "outcome", "generation",
                                                  "error"])
    events = pd.DataFrame(log["events"], columns=["t", "event"])
    good = uploads[uploads["kind"] == "good"]
    seq_of = dict(zip(good["etag"], good["seq"]))
    served = pd.DataFrame({"t": versions["t"].astype(float),
                           "generation": versions["generation"],
                           "seq": [seq_of.get(v, np.nan) for v in versions["source_version"]]})
    return {"changes": changes, "uploads": uploads, "cycles": cycles, "events": events,
            "served": served}


__all__ = ["FILE_SCENARIOS", "frames_of", "run_file_scenario"]
