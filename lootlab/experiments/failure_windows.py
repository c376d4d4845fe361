"""Pure derivations for the failure experiment: logs in, per-window rows and a summary out.

Nothing here measures.  The inputs are what a failure run logged, every time a wall-clock
``time.time()`` so logs from different processes line up:

* calls: one row per query the readers sent (``start``, ``end``, ``ok``);
* changes: when the writer changed the world (``t``, ``seq``: 0, 1, 2...);
* served: from when the readers served which change (``t``, ``seq``), read from the
  source version stamped in the index they answered from;
* cycles: the rebuild worker's cycles (``t``, ``outcome``: built / unchanged / failed).

Staleness is end to end, as a player would see it: at time t it is ``t`` minus the time
of the oldest change the readers do not yet serve (0 when they serve the latest).  It
grows one second per second while S3 is down, whatever the worker knows.  ``unconfirmed``
is what the replica itself can know: seconds since a rebuild check last confirmed its
index matches the source (what an alert on the worker's status would see).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

#: Staleness is sampled this often (seconds) to find each window's maximum; it is
#: piecewise linear, so the maximum is also checked just before every change of what
#: the readers serve.
SAMPLE_S = 0.01


def count_windows(starts: np.ndarray, oks: np.ndarray, origin: float, duration: float,
                  width: float = 1.0) -> pd.DataFrame:
    """Answered and failed queries per ``width``-second window of the measured run, by
    the time each was sent (``origin`` is the start of the measured run)."""
    n = max(1, math.ceil(duration / width - 1e-9))
    rel = np.asarray(starts, float) - origin
    ok = np.asarray(oks, bool)
    keep = (rel >= 0) & (rel < duration)
    k = np.minimum((rel[keep] // width).astype(int), n - 1)
    ok_count = np.bincount(k[ok[keep]], minlength=n)[:n]
    err_count = np.bincount(k[~ok[keep]], minlength=n)[:n]
    t = np.arange(n) * width
    return pd.DataFrame({"t_s": t, "t_end_s": np.minimum(t + width, duration),
                         "ok_count": ok_count.astype(int), "error_count": err_count.astype(int)})


def served_at(times: np.ndarray, served: pd.DataFrame) -> np.ndarray:
    """The change ``seq`` the readers served at each of ``times`` (NaN before they first
    answered, or where the index's version matched no upload)."""
    t = np.asarray(times, float)
    if served.empty:
        return np.full(t.shape, np.nan)
    st = served["t"].to_numpy(float)
    sq = served["seq"].to_numpy(float)
    i = np.searchsorted(st, t, side="right") - 1
    out = np.where(i >= 0, sq[np.clip(i, 0, None)], np.nan)
    return out


def staleness_at(times: np.ndarray, changes: pd.DataFrame, served: pd.DataFrame) -> np.ndarray:
    """End-to-end staleness (seconds) at each of ``times``: ``t`` minus the time of the
    oldest change made by ``t`` that the readers did not serve at ``t``; 0 when none."""
    t = np.asarray(times, float)
    seq = served_at(t, served)
    ct = changes["t"].to_numpy(float)
    cs = changes["seq"].to_numpy(float)
    out = np.zeros(t.shape)
    out[np.isnan(seq)] = np.nan
    for j, (when, s) in enumerate(zip(t, seq)):
        if math.isnan(s):
            continue
        newer = np.flatnonzero((cs > s) & (ct <= when))
        if newer.size:
            out[j] = when - ct[newer].min()
    return out


def unconfirmed_at(times: np.ndarray, cycles: pd.DataFrame) -> np.ndarray:
    """Seconds since the last rebuild check that confirmed the index (built or unchanged)
    at each of ``times``; NaN before the first."""
    t = np.asarray(times, float)
    good = np.sort(cycles[cycles["outcome"] != "failed"]["t"].to_numpy(float)) \
        if not cycles.empty else np.array([])
    i = np.searchsorted(good, t, side="right") - 1
    return np.where(i >= 0, t - good[np.clip(i, 0, None)] if good.size else np.nan, np.nan)


def window_max(series: Any, origin: float, windows: pd.DataFrame,
               extra: np.ndarray | None = None) -> np.ndarray:
    """The maximum of ``series(times)`` over each window (sampled every ``SAMPLE_S`` and
    just before each time in ``extra``, where a sawtooth peaks)."""
    out = []
    bumps = np.sort(np.asarray(extra if extra is not None else [], float)) - 1e-6
    for a, b in zip(windows["t_s"], windows["t_end_s"]):
        t = np.arange(a, b, SAMPLE_S) + origin
        inside = bumps[(bumps >= a + origin) & (bumps < b + origin)]
        t = np.concatenate([t, inside, [b + origin - 1e-6]])
        values = series(t)
        out.append(float(np.nanmax(values)) if np.isfinite(values).any() else math.nan)
    return np.asarray(out)


def phase_of(windows: pd.DataFrame, start_s: float, end_s: float) -> list[str]:
    """"before" (ends by the fault), "after" (starts once it is over and recovered) or
    "during" for each window."""
    return ["before" if b <= start_s else "after" if a >= end_s else "during"
            for a, b in zip(windows["t_s"], windows["t_end_s"])]


def p99_of(histograms: list[Any]) -> float:
    """p99 (ms) of the merged histograms; NaN when they hold no answer."""
    from ..loadgen import hist

    h = hist.merge(histograms) if histograms else None
    if h is None or not h.get_total_count():
        return math.nan
    return float(hist.percentiles(h, [99.0])[0]) / 1e6


def p99_windows(intervals: list[Any], n: int) -> np.ndarray:
    """p99 (ms) of each one-second interval histogram (NaN where nothing was answered)."""
    return np.asarray([p99_of([intervals[i]]) if i < len(intervals) else math.nan
                       for i in range(n)])


def p99_phases(intervals: list[Any], phases: list[str]) -> dict[str, float]:
    """p99 (ms) over the windows of each phase, from their histograms merged."""
    return {f"p99_{p}_ms": p99_of([h for h, q in zip(intervals, phases) if q == p])
            for p in ("before", "during", "after")}


def first_ok_after(calls: pd.DataFrame, when: float) -> float:
    """The end time of the first answered query sent at or after ``when`` (NaN: none); a
    query already in flight at ``when`` may still be answered, and does not count."""
    ok = calls[calls["ok"].astype(bool) & (calls["start"] >= when)]
    return float(ok["end"].min()) if len(ok) else math.nan


def fresh_again(changes: pd.DataFrame, served: pd.DataFrame, when: float) -> float:
    """When the readers first served every change made before ``when`` (at or after it);
    NaN if they never did."""
    made = changes[changes["t"] <= when]["seq"]
    if made.empty:
        return when
    need = float(made.max())
    if served_at(np.array([when]), served)[0] >= need:
        return when
    hit = served[(served["t"] >= when) & (served["seq"] >= need)]
    return float(hit["t"].min()) if len(hit) else math.nan


def availability(ok: int, offered: int) -> float:
    """Answered queries over offered ones (the schedule's count in the measured run)."""
    return ok / offered if offered > 0 else math.nan


__all__ = ["availability", "count_windows", "first_ok_after", "fresh_again", "p99_of",
           "p99_phases", "p99_windows", "phase_of", "served_at", "staleness_at",
           "unconfirmed_at", "window_max"]
