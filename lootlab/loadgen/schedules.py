"""Load schedules: every intended send time is decided up front, before the first request.

Deciding send times in advance is what lets the runner measure latency from the time a
request *should* have gone out (open loop, as wrk2 does), so a stalled client cannot
hide the queue it causes ("coordinated omission").  Times are integer nanosecond offsets
from the start of the measured window; schedules are seeded and deterministic.
``closed`` is the odd one out: C workers that send, wait for the answer, think, repeat.
It exists to show what an open loop protects you from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import LootlabError

NS = 1_000_000_000


class ScheduleError(LootlabError, ValueError):
    """A schedule's parameters make no sense (negative rate, zero duration, ...)."""


@dataclass(frozen=True)
class Schedule:
    """An open-loop schedule: ``offsets`` are intended send times, ns from the start."""

    kind: str
    duration: float
    offsets: np.ndarray = field(repr=False)
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def open_loop(self) -> bool:
        return True

    @property
    def rate(self) -> float:
        """Offered rate: scheduled requests per second of the schedule."""
        return len(self.offsets) / self.duration

    @property
    def start_rate(self) -> float:
        """The rate at t=0 (used for the warm-up that precedes the measured window)."""
        return float(self.params.get("start_rate", self.params.get("rate", self.rate)))

    @property
    def label(self) -> str:
        inner = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                          for k, v in self.params.items())
        return f"{self.kind}({inner})"

    def __len__(self) -> int:
        return len(self.offsets)

    def rate_per_second(self) -> np.ndarray:
        """Offered requests in each whole second of the schedule (for timelines)."""
        seconds = max(1, math.ceil(self.duration))
        return np.bincount(self.offsets // NS, minlength=seconds)[:seconds]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "duration": self.duration, "seed": self.seed,
                "rate": self.rate, "requests": len(self), "label": self.label,
                **{f"param_{k}": v for k, v in self.params.items()}}


@dataclass(frozen=True)
class ClosedLoop:
    """C workers each send, wait for the answer, sleep ``think_time``, and repeat.

    Latency here is measured from the actual send: a stalled request delays the next one,
    so the stall is counted once instead of once per request it held back.  That is the
    coordinated omission the open-loop schedules exist to avoid; use it to compare.
    """

    concurrency: int
    duration: float
    think_time: float = 0.0
    seed: int = 0

    kind = "closed"

    @property
    def open_loop(self) -> bool:
        return False

    @property
    def rate(self) -> float:
        return math.nan

    @property
    def start_rate(self) -> float:
        return math.nan

    @property
    def params(self) -> dict[str, Any]:
        return {"concurrency": self.concurrency, "think_time": self.think_time}

    @property
    def label(self) -> str:
        return f"closed(concurrency={self.concurrency}, think_time={self.think_time:g})"

    def describe(self) -> dict[str, Any]:
        return {"kind": "closed", "duration": self.duration, "seed": self.seed,
                "rate": math.nan, "requests": 0, "label": self.label,
                "param_concurrency": self.concurrency, "param_think_time": self.think_time}


def _check(rate: float, duration: float) -> None:
    if not (duration > 0 and math.isfinite(duration)):
        raise ScheduleError(f"duration must be a positive number of seconds, got {duration!r}")
    if not (rate > 0 and math.isfinite(rate)):
        raise ScheduleError(f"rate must be a positive number of requests/s, got {rate!r}")


def _check_count(expected: float, what: str) -> None:
    """Refuse a schedule that sends less than one request: its "offered rate" would be
    one request divided by a tiny duration, a figure nothing was measured at."""
    if not expected >= 1:
        raise ScheduleError(f"{what} sends {expected:.3g} requests on average, fewer than one: "
                            "nothing to measure (raise the rate or the duration)")


def _piecewise(segments: list[tuple[float, float]], duration: float) -> np.ndarray:
    """Evenly spaced sends for piecewise-constant rates: [(seconds, rate), ...]."""
    out = []
    t0 = 0.0
    carry = 0.0  # fraction of an interval left over from the previous segment
    for length, rate in segments:
        if length <= 0:
            continue
        interval = 1.0 / rate
        first = t0 + carry * interval
        n = max(0, math.ceil((t0 + length - first) / interval - 1e-9))
        times = first + np.arange(n) * interval
        out.append(times)
        end = first + n * interval
        carry = (end - (t0 + length)) / interval
        t0 += length
    times = np.concatenate(out) if out else np.zeros(0)
    times = times[times < duration]
    return np.round(times * NS).astype(np.int64)


