"""Every verdict rule, once: what a measured row may be called, and why.

Plots, report pages, the what-if table and ``lootlab compare`` all judge rows by these
rules, so a figure drawn hollow on a chart is the figure the words refuse to name:

* the **band** a figure may lie in: the lowest of the lowest trial and the 95 % interval's
  low end, to the highest of the highest trial and the interval's high end;
* **too few samples**: fewer than ``MIN_TAIL`` (10) samples above a percentile make it no
  number (the estimator's own rule, ``loadgen.uncertainty``, where the interval is computed);
* **saturated**: the offered rate above what the variant sustains; its latency is a queue's;
* **fits / over / cannot tell** against a p99 budget;
* a step's **change** is named only when the two bands are apart;
* two runs **changed** only when their intervals are apart and the ratio is beyond
  ``FACTOR`` (10 %, as asv's ``compare``), else **within noise**;
* a sweep point **meets its target** when valid, at or under it, and it kept the rate.

Rows are mappings (a dict, a ``pandas.Series``, a ``rows.Measurement``) in the unified
names: latency in ms (``p99_ms``, ``p99_ms_lo``, ``p99_ci_low_ms``...), rates per second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..loadgen.uncertainty import MIN_TAIL, enough_samples

#: Smaller differences between two runs are never called (asv compare's default).
FACTOR = 1.1
#: What ``lootlab compare`` says of a figure in two runs.
WITHIN, CHANGED, TOO_FEW = "within noise", "changed", "too few samples"
#: A run kept the offered rate when it completed at least this share of it.
KEEP_UP = 0.97
#: A sweep point meets its p99 target only when it completed at least this share.
TARGET_KEEP_UP = 0.99
#: What INVALID means wherever a run is so marked: every reason ``loadgen.health`` gives
#: (a schedule not kept, values lost, the generator's own lag, a saturated variant) is one.
INVALID_MEANS = ("the load generator cannot vouch for its figures: it fell behind its "
                 "schedule, lost values, sent late itself by more than half a percentile, "
                 "or the rate saturated the variant")


def num(x: Any) -> float:
    """A cell as a float; NaN where it is none (None, text, a missing key)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _key(p: float) -> str:
    """The column stem of percentile ``p``: 99 -> "p99", 99.9 -> "p999"."""
    return "p" + f"{p:g}".replace(".", "")


# --- samples -------------------------------------------------------------------------------

def too_few_samples(row: Mapping[str, Any], p: float = 99.0) -> bool:
    """True when the row's samples leave fewer than ``MIN_TAIL`` above percentile ``p``:
    its ``p<N>_enough`` says so where the row has it, else its sample count ``n``; a row
    with neither is taken as it is."""
    said = row.get(f"{_key(p)}_enough")
    if said is not None and not (isinstance(said, float) and math.isnan(said)):
        return not bool(said)
    n = num(row.get("n"))
    return not math.isnan(n) and not enough_samples(n, p)


# --- the band, and changes between steps ---------------------------------------------------

def band(row: Mapping[str, Any], col: str = "p99_ms") -> tuple[float, float]:
    """Where a row's figure ``col`` may lie: the lowest of the figure, its lowest trial
    (``<col>_lo``) and its interval's low end (``<stem>_ci_low_ms``) to the highest of the
    figure, its highest trial and the interval's high end; NaN parts skipped."""
    stem = col.removesuffix("_ms")
    value = num(row.get(col))
    lows = [v for v in (value, num(row.get(f"{col}_lo")), num(row.get(f"{stem}_ci_low_ms")))
            if not math.isnan(v)]
    highs = [v for v in (value, num(row.get(f"{col}_hi")),
                         num(row.get(f"{stem}_ci_high_ms"))) if not math.isnan(v)]
    return (min(lows) if lows else math.nan), (max(highs) if highs else math.nan)


def separated(a: Mapping[str, Any], b: Mapping[str, Any], col: str = "p99_ms") -> bool:
    """True when the two rows' bands do not overlap (touching is overlap): a difference
    worth naming."""
    (alo, ahi), (blo, bhi) = band(a, col), band(b, col)
    return ahi < blo or bhi < alo


#: Why a step's p99 change is not named (``unnamed_change``), in the order they are tested.
SATURATED_STEP, INVALID_STEP, FEW_SAMPLES, WITHIN_SPREAD = (
    "saturated", "INVALID run", "too few samples", "within trial noise")


def unnamed_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """Why the p99 change from ``before`` to ``after`` may not be named ("" when it may):
    either side saturated (a queue's p99), either run INVALID, too few samples above
    either p99, or the two p99 bands overlap (the change is within trial-to-trial noise).
    The story's chart draws such a change hollow with this reason; its words skip it."""
    if saturated(before) or saturated(after):
        return SATURATED_STEP
    if not (bool(before.get("valid")) and bool(after.get("valid"))):
        return INVALID_STEP
    if too_few_samples(before) or too_few_samples(after):
        return FEW_SAMPLES
    if not separated(before, after):
        return WITHIN_SPREAD
    return ""


def step_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> float:
    """The p99 change (ms, negative: faster) from one step to the next, or NaN when it is
    not named (``unnamed_change`` says why)."""
    if unnamed_change(before, after):
        return math.nan
    return num(after.get("p99_ms")) - num(before.get("p99_ms"))


# --- saturation and keeping up ---------------------------------------------------------------

def saturated(row: Mapping[str, Any]) -> bool:
    """True for a row whose runs offered more than the variant sustains: its latency is a
    queue's, not the variant's, so no verdict or change rests on its p99."""
    value = row.get("saturated", False)
    try:
        return bool(value) and not (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):      # pandas' NA: not known, so not saturated
        return False


