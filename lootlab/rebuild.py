"""The rebuild worker: keep an index file in step with its source, in a background thread.

Each cycle: fetch the table if its version changed (one conditional request when it did
not), fold in the updates received since the last build, build, validate, publish
atomically (temp file, fsync, ``os.replace``, fsync dir).  Readers (``LootIndex``) see the
new generation on their next check and are never blocked: they keep their old mapping
until their query returns.

Failures never touch the published file.  Updates taken from the channel but not yet
published are kept and folded into the next attempt, which comes after an exponential
backoff.  ``status`` says how stale the index is: the time since the last check that
confirmed the index matches the source.
"""

from __future__ import annotations

import os
import queue
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from . import build as _build
from .build import read_header
from .errors import InvalidRecordsError, LootlabError
from .records import FIELDS, pack_keys
from .sources import Source, open_source
from .tables import columns_of, validate_columns

#: Column of an update that marks a removal (truthy: the position's loot is gone).
REMOVED = "removed"


class RebuildError(LootlabError):
    """A rebuild cycle failed; the published index is untouched."""


class UpdateQueueFull(LootlabError):
    """``apply`` could not enqueue: the channel is full (the update was NOT taken)."""


@dataclass(frozen=True)
class CycleResult:
    """What one cycle did: ``outcome`` is "built", "unchanged" or "failed"."""

    outcome: str
    generation: int | None
    source_version: str
    seconds: float
    build_seconds: float = 0.0
    fetch_seconds: float = 0.0
    records: int = 0
    updates_applied: int = 0
    error: str | None = None


@dataclass(frozen=True)
class RebuildStatus:
    """A snapshot of the worker's state; times are wall-clock (``time.time()``)."""

    index_path: str
    source: str
    running: bool
    generation: int | None
    source_version: str
    cycles: int
    builds: int
    failures: int
    consecutive_failures: int
    last_success: float | None
    last_build: float | None
    last_error: str | None
    last_error_time: float | None
    build_seconds: float | None
    pending_updates: int
    next_attempt_in: float | None
    now: float = field(default_factory=time.time)

    @property
    def staleness(self) -> float:
        """Seconds since a check last confirmed the index matches the source (inf: never)."""
        return self.now - self.last_success if self.last_success is not None else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "staleness": self.staleness}


def normalize_updates(updates: pd.DataFrame | Iterable[Mapping[str, Any]] | np.ndarray) -> pd.DataFrame:
    """Updates as a validated DataFrame of FIELDS + ``removed`` (bool).

    A removal needs only x, y, z; its other fields are ignored.  Raises
    ``InvalidRecordsError`` naming the first bad row, so a bad update is refused at the
    door instead of failing a later cycle.
    """
    if isinstance(updates, pd.DataFrame):
        frame = updates
    elif isinstance(updates, np.ndarray) and updates.dtype.names:
        frame = pd.DataFrame({n: updates[n] for n in updates.dtype.names})
    else:
        frame = pd.DataFrame.from_records(list(updates))
    if not len(frame):
        return pd.DataFrame({**{name: np.zeros(0, np.int64) for name in FIELDS},
                             REMOVED: np.zeros(0, bool)})
    if REMOVED in frame.columns:
        removed = frame[REMOVED].fillna(False).astype(bool).to_numpy()
    else:
        removed = np.zeros(len(frame), dtype=bool)
    frame = frame.copy()
    for name in FIELDS[3:]:            # a removal's metadata is irrelevant: zero it
        if name not in frame.columns:
            if len(frame) and removed.all():
                frame[name] = 0
        elif removed.any():
            frame[name] = frame[name].where(~removed, 0)
    cols = validate_columns(columns_of(frame))
    out = pd.DataFrame(cols)
    out.loc[removed, FIELDS[3:]] = 0
    out[REMOVED] = removed
    return out


