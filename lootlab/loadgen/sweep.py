"""Latency vs offered rate across variants, sustainable throughput for a p99 target,
repeated trials, and the spike scenario.  Each point is one independent open-loop run.

Repeated trials (``trials=`` R) are interleaved: trial 1 of every variant (and rate), then
trial 2 of every one, so slow drift on the machine hits every variant alike.  A trial's
percentile is summarised as the median of the R trials with their spread, min..max (with
R = 3 an interquartile range would be the middle trial itself; min..max is the honest
spread at the R a report can afford).  The order-statistic interval of one trial
(``LoadResult.latency_ci_us``) assumes independent samples, which latency is not: the
spread between trials is what a difference has to exceed.
"""

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


def ci_us(res: LoadResult, p: float) -> tuple[float, float]:
    """The 95 % interval of ``res``'s latency percentile ``p`` (us), NaNs when the result
    cannot give one."""
    fn = getattr(res, "latency_ci_us", None)
    if fn is None:
        return math.nan, math.nan
    lo, hi = fn(p)
    return float(lo), float(hi)


def _row(res: LoadResult, target_us: float | None, trial: int = 0) -> dict[str, Any]:
    row = res.summary()
    row["trial"] = trial
    row.setdefault("n", res.samples())
    if "p99_ci_low_us" not in row:
        row["p99_ci_low_us"], row["p99_ci_high_us"] = ci_us(res, 99)
    # under a CPU limit the generator's own lag stays in the latency (it is part of the
    # throttled replica) and can only have lengthened it: widen the interval down.
    # Elsewhere it was taken out already (``loadgen.summary``).
    lag = math.nan if getattr(res, "lag_subtracted", False) else \
        row.get("lag_bound_p99_us", math.nan)
    if not math.isnan(lag) and not math.isnan(row["p99_ci_low_us"]):
        row["p99_ci_low_us"] = max(0.0, row["p99_ci_low_us"] - lag)
    if target_us is not None:
        row["p99_target_us"] = target_us
        row["meets_target"] = bool(res.health.valid and row["p99_us"] <= target_us
                                   and res.achieved_rate >= 0.99 * res.offered_rate)
    return row


def sweep(variants, rates: Iterable[float], duration: float, *, processes: int = 1,
          concurrency: int = 1, warmup: float = 0.5, schedule: str = "constant",
          p99_target_us: float | None = None, workload: np.ndarray | None = None,
          seed: int = 0, progress: bool = False, stop_after_miss: bool = False,
          results: list | None = None, trials: int = 1, **run_options) -> pd.DataFrame:
    """One row per (trial, variant, rate): percentiles, n, achieved rate, health, target
    met.  ``trials`` repeats the whole sweep, interleaved (trial 1 of every variant and
    rate, then trial 2...); ``summarize_trials`` turns the rows into median [min..max].

    ``stop_after_miss`` skips a variant's higher rates once one misses the target (or is
    invalid): useful when a slow variant would only queue up seconds of backlog; later
    trials stop at the same rate.  Pass a list as ``results`` to collect each
    ``LoadResult`` as well (in the order run).
    """
    rates = sorted(float(r) for r in rates)
    if trials < 1:
        raise schedules.ScheduleError(f"trials must be at least 1, not {trials!r}")
    if workload is None:
        workload = default_workload(65_536, seed=seed)
    rows = []
    last_rate: dict[str, float] = {}
    for trial in range(trials):
        for label, target in _targets(variants):
            for rate in rates:
                if rate > last_rate.get(label, math.inf):
                    break
                res = run(target, _schedule(schedule, rate, duration, seed + trial),
                          processes=processes, concurrency=concurrency, warmup=warmup,
                          workload=workload, label=label, progress=progress, **run_options)
                if results is not None:
                    results.append(res)
                row = _row(res, p99_target_us, trial)
                rows.append(row)
                if stop_after_miss and not row.get("meets_target", res.health.valid):
                    last_rate.setdefault(label, rate)
                    break
    return pd.DataFrame(rows)


def summarize_trials(trials: pd.DataFrame, by: list[str], medians: list[str], *,
                     lows: Iterable[str] = (), highs: Iterable[str] = (),
                     sums: Iterable[str] = (), firsts: Iterable[str] = (),
                     joins: Iterable[str] = ()) -> pd.DataFrame:
    """One row per ``by`` group of per-trial rows, groups in first-seen order: each of
    ``medians`` as the median of the trials with ``<col>_lo``/``<col>_hi`` (min..max
    across them); ``lows``/``highs`` as their min/max (interval ends), ``sums`` summed,
    ``firsts`` the first trial's, ``joins`` the distinct texts other than "ok" joined by
    "; " ("ok" when none); ``trials`` (how many), ``invalid_trials``, ``valid`` (every
    trial valid) and ``n`` (the smallest trial's sample count) where the rows have them."""
    out = []
    for key, g in trials.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(by, key))
        for col in medians:
            v = g[col].astype(float)
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = v.median(), v.min(), v.max()
        row.update({c: g[c].astype(float).min() for c in lows})
        row.update({c: g[c].astype(float).max() for c in highs})
        row.update({c: g[c].sum() for c in sums})
        row.update({c: g[c].iloc[0] for c in firsts})
        row.update({c: "; ".join(dict.fromkeys(t for t in g[c] if t != "ok")) or "ok"
                    for c in joins})
        row["trials"] = len(g)
        if "valid" in g:
            row["invalid_trials"] = int((~g["valid"].astype(bool)).sum())
            row["valid"] = row["invalid_trials"] == 0
        if "n" in g:
            row["n"] = int(g["n"].min())
        out.append(row)
    return pd.DataFrame(out)


