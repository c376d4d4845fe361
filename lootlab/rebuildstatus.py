"""What the rebuild worker did and where it stands: cycle results, status, backoff.

Plain values for callers (``CycleResult``, ``RebuildStatus``) and the worker's own
bookkeeping (``Ledger``), kept apart from the cycle so the counting rules (a check that
confirms the index resets the failure streak; staleness counts from the last
confirmation, not the last build) are in one place.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any


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


@dataclass
class Ledger:
    """The worker's counters and last outcomes.

    Not locked itself: the worker changes and reads it under its state lock, together
    with the update channel, so a status is one consistent moment.
    """

    generation: int | None
    published_version: str | None
    cycles: int = 0
    builds: int = 0
    failures: int = 0
    consecutive: int = 0
    last_success: float | None = None
    last_build: float | None = None
    last_error: str | None = None
    last_error_time: float | None = None
    build_seconds: float | None = None

    def confirmed(self, checked_at: float) -> None:
        """A cycle ended with the index matching the source (built or unchanged)."""
        self.cycles += 1
        self.consecutive = 0
        self.last_success = checked_at

    def failed(self, message: str) -> None:
        self.cycles += 1
        self.failures += 1
        self.consecutive += 1
        self.last_error = message
        self.last_error_time = time.time()

    def built(self, generation: int, version: str, seconds: float) -> None:
        """A new generation was published."""
        self.generation = generation
        self.published_version = version
        self.builds += 1
        self.build_seconds = seconds
        self.last_build = time.time()

    def status(self, index_path: str, source: str, running: bool, pending_updates: int,
               next_attempt_in: float | None) -> RebuildStatus:
        return RebuildStatus(
            index_path, source, running, self.generation, self.published_version or "",
            self.cycles, self.builds, self.failures, self.consecutive, self.last_success,
            self.last_build, self.last_error, self.last_error_time, self.build_seconds,
            pending_updates, next_attempt_in)


def backoff_delay(consecutive_failures: int, interval: float, backoff: float,
                  max_backoff: float) -> float:
    """Seconds until the next cycle: the interval, or the jittered doubling backoff."""
    n = consecutive_failures
    if not n:
        return interval
    delay = min(max_backoff, backoff * 2 ** (n - 1))
    return delay * random.uniform(0.9, 1.1)
