"""The what-if decision table: under each measured condition, which variants fit a p99
budget and what each step of the story buys there.

A pure function of the rows ``lootlab.experiments.whatif.rtt_sweep`` / ``cpu_sweep`` return
(re-exported from ``whatif``), judged by the rules every page shares
(``lootlab.experiments.verdicts``: ``fit``, ``step_change``, ``saturated``).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pandas as pd

from ..errors import LootlabError
from ..loadgen.units import plural
from .verdicts import fit, ms_text, saturated, step_change


def _steps() -> list[str]:
    """The story's steps in order (``experiments.story.STEPS``): what "each step buys"
    compares."""
    from .story import STEPS
    return list(STEPS)


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
            label = "no CPU limit" if v < 0 else f"CPU limit {plural(v, 'core')}"
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


def _first(group: pd.DataFrame, col: str) -> float:
    return float(group[col].iloc[0]) if col in group and len(group) else math.nan


__all__ = ["decision_table"]
