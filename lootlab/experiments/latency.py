"""Latency against offered rate: the sweep over rates, the sustainable rate for a p99
target, and the spike scenario (notebook 02).

Each point of a sweep is one independent open-loop run, a cell of ``experiments.grid``;
repeated trials are interleaved (trial 1 of every variant and rate, then trial 2...), and
every row is an ``experiments.rows.Measurement`` (latency in ms, rates per second), so
``experiments.trials.summarize_trials`` gives a point's median [min..max].  The
order-statistic interval of one trial assumes independent samples, which latency is not:
the spread between trials is what a difference has to exceed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from . import verdicts
from .grid import Cell, factory_of, run_grid
from .rows import Measurement, measure
from .trials import summarize_trials

Target = str | Callable[[], Any]


def _targets(variants: Iterable[Target] | Mapping[str, Target]) -> list[tuple[str, Target]]:
    """(label, target) per variant: a name labels itself, a factory by its name."""
    from ..loadgen.runner import target_label

    if isinstance(variants, Mapping):
        return list(variants.items())
    if isinstance(variants, str) or callable(variants):
        variants = [variants]
    return [(v if isinstance(v, str) else target_label(v), v) for v in variants]


def _row(res: Any, target_us: float | None, trial: int = 0) -> Measurement:
    row = measure(res, trial=trial)
    if target_us is None:
        return row
    target_ms = target_us / 1e3
    return row.with_context(p99_target_ms=target_ms,
                            meets_target=verdicts.meets_target(row, target_ms))


def sweep(variants, rates: Iterable[float], duration: float, *, processes: int = 1,
          concurrency: int = 1, warmup: float = 0.5, schedule: str = "constant",
          p99_target_us: float | None = None, workload: np.ndarray | None = None,
          seed: int = 0, progress: bool = False, stop_after_miss: bool = False,
          results: list | None = None, trials: int = 1, **run_options) -> pd.DataFrame:
    """One row per (trial, variant, rate) (``Measurement`` columns): percentiles, n,
    rates, health, and with ``p99_target_us`` the target (``p99_target_ms``) and whether
    the point met it (``meets_target``).  ``trials`` repeats the whole sweep, interleaved
    (trial 1 of every variant and rate, then trial 2...); ``summarize_trials`` turns the
    rows into median [min..max].

    ``stop_after_miss`` skips a variant's higher rates once one misses the target (or is
    invalid): useful when a slow variant would only queue up seconds of backlog; later
    trials stop at the same rate.  Pass a list as ``results`` to collect each
    ``LoadResult`` as well (in the order run).  Without ``workload`` each run queries the
    target's own default workload, seeded by the trial (the same for every cell of it)."""
    rates = sorted(float(r) for r in rates)
    cells = [Cell(label, target, rate=rate, title=f"{label} at {rate:g}/s", key=rate)
             for label, target in _targets(variants) for rate in rates]
    last_rate: dict[str, float] = {}      # a variant's first missed rate: none above it
    missed: set[tuple[str, int]] = set()  # (variant, trial) that missed in this trial

    def skip(cell: Cell, trial: int) -> bool:
        return (cell.rate > last_rate.get(cell.label, math.inf)
                or (cell.label, trial) in missed)

    rows: list[Measurement] = []

    def after(cell: Cell, trial: int, res: Any) -> None:
        row = _row(res, p99_target_us, trial)
        rows.append(row)
        if results is not None:
            results.append(res)
        met = row.meets_target if row.meets_target is not None else row.valid
        if stop_after_miss and not met:
            last_rate.setdefault(cell.label, float(cell.rate))
            missed.add((cell.label, trial))

    run_grid(cells, duration=duration, trials=trials, schedule=schedule, seed=seed,
             skip=skip, after=after, processes=processes, concurrency=concurrency,
             warmup=warmup, workload=workload, progress=progress, **run_options)
    return Measurement.to_frame(rows)


def _ms(ms: float) -> str:
    return f"{ms:.3g} ms"


def sustainable(frame: pd.DataFrame, p99_target_us: float) -> pd.DataFrame:
    """Per variant: the highest swept rate (``sustainable_per_s``) whose median trial met
    the p99 target (``verdicts.meets_target``) with every trial there valid, the p99 there
    (``p99_ms_there``) and the target (``p99_target_ms``).  ``note`` says in words, on
    every row, what limited the variant: why it has no rate (never a bare NaN), what
    happened at the next rate up (missed the target, INVALID, fell behind), or that
    nothing above was tried, so the limit may lie higher."""
    target_ms = p99_target_us / 1e3
    if "trial" in frame:
        frame = summarize_trials(frame, ["variant", "offered_per_s"],
                                 ["p99_ms", "achieved_per_s"])
    met = frame.apply(lambda r: verdicts.meets_target(r, target_ms), axis=1).astype(bool) \
        if len(frame) else pd.Series([], dtype=bool)
    ok = frame[met]
    best = ok.sort_values("offered_per_s").groupby("variant").tail(1).set_index("variant")
    out = pd.DataFrame(index=pd.Index(frame["variant"].unique(), name="variant"))
    out["sustainable_per_s"] = best["offered_per_s"]
    out["p99_ms_there"] = best["p99_ms"]
    out["p99_target_ms"] = target_ms
    highest = float(frame["offered_per_s"].max()) if len(frame) else math.nan
    out["note"] = [_note(frame[frame["variant"] == v], best, v, target_ms, highest)
                   for v in out.index]
    return out.reset_index()


