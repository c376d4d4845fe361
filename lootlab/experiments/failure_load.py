"""The load side of the failure experiment: readers driven by ``loadgen`` (one process,
inline, so their logs can be read after the run) and a timeline thread that breaks and
mends things at set times of the measured run.

A ``Recorder`` wraps a reader's client: each query notes its start and end (wall clock,
so they line up with the other processes' logs) and whether it was answered; a reader of
the index file also notes, whenever its generation changes, which source version it now
answers from.  Two list appends per query: nothing the latency would show.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..loadgen.results import LoadResult


class Recorder:
    """A client whose ``near`` logs (start, end, ok) and, for an index, its versions."""

    def __init__(self, client: Any, index: Any = None):
        self.client = client
        self.index = index                  # a LootIndex: log (t, generation, version)
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.oks = bytearray()
        self.versions: list[tuple[float, int, str]] = []
        self._generation: int | None = None

    def near(self, x: int, y: int, z: int, r: int) -> Any:
        t = time.time()
        try:
            out = self.client.near(x, y, z, r)
        except Exception:
            self.starts.append(t)
            self.ends.append(time.time())
            self.oks.append(0)
            raise
        self.starts.append(t)
        self.ends.append(time.time())
        self.oks.append(1)
        if self.index is not None:
            g = self.index.generation
            if g != self._generation:
                self._generation = g
                self.versions.append((t, g, self.index.source_version))
        return out

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()


class Recorders:
    """The zero-argument factory ``loadgen.run`` opens its client with (``processes=1``
    runs it in this process), keeping every ``Recorder`` it made."""

    def __init__(self, opener: Callable[[], Any], index: bool = False):
        self.opener, self.index = opener, index
        self.made: list[Recorder] = []

    def __call__(self) -> Recorder:
        client = self.opener()
        self.made.append(Recorder(client, client if self.index else None))
        return self.made[-1]

    def first_start(self) -> float | None:
        for rec in self.made:
            if rec.starts:
                return rec.starts[0]
        return None

    def calls(self) -> pd.DataFrame:
        """Every query: start, end (wall clock), ok."""
        frames = [pd.DataFrame({"start": np.asarray(r.starts, float),
                                "end": np.asarray(r.ends[:len(r.starts)], float),
                                "ok": np.frombuffer(bytes(r.oks[:len(r.starts)]), np.uint8)
                                .astype(bool)}) for r in self.made]
        if not frames:
            return pd.DataFrame({"start": [], "end": [], "ok": []})
        return pd.concat(frames, ignore_index=True).sort_values("start", ignore_index=True)

    def versions(self) -> pd.DataFrame:
        rows = [v for r in self.made for v in r.versions]
        return pd.DataFrame(rows, columns=["t", "generation", "source_version"]) \
            .sort_values("t", ignore_index=True)


class Timeline(threading.Thread):
    """Runs ``steps`` ((seconds into the measured run, name, action)) once the readers'
    first query shows when the run started; notes when each action ran (``done``: name,
    wall-clock start and end).  An action's exception is kept (``error``) and stops the
    timeline."""

    def __init__(self, recorders: Recorders, warmup: float,
                 steps: list[tuple[float, str, Callable[[], Any]]], start_timeout: float = 60.0):
        super().__init__(name="lootlab-failure-timeline", daemon=True)
        self.recorders, self.warmup, self.steps = recorders, warmup, steps
        self.start_timeout = start_timeout
        self.done: list[tuple[str, float, float]] = []
        self.error: BaseException | None = None
        self.origin: float | None = None
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while (first := self.recorders.first_start()) is None:
            if self._cancel.wait(0.005) or time.monotonic() > deadline:
                return
        self.origin = first + self.warmup
        try:
            for at, name, action in sorted(self.steps, key=lambda s: s[0]):
                wait = self.origin + at - time.time()
                if wait > 0 and self._cancel.wait(wait):
                    return
                t0 = time.time()
                action()
                self.done.append((name, t0, time.time()))
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc


def run_load(recorders: Recorders, *, label: str, rate: float, duration: float,
             warmup: float, queries: np.ndarray, seed: int,
             steps: list[tuple[float, str, Callable[[], Any]]]) -> tuple[LoadResult, Timeline]:
    """Open-loop readers at ``rate`` for ``duration`` seconds (after ``warmup``), with the
    ``steps`` run meanwhile; returns the load result and the timeline (with ``origin``,
    the wall-clock start of the measured run)."""
    from .grid import Cell, run_grid

    timeline = Timeline(recorders, warmup, steps)
    timeline.start()
    try:
        grid = run_grid([Cell(label, recorders, rate=rate)], duration=duration, seed=seed,
                        processes=1, warmup=warmup, workload=queries)
    finally:
        timeline.cancel()
        timeline.join(timeout=60)
    if timeline.error is not None:
        raise RuntimeError(f"the failure timeline failed: {type(timeline.error).__name__}: "
                           f"{timeline.error}") from timeline.error
    if timeline.origin is None:
        first = recorders.first_start()
        timeline.origin = (first if first is not None else math.nan) + warmup
    return grid.results[0][0], timeline


__all__ = ["Recorder", "Recorders", "Timeline", "run_load"]