def median_trial(results: list[LoadResult], p: float = 99.0) -> dict[str, LoadResult]:
    """Per variant, the trial whose percentile ``p`` is the median one (the lower of the
    middle two for an even count): the run a spectrum draws to stand for its trials."""
    by: dict[str, list[LoadResult]] = {}
    for res in results:
        by.setdefault(res.variant, []).append(res)
    return {v: sorted(rs, key=lambda r: r.latency_us(p))[(len(rs) - 1) // 2]
            for v, rs in by.items()}


def _ms(us: float) -> str:
    return f"{us / 1e3:.3g} ms"


def sustainable(frame: pd.DataFrame, p99_target_us: float) -> pd.DataFrame:
    """Per variant: the highest swept rate that met the p99 target, every trial there
    valid and the median trial's p99 and achieved rate good enough.  ``note`` says in
    words why a variant has no rate (never a bare NaN) or that the limit may lie above
    the rates swept."""
    if "trial" in frame:
        frame = summarize_trials(frame, ["variant", "rate"], ["p99_us", "achieved_rate"])
    ok = frame[(frame["p99_us"] <= p99_target_us) & frame["valid"].astype(bool)
               & (frame["achieved_rate"] >= 0.99 * frame["rate"])]
    best = ok.sort_values("rate").groupby("variant").tail(1).set_index("variant")
    out = pd.DataFrame(index=pd.Index(frame["variant"].unique(), name="variant"))
    out["sustainable_rate"] = best["rate"]
    out["p99_us_there"] = best["p99_us"]
    out["p99_target_us"] = p99_target_us
    out["note"] = [_note(frame[frame["variant"] == v], best, v, p99_target_us)
                   for v in out.index]
    return out.reset_index()


def _note(runs: pd.DataFrame, best: pd.DataFrame, variant: str, target_us: float) -> str:
    """Why a variant's sustainable rate is what it is, in words."""
    if variant in best.index:
        if best.loc[variant, "rate"] >= runs["rate"].max():
            return "met the target at the highest rate swept: the limit may be higher"
        return ""
    valid = runs[runs["valid"].astype(bool)]
    if valid.empty:
        return (f"runs INVALID at every rate swept ({len(runs)} of {len(runs)}): the "
                f"generator could not keep the schedule; rerun on a quieter machine")
    low = valid.sort_values("rate").iloc[0]
    if low["p99_us"] > target_us:
        return (f"no rate met p99 <= {_ms(target_us)}: even {low['rate']:,.0f}/s gave p99 "
                f"{_ms(low['p99_us'])}; lower the rate or relax the target")
    return (f"no valid rate kept up: at {low['rate']:,.0f}/s it completed "
            f"{low['achieved_rate']:,.0f}/s; lower the rate")


def explain_miss(rows: pd.DataFrame, p99_target_us: float) -> str:
    """The sentence that goes with ``max_sustainable``'s NaN: what its trials saw."""
    if rows.empty:
        return "no rate was tried"
    return _note(rows, pd.DataFrame(index=pd.Index([])), "", p99_target_us)


def max_sustainable(target: Target, p99_target_us: float, *, start_rate: float = 1_000,
                    max_rate: float = 1_000_000, duration: float = 2.0, processes: int = 1,
                    concurrency: int = 1, warmup: float = 0.5, growth: float = 2.0,
                    refine: int = 3, workload: np.ndarray | None = None, seed: int = 0,
                    label: str | None = None, retries: int = 0,
                    **run_options) -> tuple[float, pd.DataFrame]:
    """Highest constant rate meeting the p99 target: grow by ``growth`` until a miss, then
    bisect ``refine`` times.  Returns (rate, every trial as rows); rate is NaN if even
    ``start_rate`` misses, and then ``rows.attrs["note"]`` says why (``explain_miss``).
    ``retries``: run a missed rate again up to this many times before calling it a miss (other
    work on a shared machine causes one-off misses); every attempt is in the rows, with its
    ``attempt`` number."""
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
        frame = pd.DataFrame(rows)
        frame.attrs["note"] = explain_miss(frame, p99_target_us)
        return math.nan, frame
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
