"""The what-if notebook's words and report rows: the decision table of
``lootlab.experiments.whatif.decision_table`` said in plain prose and laid out for people.

Pure functions of the table (nothing here measures): which variants fit the reader's budget
under each condition, where a variant stops fitting as the round trip grows, and what the
step that buys the most buys there.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..experiments.verdicts import ms_text

#: The decision table's columns as a reader sees them (``lootlab.report.format.table``).
LABELS = {"condition": "condition", "fits": "fits the budget", "over": "over the budget",
          "cannot_tell": "cannot tell (why)",
          "saturated": "saturated (a queue, not the variant: no p99)",
          "buys": "p99 change bought by each step"}


def _names(cell: Any) -> list[str]:
    text = str(cell or "")
    return [] if text in ("", "none") else [n.strip() for n in text.split(",")]


def _noted(cell: Any) -> list[str]:
    """The names in a "name (why); name (why)" cell ("cannot tell", "saturated")."""
    return [n.split(" (")[0] for n in str(cell or "none").split("; ") if n not in ("", "none")]


def _saturated(t: pd.Series) -> str:
    return str(t.get("saturated", "none") or "none")


def summary_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per condition for ``publish_summary``: the condition (it is what the row was
    measured under), how many variants fit, and which."""
    rows = []
    for _, t in table.iterrows():
        rows.append({"condition": t["condition"],
                     "budget (ms)": float(t["budget_ms"]),
                     "fit": f"{int(t['fit_count'])} of {int(t['variants'])}",
                     "fits the budget": t["fits"], "over the budget": t["over"],
                     "cannot tell": ", ".join(_noted(t["cannot_tell"])) or "none",
                     "saturated": _saturated(t)})
    return rows


def _largest_gain(t: pd.Series) -> tuple[str, float] | None:
    gains = [(c[len("change_"):-len("_ms")], float(t[c])) for c in t.index
             if c.startswith("change_") and not math.isnan(float(t[c])) and float(t[c]) < 0]
    return min(gains, key=lambda g: g[1]) if gains else None


def verdict(table: pd.DataFrame, budget_ms: float) -> str:
    """Plain words for the decision table (computed from its rows): what fits the budget on
    loopback, the first RTT at which each remote variant stops fitting, what fits at the
    largest RTT and the tightest CPU limit, and the largest step gain named there."""
    if table.empty:
        return "No condition was measured."
    parts = []
    rtt = table[table["kind"] == "rtt"].sort_values("rtt_ms")
    cpu = table[table["kind"] == "cpu"]
    if len(rtt):
        first = rtt.iloc[0]
        parts.append(f"With a p99 budget of {budget_ms:g} ms, at {first['condition']} "
                     f"{_fit_words(first)}.")
        stops = []
        fitted = set(_names(first["fits"]))
        for _, t in rtt.iloc[1:].iterrows():
            over = set(_names(t["over"]))
            for name in sorted(fitted & over):
                stops.append(f"{name} from {t['condition']}")
            queued = set(_noted(_saturated(t)))
            for name in sorted(fitted & queued):
                stops.append(f"{name} from {t['condition']} (saturated there)")
            fitted -= over | queued
        if stops:
            parts.append("Measured over the budget as the round trip grows: "
                         + ", ".join(stops) + ".")
        if len(rtt) > 1:
            last = rtt.iloc[-1]
            parts.append(f"At {last['condition']} {_fit_words(last)}.")
            gain = _largest_gain(last)
            if gain:
                parts.append(f"There the largest step gain named is {gain[0]}: p99 "
                             f"{ms_text(-gain[1])} lower than the step before.")
    if len(cpu):
        limited = cpu[cpu["cpu_limit"].notna()]
        if len(limited):
            tight = limited.sort_values("cpu_limit").iloc[0]
            parts.append(f"Under the tightest CPU limit ({tight['condition']}) "
                         f"{_fit_words(tight)}.")
    queues = [f"{t['condition']}: {q}" for _, t in table.iterrows()
              for q in _saturated(t).split("; ") if q != "none"]
    if queues:
        parts.append("Saturated (the offered rate above what the variant sustains there, so "
                     "its latency is a queue's and no p99 is shown): " + "; ".join(queues) + ".")
    unsure = int(sum(len([n for n in str(c).split("; ") if n != "none"])
                     for c in table["cannot_tell"]))
    if unsure:
        parts.append(f"{unsure} variant-condition pair{'s' if unsure > 1 else ''} cannot be "
                     f"told (a p99 band straddling the budget, INVALID runs or too few "
                     f"samples): see the table.")
    return " ".join(parts)


def _fit_words(t: pd.Series) -> str:
    fits = _names(t["fits"])
    if not fits:
        return "no variant is shown to fit"
    return f"{len(fits)} of {int(t['variants'])} variants fit ({', '.join(fits)})"


__all__ = ["LABELS", "summary_rows", "verdict"]