def constant(rate: float, duration: float, seed: int = 0) -> Schedule:
    """``rate`` requests/s evenly spaced for ``duration`` s (wrk2's -R)."""
    _check(rate, duration)
    _check_count(rate * duration, f"constant({rate:g}/s for {duration:g} s)")
    return Schedule("constant", float(duration), _piecewise([(duration, rate)], duration),
                    {"rate": float(rate)}, seed)


def poisson(rate: float, duration: float, seed: int = 0) -> Schedule:
    """Poisson arrivals at mean ``rate``: exponential gaps, seeded."""
    _check(rate, duration)
    _check_count(rate * duration, f"poisson({rate:g}/s for {duration:g} s)")
    rng = np.random.default_rng([seed, 0x5C4ED])
    expect = rate * duration
    n = int(expect + 10 * math.sqrt(expect) + 10)
    times = np.cumsum(rng.exponential(1.0 / rate, n))
    while times[-1] < duration:  # practically never: 10 sigma of head-room above
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / rate, n))])
    times = times[times < duration]
    return Schedule("poisson", float(duration), np.round(times * NS).astype(np.int64),
                    {"rate": float(rate)}, seed)


def ramp(start_rate: float, end_rate: float, duration: float, seed: int = 0) -> Schedule:
    """Rate rising (or falling) linearly from ``start_rate`` to ``end_rate``."""
    _check(start_rate, duration)
    _check(end_rate, duration)
    a, b = float(start_rate), (float(end_rate) - float(start_rate)) / duration
    total = a * duration + b * duration ** 2 / 2
    _check_count(total, f"ramp({start_rate:g} -> {end_rate:g}/s over {duration:g} s)")
    k = np.arange(math.floor(total - 1e-9) + 1, dtype=np.float64)
    if abs(b) < 1e-12:
        times = k / a
    else:  # invert the cumulative count a t + b t^2 / 2 = k
        times = (-a + np.sqrt(np.maximum(a * a + 2 * b * k, 0.0))) / b
    times = times[times < duration]
    return Schedule("ramp", float(duration), np.round(times * NS).astype(np.int64),
                    {"start_rate": a, "end_rate": float(end_rate)}, seed)


def spike(rate: float, duration: float, *, factor: float = 10.0, at: float | None = None,
          length: float = 1.0, seed: int = 0) -> Schedule:
    """Baseline ``rate``, then ``factor`` x that for ``length`` s starting at ``at``, then back.

    ``at`` defaults to a third of the way in.  The story's spike was 7.8 M requests/min.
    """
    _check(rate, duration)
    if not (factor > 0 and math.isfinite(factor)):
        raise ScheduleError(f"spike factor must be positive, got {factor!r}")
    at = duration / 3 if at is None else float(at)
    if not (0 <= at < duration and length > 0 and math.isfinite(length)):
        raise ScheduleError(f"spike must start inside the run (0 <= at < {duration:g}) and "
                            f"last > 0 s, got at={at!r}, length={length!r}")
    length = min(length, duration - at)
    _check_count(rate * (duration - length) + rate * factor * length,
                 f"spike({rate:g}/s for {duration:g} s)")
    segs = [(at, rate), (length, rate * factor), (duration - at - length, rate)]
    return Schedule("spike", float(duration), _piecewise(segs, duration),
                    {"rate": float(rate), "factor": float(factor), "at": at, "length": length},
                    seed)


def closed(concurrency: int, duration: float, think_time: float = 0.0,
           seed: int = 0) -> ClosedLoop:
    """A closed loop of ``concurrency`` workers (for comparison with the open loop)."""
    if int(concurrency) < 1:
        raise ScheduleError(f"closed-loop concurrency must be >= 1, got {concurrency!r}")
    _check(1.0, duration)
    if not (think_time >= 0 and math.isfinite(think_time)):
        raise ScheduleError(f"think_time must be >= 0 seconds, got {think_time!r}")
    return ClosedLoop(int(concurrency), float(duration), float(think_time), seed)
