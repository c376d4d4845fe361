"""Streamed loot updates: validating them, the bounded channel, and folding them into a table.

Updates (spawned, changed or removed loot) reach the rebuild worker between builds.  They
are refused at the door if malformed, wait in a bounded channel (a full channel blocks
or refuses, never drops), and each cycle folds every update received so far on top of
the source table, later updates winning.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from . import build as _build
from .errors import LootlabError
from .records import FIELDS, pack_keys
from .tables import columns_of, validate_columns

#: Column of an update that marks a removal (truthy: the position's loot is gone).
REMOVED = "removed"


class UpdateQueueFull(LootlabError):
    """``apply`` could not enqueue: the channel is full (the update was NOT taken)."""


def normalize_updates(updates: pd.DataFrame | Iterable[Mapping[str, Any]] | np.ndarray
                      ) -> pd.DataFrame:
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


def merge_updates(table: pd.DataFrame,
                  updates: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
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


class UpdateChannel:
    """Update batches waiting for a cycle, and those a cycle took but has not yet published.

    A failed cycle keeps what it took, so the next attempt folds it in again.  ``lock``
    guards the taken batches; the worker passes its state lock, so a status shows a
    publish and the end of its updates' pending in one step.
    """

    def __init__(self, max_pending: int, lock: threading.Lock):
        self._queue: queue.Queue[pd.DataFrame] = queue.Queue(maxsize=max_pending)
        self._taken: list[pd.DataFrame] = []
        self._lock = lock

    def put(self, updates: pd.DataFrame | Iterable[Mapping[str, Any]] | np.ndarray, *,
            block: bool = True, timeout: float | None = None) -> int:
        """Validate and queue one batch; returns rows queued (see ``Rebuilder.apply``)."""
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

    def _queued_rows(self) -> int:
        return sum(len(f) for f in list(self._queue.queue))

    def pending_rows(self) -> int:
        """Rows received and not yet published (queued + taken by a failed cycle)."""
        with self._lock:
            taken = sum(len(f) for f in self._taken)
        return taken + self._queued_rows()

    def pending_rows_locked(self) -> int:
        """``pending_rows`` for a caller that already holds the lock."""
        return sum(len(f) for f in self._taken) + self._queued_rows()

    def take(self) -> list[pd.DataFrame]:
        """Move every queued batch to the taken ones; returns all taken, oldest first."""
        while True:
            try:
                frame = self._queue.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                self._taken.append(frame)
        with self._lock:
            return list(self._taken)

    def published_locked(self, count: int) -> None:
        """The first ``count`` taken batches are published: forget them (lock held)."""
        del self._taken[:count]
