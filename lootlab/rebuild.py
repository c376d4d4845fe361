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

Here: the cycle, the thread and ``serve``.  The update channel is ``updates.py``, the
results, status and backoff bookkeeping ``rebuildstatus.py``, the cleanup of temp files
left by dead builds ``tempfiles.py``; their names stay importable from here.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from . import build as _build
from .build import read_header
from .errors import InvalidRecordsError, LootlabError
from .rebuildstatus import CycleResult, Ledger, RebuildStatus, backoff_delay
from .sources import Source, open_source
from .tempfiles import clean_temp_files
from .updates import UpdateChannel, merge_updates


class RebuildError(LootlabError):
    """A rebuild cycle failed; the published index is untouched."""


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
        self._cycle_lock = threading.Lock()
        self._state_lock = threading.Lock()   # guards the ledger and the taken updates
        self._updates = UpdateChannel(max_pending, self._state_lock)
        self._overlay: list[pd.DataFrame] = []    # published updates, kept on top of the source
        self._table: pd.DataFrame | None = None
        self._version: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_at: float | None = None
        self._ledger = Ledger(_build.read_generation(self.index_path),
                              _published_source_version(self.index_path))
        self.removed_temp_files: list[Path] = []
        self.callback_error: Exception | None = None
        self.last_exception: BaseException | None = None   # of the last failed cycle
        if clean_temp:
            self.removed_temp_files = clean_temp_files(self.index_path)

    def __repr__(self) -> str:
        return (f"<Rebuilder {self.source.description} -> {self.index_path} "
                f"every {self.interval:g}s>")

    # -- update channel -----------------------------------------------------------------
    def apply(self, updates: pd.DataFrame | Iterable[Mapping[str, Any]] | np.ndarray, *,
              block: bool = True, timeout: float | None = None) -> int:
        """Queue spawned/changed/removed loot for the next cycle; returns rows queued.

        Rows with a truthy ``removed`` column remove their position.  When the channel is
        full: ``block=True`` waits up to ``timeout`` seconds (None: forever), then raises
        ``UpdateQueueFull``; ``block=False`` raises at once.  Never drops silently.
        """
        return self._updates.put(updates, block=block, timeout=timeout)

    @property
    def pending_updates(self) -> int:
        """Update rows received and not yet published (queued + taken by a failed cycle)."""
        return self._updates.pending_rows()

    # -- one cycle ------------------------------------------------------------------------
    def run_once(self) -> CycleResult:
        """Fetch if changed, merge updates, build, validate, publish. Never raises for a
        source or publish failure: the result (and ``status``) carries the error."""
        with self._cycle_lock:
            started = time.perf_counter()
            taken = self._updates.take()
            ledger = self._ledger
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
                index_ok = ledger.generation is not None and self.index_path.exists()
                if not taken and index_ok and version == ledger.published_version and (
                        fetched is None or not self._overlay):
                    self._table, self._version = table, version
                    return self._finish(CycleResult("unchanged", ledger.generation, version,
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
                self._updates.published_locked(len(taken))
                self._overlay = [consolidated] if len(consolidated) else []
                ledger.built(generation, version, build_s)
            return self._finish(CycleResult("built", generation, version,
                                            time.perf_counter() - started, build_s, fetch_s,
                                            header.record_count, sum(len(t) for t in taken)),
                                checked_at)

    def _finish(self, result: CycleResult, checked_at: float) -> CycleResult:
        with self._state_lock:
            self._ledger.confirmed(checked_at)
        self._notify(result)
        return result

    def _fail(self, exc: BaseException, started: float, fetch_s: float) -> CycleResult:
        message = f"{type(exc).__name__}: {exc}"
        self.last_exception = exc
        with self._state_lock:
            self._ledger.failed(message)
        result = CycleResult("failed", self._ledger.generation,
                             self._ledger.published_version or "",
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
        return backoff_delay(self._ledger.consecutive, self.interval, self.backoff,
                             self.max_backoff)

    # -- the thread ---------------------------------------------------------------------
    def start(self) -> "Rebuilder":
        """Start the background thread; its first cycle runs at once."""
        if self._thread and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop,
                                        name=f"lootlab-rebuild-{self.index_path.name}",
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
            return self._ledger.status(
                str(self.index_path), self.source.description, self.running,
                self._updates.pending_rows_locked(),
                max(0.0, next_at - time.monotonic()) if next_at is not None else None)


def _published_source_version(path: Path) -> str | None:
    header = read_header(path)
    return header.source_version if header else None


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
