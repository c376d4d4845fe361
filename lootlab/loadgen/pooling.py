"""Percentiles of repeated trials pooled into one histogram.

A report shows one p99 per measurement.  Three trials of 1,200 requests each leave 12
samples above each trial's p99, too few for a figure a reader leans on; their histograms
added together hold 3,600 (36 above the p99).  So the figure shown is the pooled one, with
its order-statistic interval from the pooled histogram, and the trials' own percentiles
give the spread (min..max) that a difference between variants has to exceed.

Where a trial's latency still holds the generator's own lag (under a CPU limit, or saved
before the lag was taken out: ``LoadResult.lag_subtracted``), that lag can only have made
latencies look longer, so the interval is widened downwards by the largest such lag bound
(``LoadResult.lag_bound_us``); elsewhere the lag was taken out already.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from . import hist, limits, uncertainty
from .results import LoadResult

#: The percentiles pooled: key (as in summary columns) -> percentile.
POOLED = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}


def pooled(results: Sequence[LoadResult], confidence: float = 0.95) -> dict[str, Any]:
    """Per percentile of ``POOLED``: ``<key>_us`` (the raw pooled value, shown only where
    ``<key>_enough``: 10 or more pooled samples above it), ``<key>_ci_low_us`` (widened by
    the lag bound where it stayed in, never below 0; NaN without enough samples), ``<key>_ci_high_us``,
    ``<key>_lag_bound_us``; ``max_us`` (the largest sample); and ``n`` (pooled samples) and
    ``trials``; and the conditions
    the trials shared with their throttle counters summed (``rtt_ms``, ``cpu_limit``,
    ``throttled_periods``, ``throttled_ms``, NaN where unset: ``pooled_conditions``)."""
    if not results:
        return {"n": 0, "trials": 0}
    merged = hist.merge([r.latency for r in results])
    ps = list(POOLED.values())
    est = uncertainty.estimate(merged, ps, confidence)
    values = hist.percentiles(merged, ps)
    out: dict[str, Any] = {"n": int(merged.get_total_count()), "trials": len(results),
                           "max_us": float(hist.percentiles(merged, [100.0])[0]) / 1e3,
                           **limits.frame_fields(*pooled_conditions(results))}
    for i, (key, p) in enumerate(POOLED.items()):
        lag = max((_finite(r.lag_bound_us(p)) for r in results
                   if not getattr(r, "lag_subtracted", False)), default=0.0)
        lo = float(est["ci_low"][i]) / 1e3
        out[f"{key}_us"] = float(values[i]) / 1e3
        out[f"{key}_enough"] = bool(est["enough"][i])
        out[f"{key}_ci_low_us"] = max(0.0, lo - lag) if not math.isnan(lo) else math.nan
        out[f"{key}_ci_high_us"] = float(est["ci_high"][i]) / 1e3
        out[f"{key}_lag_bound_us"] = lag
    return out


def pooled_conditions(results: Sequence[LoadResult]) -> tuple[dict, dict | None]:
    """(conditions the trials share, their throttle counters summed)."""
    return (limits.merge_conditions([r.conditions for r in results]),
            limits.merge_throttle([r.throttle for r in results]))


def _finite(v: float) -> float:
    return 0.0 if v is None or math.isnan(v) else float(v)


__all__ = ["POOLED", "pooled", "pooled_conditions"]