def kept_up(row: Mapping[str, Any], share: float = KEEP_UP) -> bool:
    """True unless the row completed under ``share`` of its offered rate (unknown: True)."""
    offered, achieved = num(row.get("offered_per_s")), num(row.get("achieved_per_s"))
    return math.isnan(offered) or math.isnan(achieved) or achieved >= share * offered


def saturation_rate(row: Mapping[str, Any]) -> float:
    """What a saturated row's variant sustained (requests/s): its measured capacity, else
    (capacity unknown) the rate it achieved."""
    capacity = num(row.get("capacity_per_s"))
    return capacity if math.isfinite(capacity) and capacity > 0 else num(
        row.get("achieved_per_s"))


def rate_text(per_s: float) -> str:
    """A rate for people, to two significant figures ("1,200", "83", "8.3"): a capacity is
    known no better than that."""
    if not math.isfinite(per_s):
        return "?"
    if per_s == 0:
        return "0"
    digits = 1 - math.floor(math.log10(abs(per_s)))
    return f"{round(per_s, digits):,.{max(0, digits)}f}"


def ms_text(ms: float, *, unit: bool = True) -> str:
    """Milliseconds for people: three significant figures below 100, whole numbers with
    thousands separators above ("1,490 ms", never "1.49e+03")."""
    text = f"{ms:,.0f}" if abs(ms) >= 100 else f"{ms:.3g}"
    return f"{text} ms" if unit else text


def saturated_at(row: Mapping[str, Any]) -> str:
    """"saturated at 83/s": where a saturated row's p99 would stand (a chart, a cell)."""
    return f"saturated at {rate_text(saturation_rate(row))}/s"


def saturated_text(row: Mapping[str, Any]) -> str:
    """"saturated at 83/s: offered 100/s": what a saturated row says instead of a p99."""
    return f"{saturated_at(row)}: offered {rate_text(num(row.get('offered_per_s')))}/s"


# --- against a budget -------------------------------------------------------------------------

def fit(row: Mapping[str, Any], budget_ms: float) -> tuple[str, str]:
    """("fits" | "over" | "cannot tell" | "saturated", why) for one variant under one
    condition.

    A variant **fits** when the upper end of its p99 band is at or under ``budget_ms``, its
    runs were valid (or INVALID only because the generator's own lag may make up the
    figure, which then is an upper bound: still a fit) and kept the offered rate; it is
    **over** when the low end of the band is above the budget in valid runs, or it could
    not keep the offered rate (its latency is then a growing queue); otherwise **cannot
    tell** (the band straddles the budget, too few samples above the p99, or INVALID runs).
    A **saturated** row gets no p99 verdict at all; why says at what rate it saturated."""
    if saturated(row):
        return "saturated", saturated_text(row)
    lo, hi = band(row)
    valid = bool(row.get("valid", False))
    usable = valid or bool(row.get("upper_bound", False))
    if too_few_samples(row):
        return "cannot tell", f"too few samples (n={int(num(row.get('n'))):,})"
    if not kept_up(row) and not str(row.get("bottleneck", "none")).startswith("generator"):
        return "over", (f"could not keep {num(row.get('offered_per_s')):,.0f} requests/s "
                        f"(completed {num(row.get('achieved_per_s')):,.0f}/s)")
    if usable and kept_up(row) and hi <= budget_ms:
        return "fits", f"p99 at most {ms_text(hi)}"
    if valid and lo > budget_ms:
        return "over", f"p99 at least {ms_text(lo)}"
    if not usable:
        return "cannot tell", "INVALID runs (see health)"
    return "cannot tell", f"p99 band {ms_text(lo, unit=False)}-{ms_text(hi)} straddles the budget"


def meets_target(row: Mapping[str, Any], p99_target_ms: float) -> bool:
    """A sweep point meets its p99 target: valid, p99 at or under it, and it completed at
    least ``TARGET_KEEP_UP`` of the offered rate."""
    return (bool(row.get("valid", False)) and num(row.get("p99_ms")) <= p99_target_ms
            and kept_up(row, TARGET_KEEP_UP))


# --- two runs of the same figure ---------------------------------------------------------------

def intervals_apart(a_lo: float, a_hi: float, b_lo: float, b_hi: float) -> bool:
    """True when the intervals [a_lo, a_hi] and [b_lo, b_hi] do not overlap."""
    return not (a_lo <= b_hi and b_lo <= a_hi)


def noise_verdict(a_lo: float, a_hi: float, b_lo: float, b_hi: float, ratio: float,
                  factor: float = FACTOR) -> str:
    """``CHANGED`` when the two intervals are apart and the ratio B/A lies outside
    [1/factor, factor]; ``WITHIN`` (noise) otherwise."""
    small = 1 / factor <= ratio <= factor
    return CHANGED if intervals_apart(a_lo, a_hi, b_lo, b_hi) and not small else WITHIN


__all__ = [
    "CHANGED",
    "FACTOR",
    "FEW_SAMPLES",
    "INVALID_MEANS",
    "INVALID_STEP",
    "KEEP_UP",
    "MIN_TAIL",
    "SATURATED_STEP",
    "TARGET_KEEP_UP",
    "TOO_FEW",
    "WITHIN",
    "WITHIN_SPREAD",
    "band",
    "enough_samples",
    "fit",
    "intervals_apart",
    "kept_up",
    "meets_target",
    "ms_text",
    "noise_verdict",
    "num",
    "rate_text",
    "saturated",
    "saturated_at",
    "saturated_text",
    "saturation_rate",
    "separated",
    "step_change",
    "too_few_samples",
    "unnamed_change",
]
