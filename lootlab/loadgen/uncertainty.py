"""Distribution-free confidence intervals for percentiles, from HDR histogram counts.

Of n independent samples, the number K that fall below the true p-quantile is
Binomial(n, p/100) whatever the distribution.  So the order statistics of ranks l and u
(1-based) bracket the true quantile with probability P(l <= K < u), and we pick l and u
from the binomial's tails so that this is at least ``confidence``.

The histogram stores buckets, not samples: the lower end is the *lowest* value of the
rank-l sample's bucket and the upper end the *highest* value of the rank-u sample's
bucket, so the interval contains the exact order-statistic interval and quantisation
can only widen it, never bias it.

The samples of a load run are not independent (bursts, GC, queueing correlate
neighbours), so the interval is a lower bound on the real uncertainty: repeat runs.
"""

from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram
from scipy.stats import binom

from . import hist

#: Fewer samples above a percentile than this: "too few samples", no value, no interval.
#: The one definition: every verdict (``lootlab.experiments.verdicts``) reads it from here,
#: the estimator that refuses to compute below it.
MIN_TAIL = 10


def enough_samples(n, p) -> np.ndarray | bool:
    """True where ``n * (1 - p/100) >= 10``: the tail above ``p`` holds 10 samples or more."""
    out = np.asarray(n, dtype=np.float64) * (1.0 - np.asarray(p, dtype=np.float64) / 100.0) \
        >= MIN_TAIL - 1e-9
    return bool(out) if out.ndim == 0 else out


def point_rank(n: int, p) -> np.ndarray:
    """The rank hdrh reads a percentile at (so the point estimate matches ``percentiles``)."""
    p = np.asarray(p, dtype=np.float64)
    return np.maximum((np.minimum(p, 100.0) * n / 100 + 0.5).astype(np.int64), 1)


def ci_ranks(n: int, p, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks (l, u) with P(l <= K < u) >= confidence for K ~ Binomial(n, p/100).

    Ranks are clipped to [1, n] and widened to include the point estimate's rank, so the
    interval always contains the reported value.
    """
    if not 0 < confidence < 1:
        from ..errors import LootlabError
        raise LootlabError(f"confidence must be between 0 and 1, not {confidence!r}")
    p = np.asarray(p, dtype=np.float64)
    q = np.clip(p / 100.0, 0.0, 1.0)
    alpha = 1.0 - confidence
    # ppf(a) is the smallest k with CDF(k) >= a, so CDF(l - 1) < alpha/2 and
    # CDF(u - 1) >= 1 - alpha/2: together P(l <= K <= u - 1) >= 1 - alpha.
    lo = np.asarray(binom.ppf(alpha / 2, n, q), dtype=np.float64)
    hi = np.asarray(binom.ppf(1 - alpha / 2, n, q), dtype=np.float64) + 1
    lo = np.nan_to_num(lo, nan=1.0).astype(np.int64)
    hi = np.nan_to_num(hi, nan=float(n)).astype(np.int64)
    pt = point_rank(n, p)
    lo = np.clip(np.minimum(lo, pt), 1, max(n, 1))
    hi = np.clip(np.maximum(hi, pt), 1, max(n, 1))
    return lo, hi


def value_at_rank(h: HdrHistogram, rank, highest: bool = True) -> np.ndarray:
    """Value (ns) of the rank-th smallest sample (1-based): its bucket's highest equivalent
    value, or lowest with ``highest=False``.  NaN for an empty histogram."""
    rank = np.atleast_1d(np.asarray(rank, dtype=np.int64))
    total = h.get_total_count()
    if total == 0:
        return np.full(rank.shape, np.nan)
    cum = np.cumsum(hist.counts_array(h))
    idx = np.searchsorted(cum, np.clip(rank, 1, total), side="left").astype(np.int64)
    return hist.bucket_values(h, idx, highest=highest).astype(np.float64)


def estimate(h: HdrHistogram, ps, confidence: float = 0.95) -> dict[str, np.ndarray]:
    """Per percentile: ``value``, ``ci_low``, ``ci_high`` (ns), ``n`` and ``enough``.

    Where the tail holds fewer than 10 samples, value and interval are NaN and ``enough``
    False, except p100 (the observed maximum, a fact of the run, not an estimate): its value
    stays, its interval is NaN.
    """
    ps = np.atleast_1d(np.asarray(ps, dtype=np.float64))
    n = int(h.get_total_count())
    value = hist.percentiles(h, ps)
    enough = np.asarray(enough_samples(n, ps), dtype=bool).reshape(ps.shape)
    lo = np.full(ps.shape, np.nan)
    hi = np.full(ps.shape, np.nan)
    if n and enough.any():
        rl, ru = ci_ranks(n, ps[enough], confidence)
        lo[enough] = value_at_rank(h, rl, highest=False)
        hi[enough] = value_at_rank(h, ru, highest=True)
    value = np.where(enough | (ps >= 100.0), value, np.nan)
    return {"value": value, "ci_low": lo, "ci_high": hi,
            "n": np.full(ps.shape, n, dtype=np.int64), "enough": enough}


def summary_fields(h: HdrHistogram, confidence: float = 0.95) -> dict[str, float | bool]:
    """``n`` and, per headline percentile, ``p99_ci_low_us``, ``p99_ci_high_us`` and
    ``p99_enough`` (a summary's raw ``p99_us`` is a number to show only where that holds)."""
    ps = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
    est = estimate(h, list(ps.values()), confidence)
    out: dict[str, float | bool] = {"n": int(h.get_total_count())}
    for i, k in enumerate(ps):
        out.update({f"{k}_ci_low_us": float(est["ci_low"][i]) / 1e3,
                    f"{k}_ci_high_us": float(est["ci_high"][i]) / 1e3,
                    f"{k}_enough": bool(est["enough"][i])})
    return out
