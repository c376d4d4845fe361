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
    ``budget_ms``, ``fits``, ``over`` (comma-joined names), ``over_why`` and ``cannot_tell``
    (names with reasons; a "cannot tell" at a longer round trip names where the variant was
    already over, ``_carry_over``), ``saturated`` (names with "saturated at N/s: offered X/s"),
    ``fit_count``, ``variants``, ``change_<step>_ms`` per step after the first, and
    ``buys`` (those changes in words)."""
    if not (budget_ms > 0):
        raise LootlabError(f"budget_ms must be a positive number of ms, not {budget_ms!r}")
    order = _steps()
    out = []
    for kind, rows in (("rtt", rtt_rows), ("cpu", cpu_rows)):
        worse_at: dict[str, str] = {}   # variant -> the first (shortest) RTT it was over at
        for label, value, group in _conditions(rows, kind):
            by = {str(r["variant"]): r for _, r in group.iterrows()}
            verdicts = {name: fit(r, budget_ms) for name, r in by.items()}
            if kind == "rtt":
                verdicts = _carry_over(verdicts, worse_at, label)
            row: dict[str, Any] = {
                "condition": label, "kind": kind, "budget_ms": float(budget_ms),
                "rtt_ms": value if kind == "rtt" else _first(group, "rtt_ms"),
                "cpu_limit": value if kind == "cpu" else math.nan,
                "fits": ", ".join(n for n, (s, _) in verdicts.items() if s == "fits") or "none",
                "over": ", ".join(n for n, (s, _) in verdicts.items() if s == "over") or "none",
                "over_why": "; ".join(f"{n} ({why})" for n, (s, why) in verdicts.items()
                                      if s == "over") or "none",
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


def _carry_over(verdicts: dict[str, tuple[str, str]], worse_at: dict[str, str],
                label: str) -> dict[str, tuple[str, str]]:
    """Say why a variant over the budget (or saturated) at a shorter round trip is "cannot
    tell" at a longer one: each row is judged alone (its runs INVALID or too few samples
    there), and the longer round trip only adds delay, so the reason names where it was
    already over.  The verdict itself stays the row's own; ``worse_at`` is updated."""
    out = {}
    for name, (said, why) in verdicts.items():
        if said == "cannot tell" and name in worse_at:
            why = (f"{why}; already {worse_at[name]}, and a longer round trip only adds to "
                   f"its latency")
        elif said in ("over", "saturated") and name not in worse_at:
            worse_at[name] = f"{said} at {label}"
        out[name] = (said, why)
    return out


def _first(group: pd.DataFrame, col: str) -> float:
    return float(group[col].iloc[0]) if col in group and len(group) else math.nan


def _listed(cell: Any) -> list[str]:
    """The variant names in a decision-table cell: "a, b" (``fits``, ``over``) or
    "a (why); b (why)" (``cannot_tell``, ``saturated``); "none" is no name."""
    text = str(cell if cell is not None else "none")
    if text in ("", "none"):
        return []
    if "(" not in text:
        return [n.strip() for n in text.split(",") if n.strip()]
    names, depth, start = [], 0, 0
    for i, ch in enumerate(text + ";"):   # a reason may hold "; " and "(...)" itself
        depth += (ch == "(") - (ch == ")")
        if ch == ";" and depth == 0:
            names.append(text[start:i].split(" (")[0].strip())
            start = i + 1
    return [n for n in names if n]


def fit_map(table: pd.DataFrame) -> dict[str, dict[str, str]]:
    """{variant: {condition: "fits" | "over" | "cannot tell" | "saturated"}} from a
    ``decision_table``, conditions in the table's order: where each variant was judged and
    what it was judged there (a verdict names its conditions from this, never anew)."""
    out: dict[str, dict[str, str]] = {}
    for _, t in table.iterrows():
        for col, said in (("fits", "fits"), ("over", "over"), ("cannot_tell", "cannot tell"),
                          ("saturated", "saturated")):
            for name in _listed(t.get(col)):
                out.setdefault(name, {})[str(t["condition"])] = said
    return out


def fits_everywhere(table: pd.DataFrame) -> list[str]:
    """The variants that fit under every condition of the table (judged in every row)."""
    conditions = [str(c) for c in table["condition"]] if len(table) else []
    return [v for v, where in fit_map(table).items()
            if conditions and all(where.get(c) == "fits" for c in conditions)]


def largest_gain(t: pd.Series) -> tuple[str, float] | None:
    """The step whose p99 change from the step before is the largest drop named in one
    ``decision_table`` row (``change_<step>_ms``), or None when no drop is named."""
    gains = [(c[len("change_"):-len("_ms")], float(t[c])) for c in t.index
             if str(c).startswith("change_") and not math.isnan(float(t[c])) and float(t[c]) < 0]
    return min(gains, key=lambda g: g[1]) if gains else None


__all__ = ["decision_table", "fit_map", "fits_everywhere", "largest_gain"]
