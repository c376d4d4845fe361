"""The what-if decision table: under each measured condition, which variants fit a p99
budget and what each step of the story buys there.

Pure functions of the rows ``lootlab.conditions.whatif.rtt_sweep`` / ``cpu_sweep`` return
(re-exported from ``whatif``); the same band rule as the story's verdict
(``lootlab.report.story.band``), kept here so measuring code does not import the report.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..errors import LootlabError


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _steps() -> list[str]:
    """The story's steps in order (``lootlab.story.STEPS``): what "each step buys" compares."""
    from ..story import STEPS
    return list(STEPS)


def p99_band(row: Mapping[str, Any]) -> tuple[float, float]:
    """Where a row's p99 may lie: the lowest of the lowest trial and the pooled interval's
    low end to the highest of the highest trial and the interval's high end (the band the
    story's verdict judges by; NaN parts skipped)."""
    p99 = _num(row.get("p99_ms"))
    lows = [v for v in (p99, _num(row.get("p99_ms_lo")), _num(row.get("p99_ci_low_ms")))
            if not math.isnan(v)]
    highs = [v for v in (p99, _num(row.get("p99_ms_hi")), _num(row.get("p99_ci_high_ms")))
             if not math.isnan(v)]
    return (min(lows) if lows else math.nan), (max(highs) if highs else math.nan)


def _enough(row: Mapping[str, Any]) -> bool:
    if "p99_enough" in row and row["p99_enough"] is not None:
        return bool(row["p99_enough"])
    from ..loadgen.uncertainty import enough_samples
    n = _num(row.get("n"))
    return math.isnan(n) or bool(enough_samples(n, 99.0))


def _kept_up(row: Mapping[str, Any]) -> bool:
    offered, achieved = _num(row.get("offered_per_s")), _num(row.get("achieved_per_s"))
    return math.isnan(offered) or math.isnan(achieved) or achieved >= 0.97 * offered


def saturated(row: Mapping[str, Any]) -> bool:
    """True for a row whose runs offered more than the variant sustains: its latency is a
    queue's, not the variant's, so no verdict or change rests on its p99."""
    value = row.get("saturated", False)
    try:
        return bool(value) and not (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):      # pandas' NA: not known, so not saturated
        return False


def saturation_rate(row: Mapping[str, Any]) -> float:
    """What a saturated row's variant sustained (requests/s): its measured capacity, else
    (capacity unknown) the rate it achieved."""
    capacity = _num(row.get("capacity_per_s"))
    return capacity if math.isfinite(capacity) and capacity > 0 else _num(
        row.get("achieved_per_s"))


def rate_text(per_s: float) -> str:
    """A rate for people, to two significant figures ("1,200", "83", "8.3"): a capacity is
    known no better than that."""
    if not math.isfinite(per_s):
        return "?"
    if per_s == 0:
        return "0"
    digits = 1 - math.floor(math.log10(abs(per_s)))
    rounded = round(per_s, digits)
    return f"{rounded:,.{max(0, digits)}f}"


def saturated_at(row: Mapping[str, Any]) -> str:
    """"saturated at 83/s": where a saturated row's p99 would stand (a chart, a cell)."""
    return f"saturated at {rate_text(saturation_rate(row))}/s"


def saturated_text(row: Mapping[str, Any]) -> str:
    """"saturated at 83/s: offered 100/s": what a saturated row says instead of a p99."""
    return f"{saturated_at(row)}: offered {rate_text(_num(row.get('offered_per_s')))}/s"


def fit(row: Mapping[str, Any], budget_ms: float) -> tuple[str, str]:
    """("fits" | "over" | "cannot tell" | "saturated", why) for one variant under one
    condition.

    The rule: a variant **fits** when the upper end of its p99 band (the 95 % interval of
    the pooled p99, widened to the highest trial) is at or under ``budget_ms``, its runs
    were valid (or INVALID only because the generator's own lag may make up the figure,
    which then is an upper bound: still a fit) and kept the offered rate; it is **over**
    when the low end of the band is above the budget in valid runs, or it could not keep
    the offered rate (its latency is then a growing queue); otherwise **cannot tell** (the
    band straddles the budget, too few samples above the p99, or INVALID runs).  A
    **saturated** row (the offered rate above what the variant sustains) gets no p99
    verdict at all: its latency is a queue's; why says at what rate it saturated."""
    if saturated(row):
        return "saturated", saturated_text(row)
    lo, hi = p99_band(row)
    valid = bool(row.get("valid", False))
    usable = valid or bool(row.get("upper_bound", False))
    if not _enough(row):
        return "cannot tell", f"too few samples (n={int(_num(row.get('n'))):,})"
    if not _kept_up(row) and not str(row.get("bottleneck", "none")).startswith("generator"):
        return "over", (f"could not keep {_num(row.get('offered_per_s')):,.0f} requests/s "
                        f"(completed {_num(row.get('achieved_per_s')):,.0f}/s)")
    if usable and _kept_up(row) and hi <= budget_ms:
        return "fits", f"p99 at most {ms_text(hi)}"
    if valid and lo > budget_ms:
        return "over", f"p99 at least {ms_text(lo)}"
    if not usable:
        return "cannot tell", "INVALID runs (see health)"
    return "cannot tell", f"p99 band {ms_text(lo, unit=False)}-{ms_text(hi)} straddles the budget"


