"""Latency vs offered rate across variants, sustainable throughput for a p99 target,
and the spike scenario.  Each point is one independent open-loop run."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from . import schedules
from .results import LoadResult
from .runner import default_workload, run, target_label

Target = str | Callable[[], Any]


def _targets(variants: Iterable[Target] | Mapping[str, Target]) -> list[tuple[str, Target]]:
    if isinstance(variants, Mapping):
        return list(variants.items())
    if isinstance(variants, str) or callable(variants):
        variants = [variants]
    return [(target_label(v), v) for v in variants]


def _schedule(kind: str, rate: float, duration: float, seed: int):
    if kind == "constant":
        return schedules.constant(rate, duration, seed)
    if kind == "poisson":
        return schedules.poisson(rate, duration, seed)
    raise schedules.ScheduleError(f"sweeps use 'constant' or 'poisson' schedules, not {kind!r}")


def _row(res: LoadResult, target_us: float | None) -> dict[str, Any]:
    row = res.summary()
    if target_us is not None:
        row["p99_target_us"] = target_us
        row["meets_target"] = bool(res.health.valid and row["p99_us"] <= target_us
                                   and res.achieved_rate >= 0.99 * res.offered_rate)
    return row


def sweep(variants, rates: Iterable[float], duration: float, *, processes: int = 1,
          concurrency: int = 1, warmup: float = 0.5, schedule: str = "constant",
          p99_target_us: float | None = None, workload: np.ndarray | None = None,
          seed: int = 0, progress: bool = False, stop_after_miss: bool = False,
          results: list | None = None, **run_options) -> pd.DataFrame:
    """One row per (variant, rate): percentiles, achieved rate, health, target met.

    ``stop_after_miss`` skips a variant's higher rates once one misses the target (or is
    invalid): useful when a slow variant would only queue up seconds of backlog.
    Pass a list as ``results`` to collect each ``LoadResult`` as well.
    """
    rates = sorted(float(r) for r in rates)
    if workload is None:
        workload = default_workload(65_536, seed=seed)
    rows = []
    for label, target in _targets(variants):
        for rate in rates:
            res = run(target, _schedule(schedule, rate, duration, seed), processes=processes,
                      concurrency=concurrency, warmup=warmup, workload=workload, label=label,
                      progress=progress, **run_options)
            if results is not None:
                results.append(res)
            row = _row(res, p99_target_us)
            rows.append(row)
            if stop_after_miss and not row.get("meets_target", res.health.valid):
                break
    return pd.DataFrame(rows)


def sustainable(frame: pd.DataFrame, p99_target_us: float) -> pd.DataFrame:
    """Per variant: the highest swept rate that met the p99 target with a valid run."""
    ok = frame[(frame["p99_us"] <= p99_target_us) & frame["valid"]
               & (frame["achieved_rate"] >= 0.99 * frame["rate"])]
    best = ok.sort_values("rate").groupby("variant").tail(1).set_index("variant")
    out = pd.DataFrame(index=pd.Index(frame["variant"].unique(), name="variant"))
    out["sustainable_rate"] = best["rate"]
    out["p99_us_there"] = best["p99_us"]
    out["p99_target_us"] = p99_target_us
    return out.reset_index()


def max_sustainable(target: Target, p99_target_us: float, *, start_rate: float = 1_000,
                    max_rate: float = 1_000_000, duration: float = 2.0, processes: int = 1,
                    concurrency: int = 1, warmup: float = 0.5, growth: float = 2.0,
                    refine: int = 3, workload: np.ndarray | None = None, seed: int = 0,
                    label: str | None = None, retries: int = 0,
                    **run_options) -> tuple[float, pd.DataFrame]:
    """Highest constant rate meeting the p99 target: grow by ``growth`` until a miss, then
    bisect ``refine`` times.  Returns (rate, every trial as rows); rate is NaN if even
    ``start_rate`` misses.  ``retries``: run a missed rate again up to this many times
    before calling it a miss (other work on a shared machine causes one-off misses); every
    attempt is in the rows, with its ``attempt`` number."""
    if workload is None:
        workload = default_workload(65_536, seed=seed)
    label = label or target_label(target)
    rows: list[dict[str, Any]] = []

    def trial(rate: float) -> bool:
        for attempt in range(retries + 1):
            res = run(target, schedules.constant(rate, duration, seed), processes=processes,
                      concurrency=concurrency, warmup=warmup, workload=workload, label=label,
                      **run_options)
            row = _row(res, p99_target_us)
            row["attempt"] = attempt
            rows.append(row)
            if row["meets_target"]:
                return True
        return False

    good, bad = math.nan, math.nan
    rate = float(start_rate)
    while rate <= max_rate:
        if trial(rate):
            good = rate
            rate *= growth
        else:
            bad = rate
            break
    if math.isnan(good):
        return math.nan, pd.DataFrame(rows)
    if not math.isnan(bad):
        for _ in range(refine):
            mid = round((good + bad) / 2, -1)
            if mid in (good, bad):
                break
            if trial(mid):
                good = mid
            else:
                bad = mid
    return good, pd.DataFrame(rows)


def spike_run(target: Target, rate: float, *, factor: float = 10.0, duration: float = 6.0,
              at: float | None = None, length: float = 2.0, processes: int = 1,
              concurrency: int = 1, warmup: float = 0.5, seed: int = 0,
              **run_options) -> LoadResult:
    """The spike scenario: baseline, ``factor`` x burst, back.  See ``.timeline()``."""
    sched = schedules.spike(rate, duration, factor=factor, at=at, length=length, seed=seed)
    return run(target, sched, processes=processes, concurrency=concurrency, warmup=warmup,
               **run_options)