def merge_updates(table: pd.DataFrame, updates: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The source table with updates on top (later updates win; removals drop the position).

    Returns (merged table, consolidated updates: one row per touched position).
    """
    if not updates:
        return table, pd.DataFrame(columns=[*FIELDS, REMOVED])
    upd = pd.concat(updates, ignore_index=True)
    ukeys = pack_keys(upd["x"].to_numpy(), upd["y"].to_numpy(), upd["z"].to_numpy())
    keep = _build._dedupe_later_wins(ukeys)
    keep.sort()
    upd = upd.iloc[keep].reset_index(drop=True)
    ukeys = ukeys[keep]
    cols = validate_columns(columns_of(table))
    tkeys = pack_keys(cols["x"], cols["y"], cols["z"])
    untouched = ~np.isin(tkeys, ukeys)
    added = upd[~upd[REMOVED].to_numpy()]
    base = pd.DataFrame({name: cols[name][untouched] for name in FIELDS})
    merged = pd.concat([base, added[FIELDS]], ignore_index=True)
    return merged, upd


class Rebuilder:
    """Background worker keeping ``index_path`` built from ``source`` plus streamed updates.

    ``source``: a ``Source``, a path, or ``s3://bucket/key``.  ``interval``: seconds
    between checks.  After a failure the next attempt comes after ``backoff`` seconds,
    doubling up to ``max_backoff`` (default: ``interval``).  ``max_pending``: how many
    ``apply`` batches may wait for the next cycle before ``apply`` blocks or refuses.
    """

    def __init__(self, source: Source | str | Path, index_path: str | Path, interval: float = 60,
                 *, backoff: float = 1.0, max_backoff: float | None = None, max_pending: int = 1024,
                 on_cycle: Callable[[CycleResult], None] | None = None, clean_temp: bool = True):
        self.source: Source = open_source(source)
        self.index_path = Path(index_path)
        self.interval = float(interval)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff) if max_backoff is not None else max(self.interval,
                                                                                 self.backoff)
        self.on_cycle = on_cycle
        self._queue: queue.Queue[pd.DataFrame] = queue.Queue(maxsize=max_pending)
        self._taken: list[pd.DataFrame] = []      # drained from the queue, not yet published
        self._overlay: list[pd.DataFrame] = []    # published updates, kept on top of the source
        self._table: pd.DataFrame | None = None
        self._version: str | None = None
        self._cycle_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_at: float | None = None
        self._cycles = self._builds = self._failures = self._consecutive = 0
        self._last_success: float | None = None
        self._last_build: float | None = None
        self._last_error: str | None = None
        self._last_error_time: float | None = None
        self._build_seconds: float | None = None
        self._generation: int | None = _build.read_generation(self.index_path)
        self._published_version = _published_source_version(self.index_path)
        self.removed_temp_files: list[Path] = []
        self.callback_error: Exception | None = None
        self.last_exception: BaseException | None = None   # of the last failed cycle
        if clean_temp:
            self.removed_temp_files = clean_temp_files(self.index_path)

    def __repr__(self) -> str:
        return f"<Rebuilder {self.source.description} -> {self.index_path} every {self.interval:g}s>"

    # -- update channel -----------------------------------------------------------------
    def apply(self, updates: pd.DataFrame | Iterable[Mapping[str, Any]] | np.ndarray, *,
              block: bool = True, timeout: float | None = None) -> int:
        """Queue spawned/changed/removed loot for the next cycle; returns rows queued.

        Rows with a truthy ``removed`` column remove their position.  When the channel is
        full: ``block=True`` waits up to ``timeout`` seconds (None: forever), then raises
        ``UpdateQueueFull``; ``block=False`` raises at once.  Never drops silently.
        """
        frame = normalize_updates(updates)
        if frame.empty:
            return 0
        try:
            self._queue.put(frame, block=block, timeout=timeout)
        except queue.Full:
            raise UpdateQueueFull(f"update channel is full ({self._queue.maxsize} batches "
                                  f"waiting for the next cycle); these {len(frame)} rows were "
                                  f"not queued: retry, or raise max_pending") from None
        return len(frame)

    @property
    def pending_updates(self) -> int:
        """Update rows received and not yet published (queued + taken by a failed cycle)."""
        with self._state_lock:
            taken = sum(len(f) for f in self._taken)
        return taken + sum(len(f) for f in list(self._queue.queue))

    def _drain(self) -> None:
        while True:
            try:
                frame = self._queue.get_nowait()
            except queue.Empty:
                return
            with self._state_lock:
                self._taken.append(frame)

    # -- one cycle ------------------------------------------------------------------------
    def run_once(self) -> CycleResult:
        """Fetch if changed, merge updates, build, validate, publish. Never raises for a
        source or publish failure: the result (and ``status``) carries the error."""
        with self._cycle_lock:
            started = time.perf_counter()
            self._drain()
            with self._state_lock:
                taken = list(self._taken)
            fetch_s = build_s = 0.0
            try:
                t0 = time.perf_counter()
                have_table = self._table is not None
                fetched = self.source.fetch(self._version if have_table else None)
                fetch_s = time.perf_counter() - t0
                checked_at = time.time()
                if fetched is not None:
                    table, version = fetched.table, fetched.version
                else:
                    table, version = self._table, self._version
                index_ok = self._generation is not None and self.index_path.exists()
                if not taken and index_ok and version == self._published_version and (
                        fetched is None or not self._overlay):
                    self._table, self._version = table, version
                    return self._finish(CycleResult("unchanged", self._generation, version,
                                                    time.perf_counter() - started,
                                                    fetch_seconds=fetch_s), checked_at)
                t1 = time.perf_counter()
                try:
                    merged, consolidated = merge_updates(table, [*self._overlay, *taken])
                    generation = (_build.read_generation(self.index_path) or 0) + 1
                    pieces, header, _, _ = _build.encode_index(merged, generation=generation,
                                                               source_version=version[:120])
                except InvalidRecordsError as exc:
                    raise RebuildError(f"{self.source.description} (version {version}): bad "
                                       f"rows: {exc}") from exc
                self.index_path.parent.mkdir(parents=True, exist_ok=True)
                _build.publish(pieces, header, self.index_path)
                build_s = time.perf_counter() - t1
            except Exception as exc:  # noqa: BLE001 - any failure leaves the index untouched
                return self._fail(exc, started, fetch_s)
            self._table, self._version = table, version
            with self._state_lock:
                del self._taken[:len(taken)]
                self._overlay = [consolidated] if len(consolidated) else []
                self._generation = generation
                self._published_version = version
                self._builds += 1
                self._build_seconds = build_s
                self._last_build = time.time()
            return self._finish(CycleResult("built", generation, version,
                                            time.perf_counter() - started, build_s, fetch_s,
                                            header.record_count, sum(len(t) for t in taken)),
                            checked_at)

    def _finish(self, result: CycleResult, checked_at: float) -> CycleResult:
        with self._state_lock:
            self._cycles += 1
            self._consecutive = 0
            self._last_success = checked_at
        self._notify(result)
        return result

    def _fail(self, exc: BaseException, started: float, fetch_s: float) -> CycleResult:
        message = f"{type(exc).__name__}: {exc}"
        self.last_exception = exc
        with self._state_lock:
            self._cycles += 1
            self._failures += 1
            self._consecutive += 1
            self._last_error = message
            self._last_error_time = time.time()
        result = CycleResult("failed", self._generation, self._published_version or "",
                             time.perf_counter() - started, fetch_seconds=fetch_s, error=message)
        self._notify(result)
        return result

    def _notify(self, result: CycleResult) -> None:
        """Call ``on_cycle``; its own errors are kept in ``callback_error``, never fatal."""
        if self.on_cycle is None:
            return
        try:
            self.on_cycle(result)
        except Exception as exc:  # noqa: BLE001 - a bad callback must not stop the worker
            self.callback_error = exc

    def next_delay(self) -> float:
        """Seconds until the next cycle: the interval, or the backoff after failures."""
        n = self._consecutive
        if not n:
            return self.interval
        delay = min(self.max_backoff, self.backoff * 2 ** (n - 1))
        return delay * random.uniform(0.9, 1.1)

    # -- the thread ---------------------------------------------------------------------
    def start(self) -> "Rebuilder":
        """Start the background thread; its first cycle runs at once."""
        if self._thread and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"lootlab-rebuild-{self.index_path.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30) -> None:
        """Ask the thread to stop and wait for the running cycle (if any) to end."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def trigger(self) -> None:
        """Run the next cycle now instead of waiting out the interval."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            delay = self.next_delay()
            self._next_at = time.monotonic() + delay
            self._wake.wait(delay)
            self._wake.clear()
        self._next_at = None

    def __enter__(self) -> "Rebuilder":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, predicate: Callable[[RebuildStatus], bool], timeout: float = 10.0,
             poll: float = 0.01) -> RebuildStatus:
        """Wait until ``predicate(status)`` holds; raises TimeoutError with the last status."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status
            if predicate(st):
                return st
            if time.monotonic() >= deadline:
                raise TimeoutError(f"rebuild worker did not reach the state in {timeout}s: {st}")
            time.sleep(poll)

    @property
    def status(self) -> RebuildStatus:
        next_at = self._next_at
        with self._state_lock:
            return RebuildStatus(
                str(self.index_path), self.source.description, self.running, self._generation,
                self._published_version or "", self._cycles, self._builds, self._failures,
                self._consecutive, self._last_success, self._last_build, self._last_error,
                self._last_error_time, self._build_seconds,
                sum(len(f) for f in self._taken) + sum(len(f) for f in list(self._queue.queue)),
                max(0.0, next_at - time.monotonic()) if next_at is not None else None)


def _published_source_version(path: Path) -> str | None:
    header = read_header(path)
    return header.source_version if header else None


def clean_temp_files(index_path: str | Path) -> list[Path]:
    """Remove ``.<name>.tmp-<pid>-*`` files left by builds that died (their pid is gone)."""
    path = Path(index_path)
    removed = []
    try:
        candidates = list(path.parent.glob(f".{path.name}.tmp-*"))
    except OSError:
        return removed
    for tmp in candidates:
        pid_text = tmp.name[len(f".{path.name}.tmp-"):].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and _pid_alive(int(pid_text)):
            continue                      # another live process is writing it right now
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed child not yet reaped) holds no file open for writing
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def serve(source: Source | str | Path, index_path: str | Path, *, interval: float = 60,
          once: bool = False, duration: float | None = None,
          report: Callable[[CycleResult, RebuildStatus], None] | None = None,
          **options: Any) -> RebuildStatus:
    """Run the worker in the foreground (the ``lootlab rebuild`` command).

    ``once``: one cycle, raising ``RebuildError`` if it failed.  Otherwise cycles every
    ``interval`` seconds until ``duration`` elapses or Ctrl-C.
    """
    worker = Rebuilder(source, index_path, interval, **options)
    if report is not None:
        worker.on_cycle = lambda result: report(result, worker.status)
    if once:
        result = worker.run_once()
        if result.outcome == "failed":
            exc = worker.last_exception
            # lootlab's own errors read as sentences; anything else keeps its type name
            why = str(exc) if isinstance(exc, LootlabError) else result.error
            raise RebuildError(f"rebuild of {index_path} from {worker.source.description} "
                               f"failed: {why}")
        return worker.status
    deadline = None if duration is None else time.monotonic() + duration
    worker.start()
    try:
        while worker.running and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic())))
    finally:
        worker.stop()
    return worker.status