def step_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> float:
    """The p99 change (ms, negative: faster) from one step to the next, or NaN when it is
    not named: either side saturated (a queue's p99), either run INVALID, too few samples,
    or the two p99 bands overlap (the same rule as the story's verdict)."""
    if saturated(before) or saturated(after):
        return math.nan
    if not (bool(before.get("valid")) and bool(after.get("valid"))):
        return math.nan
    if not (_enough(before) and _enough(after)):
        return math.nan
    (alo, ahi), (blo, bhi) = p99_band(before), p99_band(after)
    if not (ahi < blo or bhi < alo):
        return math.nan
    return _num(after.get("p99_ms")) - _num(before.get("p99_ms"))


def _conditions(rows: pd.DataFrame | None, kind: str) -> list[tuple[str, float, pd.DataFrame]]:
    if rows is None or len(rows) == 0:
        return []
    col = "rtt_ms" if kind == "rtt" else "cpu_limit"
    out = []
    for value, group in rows.groupby(rows[col].fillna(-1.0), sort=True):
        v = float(value)
        if kind == "rtt":
            label = "loopback (RTT 0 ms)" if v == 0 else f"RTT {v:g} ms"
        else:
            label = "no CPU limit" if v < 0 else f"CPU limit {v:g} cores"
        out.append((label, math.nan if v < 0 else v, group))
    return out


def decision_table(rtt_rows: pd.DataFrame | None, cpu_rows: pd.DataFrame | None,
                   budget_ms: float) -> pd.DataFrame:
    """One row per condition (each RTT, then each CPU limit): which variants fit
    ``budget_ms`` at p99 (rule in ``fit``: the upper end of the p99 band at or under the
    budget), which are over it, which cannot be told and why, and what each step of the
    story buys there (``step_change``: the p99 change from the step before, NaN unless the
    two bands do not overlap).  Columns: ``condition``, ``kind``, ``rtt_ms``, ``cpu_limit``,
    ``budget_ms``, ``fits``, ``over``, ``cannot_tell`` (comma-joined names, "cannot tell"
    with reasons), ``saturated`` (names with "saturated at N/s: offered X/s"),
    ``fit_count``, ``variants``, ``change_<step>_ms`` per step after the first, and
    ``buys`` (those changes in words)."""
    if not (budget_ms > 0):
        raise LootlabError(f"budget_ms must be a positive number of ms, not {budget_ms!r}")
    order = _steps()
    out = []
    for kind, rows in (("rtt", rtt_rows), ("cpu", cpu_rows)):
        for label, value, group in _conditions(rows, kind):
            by = {str(r["variant"]): r for _, r in group.iterrows()}
            verdicts = {name: fit(r, budget_ms) for name, r in by.items()}
            row: dict[str, Any] = {
                "condition": label, "kind": kind, "budget_ms": float(budget_ms),
                "rtt_ms": value if kind == "rtt" else _first(group, "rtt_ms"),
                "cpu_limit": value if kind == "cpu" else math.nan,
                "fits": ", ".join(n for n, (s, _) in verdicts.items() if s == "fits") or "none",
                "over": ", ".join(n for n, (s, _) in verdicts.items() if s == "over") or "none",
                "cannot_tell": "; ".join(f"{n} ({why})" for n, (s, why) in verdicts.items()
                                         if s == "cannot tell") or "none",
                "saturated": "; ".join(f"{n} ({why})" for n, (s, why) in verdicts.items()
                                       if s == "saturated") or "none",
                "fit_count": sum(s == "fits" for s, _ in verdicts.values()),
                "variants": len(verdicts)}
            steps = [s for s in order if s in by]
            words = []
            for a, b in itertools.pairwise(steps):
                change = step_change(by[a], by[b])
                row[f"change_{b}_ms"] = change
                if saturated(by[a]) or saturated(by[b]):
                    words.append(f"{b}: not named (saturated)")
                elif math.isnan(change):
                    words.append(f"{b}: not named")
                else:
                    words.append(f"{b}: {'-' if change < 0 else '+'}{ms_text(abs(change))}")
            row["buys"] = "; ".join(words) or "no steps to compare"
            out.append(row)
    return pd.DataFrame(out)


def ms_text(ms: float, *, unit: bool = True) -> str:
    """Milliseconds for people: three significant figures below 100, whole numbers with
    thousands separators above ("1,490 ms", never "1.49e+03")."""
    text = f"{ms:,.0f}" if abs(ms) >= 100 else f"{ms:.3g}"
    return f"{text} ms" if unit else text


def _first(group: pd.DataFrame, col: str) -> float:
    return float(group[col].iloc[0]) if col in group and len(group) else math.nan


__all__ = ["decision_table", "fit", "p99_band", "rate_text", "saturated", "saturated_at",
           "saturated_text", "saturation_rate", "step_change"]
