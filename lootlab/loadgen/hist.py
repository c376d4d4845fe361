"""HDR histograms in integer nanoseconds: bulk recording that checks every value fits,
merging (never averaging percentiles), and fast percentile reads.

The Python ``hdrh`` package records one value per call and *returns False* for a value
outside its range instead of raising.  ``record_many`` folds values to their bucket's
lowest equivalent value with numpy (which does not change which bucket they land in),
then calls ``record_value(value, count)`` once per distinct bucket and counts every
False it gets back, so a dropped value is always reported, never lost silently.
"""

from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_NS = 1
HIGHEST_NS = 3_600 * 1_000_000_000   # one hour: longer than any run, so nothing falls out
SIGNIFICANT_FIGURES = 3              # 0.1 % value precision, as wrk2 reports


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_FIGURES)


def _bucket_floor(h: HdrHistogram, values: np.ndarray) -> np.ndarray:
    """Each value's bucket's lowest equivalent value (hdrh's rule, vectorized)."""
    v = values.astype(np.int64)
    masked = v | np.int64(h.sub_bucket_mask)
    # bit length of masked: exact through frexp for values below 2**53
    pow2ceiling = np.frexp(masked.astype(np.float64))[1].astype(np.int64)
    shift = pow2ceiling - (h.sub_bucket_half_count_magnitude + 1)
    return (v >> shift) << shift


def record_many(h: HdrHistogram, values_ns: np.ndarray) -> int:
    """Record integer-ns values; returns how many were dropped (out of range)."""
    values = np.asarray(values_ns, dtype=np.int64)
    if values.size == 0:
        return 0
    dropped = int(np.count_nonzero(values < 0))
    values = values[values >= 0]
    too_big = values > h.highest_trackable_value
    big = values[too_big]
    values = values[~too_big]
    # values above the configured maximum may still fit the last bucket: let hdrh decide
    for value in big.tolist():
        if not h.record_value(int(value)):
            dropped += 1
    if values.size:
        floors, counts = np.unique(_bucket_floor(h, values), return_counts=True)
        vmax, vmin = int(values.max()), int(values.min())
        for value, count in zip(floors.tolist(), counts.tolist()):
            if not h.record_value(value, count):
                dropped += count
        # keep hdrh's exact min/max tracking (the floors round them down)
        h.max_value = max(h.max_value, vmax)
        h.min_value = min(h.min_value, vmin)
    return dropped


def histogram_of(values_ns: np.ndarray) -> tuple[HdrHistogram, int]:
    h = new_histogram()
    return h, record_many(h, values_ns)


def merge(histograms) -> HdrHistogram:
    """One histogram holding every count of the given ones (hdrh ``add``, which checks range)."""
    out = new_histogram()
    for h in histograms:
        if h.get_total_count():
            out.add(h)
    return out


def encode(h: HdrHistogram) -> str:
    return h.encode().decode("ascii") if h.get_total_count() else ""


def decode(blob: str) -> HdrHistogram:
    if not blob:
        return new_histogram()
    h = HdrHistogram.decode(blob.encode("ascii") if isinstance(blob, str) else blob)
    # decoded histograms keep the payload's range; make it ours so merges stay exact
    if (h.lowest_trackable_value, h.significant_figures) != (LOWEST_NS, SIGNIFICANT_FIGURES):
        return merge([h])
    return h


def counts_array(h: HdrHistogram) -> np.ndarray:
    return np.ctypeslib.as_array(h.counts)[: h.counts_len].astype(np.int64)


def _values_of_indices(h: HdrHistogram, idx: np.ndarray, highest: bool) -> np.ndarray:
    half_mag = h.sub_bucket_half_count_magnitude
    bucket = (idx >> half_mag) - 1
    sub = (idx & (h.sub_bucket_half_count - 1)) + h.sub_bucket_half_count
    low = bucket < 0
    sub = np.where(low, sub - h.sub_bucket_half_count, sub)
    bucket = np.where(low, 0, bucket)
    shift = bucket + h.unit_magnitude
    value = sub << shift
    if not highest:
        return value
    return value + (np.int64(1) << shift) - 1


def bucket_values(h: HdrHistogram, idx: np.ndarray, highest: bool = True) -> np.ndarray:
    """Lowest (or highest) equivalent value of the buckets at counts-array indices ``idx``."""
    return _values_of_indices(h, np.asarray(idx, dtype=np.int64), highest)


def percentiles(h: HdrHistogram, ps) -> np.ndarray:
    """Values (ns) at the given percentiles, with hdrh's rule (highest equivalent value).

    Same answers as ``get_value_at_percentile``; vectorized because that walks every
    counter in Python per call.  100 gives the max; an empty histogram gives NaN.
    """
    ps = np.atleast_1d(np.asarray(ps, dtype=np.float64))
    total = h.get_total_count()
    if total == 0:
        return np.full(ps.shape, np.nan)
    cum = np.cumsum(counts_array(h))
    target = np.maximum((np.minimum(ps, 100.0) * total / 100 + 0.5).astype(np.int64), 1)
    idx = np.searchsorted(cum, target, side="left")
    out = _values_of_indices(h, idx.astype(np.int64), highest=True).astype(np.float64)
    zero = ps == 0
    if zero.any():
        out[zero] = _values_of_indices(h, idx[zero].astype(np.int64), highest=False)
    return out


def spectrum(h: HdrHistogram, ticks_per_half_distance: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(percentile, value ns) pairs densifying toward the tail, as HdrHistogram plots them."""
    if h.get_total_count() == 0:
        return np.zeros(0), np.zeros(0)
    ps = [0.0]
    p = 0.0
    half = 50.0
    while p < 99.9999:
        step = half / ticks_per_half_distance
        for _ in range(ticks_per_half_distance):
            p += step
            ps.append(p)
        half /= 2
    ps = np.array(ps)
    return ps, percentiles(h, ps)
