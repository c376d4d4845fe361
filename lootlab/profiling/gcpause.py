"""GC pauses from ``gc.callbacks``: each collection's generation and wall time.

The callback fires with phase ``start`` and ``stop`` around every collection of the
calling interpreter; the pause is the ``perf_counter_ns`` difference.  The recorder's own
cost is two list appends per collection.
"""

from __future__ import annotations

import gc
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

if TYPE_CHECKING:
    from .stages import Stages


@dataclass(frozen=True)
class GcEvent:
    generation: int
    start_ns: int          # perf_counter_ns at the start callback
    pause_ns: int
    collected: int
    uncollectable: int


class GcRecorder:
    """Records every collection between ``start()`` and ``stop()`` (or as a context manager)."""

    def __init__(self) -> None:
        self.events: list[GcEvent] = []
        self._t0: int | None = None
        self._active = False

    def _callback(self, phase: str, info: dict) -> None:
        now = time.perf_counter_ns()
        if phase == "start":
            self._t0 = now
        elif self._t0 is not None:
            self.events.append(GcEvent(info.get("generation", -1), self._t0, now - self._t0,
                                       info.get("collected", 0), info.get("uncollectable", 0)))
            self._t0 = None

    def start(self) -> GcRecorder:
        if not self._active:
            gc.callbacks.append(self._callback)
            self._active = True
        return self

    def stop(self) -> GcRecorder:
        if self._active:
            gc.callbacks.remove(self._callback)
            self._active = False
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps([asdict(e) for e in self.events]))


def load_events(path: str | Path) -> list[GcEvent]:
    return [GcEvent(**e) for e in json.loads(Path(path).read_text())]


@dataclass
class GcStats:
    """Collections and pauses of one variant's workload, normalised per 1 k operations."""

    variant: str
    ops: int
    events: list[GcEvent] = field(default_factory=list, repr=False)

    @property
    def pauses_ms(self) -> np.ndarray:
        return np.array([e.pause_ns / 1e6 for e in self.events], dtype=float)

    def collections_per_kop(self) -> dict[int, float]:
        """Collections per 1 000 operations, by generation (0, 1, 2)."""
        scale = 1000 / max(self.ops, 1)
        return {g: sum(e.generation == g for e in self.events) * scale for g in (0, 1, 2)}

    def summary(self) -> dict[str, float]:
        p = self.pauses_ms
        per = self.collections_per_kop()
        return {
            "variant": self.variant, "ops": self.ops, "collections": len(p),
            "gen0_per_kop": per[0], "gen1_per_kop": per[1], "gen2_per_kop": per[2],
            "pause_total_ms": float(p.sum()) if len(p) else 0.0,
            "pause_ms_per_kop": float(p.sum()) * 1000 / max(self.ops, 1) if len(p) else 0.0,
            "pause_p50_ms": float(np.percentile(p, 50)) if len(p) else 0.0,
            "pause_p99_ms": float(np.percentile(p, 99)) if len(p) else 0.0,
            "pause_max_ms": float(p.max()) if len(p) else 0.0,
        }


def gc_pauses(variant: str = "mmap", *, queries: int = 5000, index: str | Path | None = None,
              alloc_per_op: int | None = None, workdir: str | Path | None = None,
              network: Any = None, progress: Stages | None = None) -> GcStats:
    """Run ``variant``'s workload in a fresh process with the recorder around the measured
    loop, and collect its pauses (``alloc_per_op`` runs the allocating test workload;
    ``network``, a ``lootlab.Network``, puts a remote variant behind the delaying proxy;
    ``progress``, a ``Stages``, hears of the run)."""
    import tempfile

    from ._run import run, workload_args
    from .stages import stage
    with tempfile.TemporaryDirectory(dir=workdir, prefix="lootlab-gc-") as tmp:
        log = Path(tmp) / "gc.json"
        extra = ["--gc-log", str(log)]
        if alloc_per_op is not None:
            extra += ["--alloc-per-op", str(alloc_per_op)]
        with stage(progress, f"GC pauses: the {variant} workload, {queries:,} queries"):
            summary, _ = run(workload_args(variant, queries=queries, index=index, extra=extra,
                                           network=network),
                             what=f"the {variant} workload (GC pauses)")
        events = load_events(log)
    return GcStats(variant if alloc_per_op is None else "alloc", int(summary["ops"]), events)