def _note(runs: pd.DataFrame, best: pd.DataFrame, variant: str, target_ms: float,
          highest: float = math.nan) -> str:
    """Why a variant's sustainable rate is what it is, in words: what stopped it at the
    next rate up, or that nothing above it was tried (``highest``: the highest rate swept
    for any variant), so every row of the table carries a reason."""
    if variant in best.index:
        return _met_note(runs, float(best.loc[variant, "offered_per_s"]), target_ms, highest)
    valid = runs[runs["valid"].astype(bool)]
    if valid.empty:
        return (f"runs INVALID at every rate swept ({len(runs)} of {len(runs)}): the "
                f"generator could not keep the schedule; rerun on a quieter machine")
    low = valid.sort_values("offered_per_s").iloc[0]
    if low["p99_ms"] > target_ms:
        return (f"no rate met p99 <= {_ms(target_ms)}: even {low['offered_per_s']:,.0f}/s "
                f"gave p99 {_ms(low['p99_ms'])}; lower the rate or relax the target")
    return (f"no valid rate kept up: at {low['offered_per_s']:,.0f}/s it completed "
            f"{low['achieved_per_s']:,.0f}/s; lower the rate")


def _met_note(runs: pd.DataFrame, rate: float, target_ms: float, highest: float) -> str:
    """The note of a variant that met the target at ``rate`` (its highest such rate)."""
    above = runs[runs["offered_per_s"] > rate].sort_values("offered_per_s")
    if above.empty:
        if rate < highest:
            return (f"met the target at the highest rate tried for it ({rate:,.0f}/s); not "
                    f"tried above {rate:,.0f}/s: the limit may be higher")
        every = all(verdicts.meets_target(r, target_ms) for _, r in runs.iterrows())
        return (f"met the target at the highest rate swept ({rate:,.0f}/s)"
                + (" and at every rate tried" if every else ", not at every rate below it")
                + ": the limit may be higher")
    return _missed(above.iloc[0], target_ms)


def _missed(row: pd.Series, target_ms: float) -> str:
    """What made the first rate above the sustainable one miss the target, in words."""
    at = f"{row['offered_per_s']:,.0f}/s"
    if not verdicts.kept_up(row, verdicts.TARGET_KEEP_UP):
        return f"could not keep up at {at}: completed {row['achieved_per_s']:,.0f}/s"
    if not bool(row["valid"]):
        return (f"runs INVALID at {at}: the generator cannot vouch for the figures there "
                f"(it fell behind its schedule or lost values)")
    if not math.isfinite(float(row["p99_ms"])):
        return f"no p99 at {at}: no request completed there"
    return (f"missed the target at {at}: p99 {_ms(row['p99_ms'])} over "
            f"{_ms(target_ms)}")


def explain_miss(rows: pd.DataFrame, p99_target_us: float) -> str:
    """The sentence that goes with ``max_sustainable``'s NaN: what its trials saw."""
    if rows.empty:
        return "no rate was tried"
    return _note(rows, pd.DataFrame(index=pd.Index([])), "", p99_target_us / 1e3)


def max_sustainable(target: Target, p99_target_us: float, *, start_rate: float = 1_000,
                    max_rate: float = 1_000_000, duration: float = 2.0, processes: int = 1,
                    concurrency: int = 1, warmup: float = 0.5, growth: float = 2.0,
                    refine: int = 3, workload: np.ndarray | None = None, seed: int = 0,
                    label: str | None = None, retries: int = 0,
                    **run_options) -> tuple[float, pd.DataFrame]:
    """Highest constant rate meeting the p99 target: grow by ``growth`` until a miss, then
    bisect ``refine`` times (each rate a one-cell grid).  Returns (rate, every trial as
    ``Measurement`` rows with its ``attempt``); rate is NaN if even ``start_rate`` misses,
    and then ``rows.attrs["note"]`` says why (``explain_miss``).  ``retries``: run a
    missed rate again up to this many times before calling it a miss (other work on a
    shared machine causes one-off misses); every attempt is in the rows."""
    label = label or _targets([target])[0][0]
    rows: list[Measurement] = []
    attempts: list[int] = []

    def trial(rate: float) -> bool:
        for attempt in range(retries + 1):
            grid = run_grid([Cell(label, target, rate=rate)], duration=duration, seed=seed,
                            processes=processes, concurrency=concurrency, warmup=warmup,
                            workload=workload, **run_options)
            row = _row(grid.results[0][0], p99_target_us)
            rows.append(row)
            attempts.append(attempt)
            if row.meets_target:
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
    if not math.isnan(good) and not math.isnan(bad):
        for _ in range(refine):
            mid = round((good + bad) / 2, -1)
            if mid in (good, bad):
                break
            if trial(mid):
                good = mid
            else:
                bad = mid
    frame = Measurement.to_frame(rows).assign(attempt=attempts)
    if math.isnan(good):
        frame.attrs["note"] = explain_miss(frame, p99_target_us)
    return good, frame


def spike_run(target: Target, rate: float, *, factor: float = 10.0, duration: float = 6.0,
              at: float | None = None, length: float = 2.0, processes: int = 1,
              concurrency: int = 1, warmup: float = 0.5, seed: int = 0,
              **run_options) -> Any:
    """The spike scenario: baseline, ``factor`` x burst, back; one ``LoadResult`` (its
    ``.timeline()`` shows each second).  ``target``: a variant name or a client factory."""
    from .. import loadgen

    sched = loadgen.spike(rate, duration, factor=factor, at=at, length=length, seed=seed)
    return loadgen.run(factory_of(target), sched, processes=processes,
                       concurrency=concurrency, warmup=warmup, **run_options)


__all__ = ["explain_miss", "max_sustainable", "spike_run", "sustainable", "sweep"]
