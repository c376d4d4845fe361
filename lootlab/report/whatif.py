"""The what-if notebook's words and report rows: the decision table of
``lootlab.experiments.whatif.decision_table`` said in plain prose and laid out for people.

Pure functions of the table (nothing here measures): which variants fit the reader's budget
under each condition, where a variant stops fitting as the round trip grows, and what the
step that buys the most buys there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..experiments import decision
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


def _joined(*cells: Any) -> str:
    """"name (why); name (why)" cells joined, "none" when all are empty."""
    parts = [p for c in cells for p in str(c or "none").split("; ") if p not in ("", "none")]
    return "; ".join(parts) or "none"


def summary_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The page's one table of the decision (``publish_summary``; the index shows it too):
    one row per condition, what fits the budget, what does not and why (over it, or
    saturated: the offered rate above what the variant sustains), what cannot be told and
    why, and what each step buys there.  The budget is the same in every row, so it is in
    the title, not a column."""
    rows = []
    for _, t in table.iterrows():
        rows.append({"condition": t["condition"],
                     "fits the budget": t["fits"],
                     "over the budget or saturated (why)": _joined(t.get("over_why", t["over"]),
                                                                   _saturated(t)),
                     "cannot tell (why)": t["cannot_tell"],
                     "p99 change bought by each step": t["buys"]})
    return rows


def health_rows(results: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per run of the what-if sweeps, told apart by the conditions it ran under: the
    RTT the proxy added (ms; 0 on loopback, no proxy), the client side's CPU limit (cores;
    "none": no limit; "... (not applied)" where the machine could not limit), the trial when
    a condition ran more than once; then the load generator's health (offered and achieved
    rate, send lag, its own send error, its CPU, errors, valid / INVALID with the reasons)."""
    from ..experiments.rows import condition_cells, generator_error_us

    rows: list[dict[str, Any]] = []
    seen: dict[tuple, int] = {}
    for res in results:
        cond = condition_cells(getattr(res, "conditions", None), None)
        rtt = 0.0 if math.isnan(cond["rtt_ms"]) else cond["rtt_ms"]
        cpu = cond["cpu_limit"]
        limit: Any = "none" if math.isnan(cpu) or cpu <= 0 else (
            cpu if cond["cpu_limit_applied"] else f"{cpu:g} (not applied)")
        key = (res.variant, rtt, str(limit))
        seen[key] = seen.get(key, 0) + 1
        rows.append({"variant": res.variant, "rtt_ms": rtt, "cpu_limit": limit,
                     "trial": seen[key], "offered_per_s": res.offered_rate,
                     "achieved_per_s": res.achieved_rate,
                     "send_lag_p99_ms": res.send_lag_us(99) / 1e3,
                     "generator_error_p99_ms": generator_error_us(res) / 1e3,
                     "generator_cpu": res.generator_cpu, "errors": res.counts["failed"],
                     "valid": res.health})
    if all(r["trial"] == 1 for r in rows):
        for r in rows:
            del r["trial"]
    return rows


#: The health table's headers: the conditions first, so equal variants are told apart.
HEALTH_LABELS = {"rtt_ms": "RTT", "cpu_limit": "CPU limit (cores)", "offered_per_s": "offered",
                 "generator_error_p99_ms": "own send error p99",
                 "generator_cpu": "generator CPU"}


def health_table(results: Iterable[Any], *, title: str = "") -> Any:
    """``health_rows`` as a table that fits a narrow page: a column that is the same in every
    row (the offered rate, no errors) is said once under the table instead."""
    from .format import table

    rows = health_rows(results)
    said, drop = [], set()
    offered = {r["offered_per_s"] for r in rows}
    if len(offered) == 1:
        said.append(f"Every run offered {next(iter(offered)):,.0f} requests/s.")
        drop.add("offered_per_s")
    if all(not r["errors"] for r in rows):
        said.append("No run had an error.")
        drop.add("errors")
    rows = [{k: v for k, v in r.items() if k not in drop} for r in rows]
    return table(rows, title=title, labels=HEALTH_LABELS,
                 note=" ".join(said + ["RTT 0: loopback, no proxy; CPU limit none: no quota; "
                                       "own send error: how late the load generator sent "
                                       "when it was free to send."]))


def _span(values: Iterable[float], unit: str) -> str:
    vals = sorted({float(v) for v in values if not math.isnan(float(v))})
    if not vals:
        return ""
    if len(vals) == 1:
        return f"{vals[0]:g} {unit}"
    return f"{vals[0]:g}-{vals[-1]:g} {unit}"


def _measured(table: pd.DataFrame) -> str:
    """"RTT 0-20 ms, CPU limit 0.25-1 core": the range of conditions the table covers."""
    rtt = table[table["kind"] == "rtt"]["rtt_ms"] if "kind" in table else []
    cpu = table[table["kind"] == "cpu"]["cpu_limit"] if "kind" in table else []
    parts = []
    if len(rtt):
        parts.append("RTT " + _span(rtt, "ms"))
    limited = [c for c in cpu if not math.isnan(float(c))]
    if limited:
        one = {float(c) for c in limited} == {1.0}
        parts.append("CPU limit " + _span(limited, "core" if one else "cores"))
    return ", ".join(parts)


def _and(names: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _where_words(table: pd.DataFrame) -> str:
    """Which variants fit under every condition, and where each other one fits (grouped)."""
    where = decision.fit_map(table)
    everywhere = decision.fits_everywhere(table)
    groups: dict[str, list[str]] = {}
    for name, said in where.items():
        if name in everywhere:
            continue
        fits = [c for c, s in said.items() if s == "fits"]
        key = ("only at " + ", ".join(fits)) if fits else "under none"
        groups.setdefault(key, []).append(name)
    span = _measured(table)
    if everywhere:
        lead = (f"{_and(everywhere)} fit{'s' if len(everywhere) == 1 else ''} under "
                f"every condition measured ({span})")
    else:
        lead = f"no variant fits under every condition measured ({span})"
    rest = [f"{_and(names)} fit{'s' if len(names) == 1 else ''} {key}"
            for key, names in groups.items()]
    return lead + ("; " + "; ".join(rest) if rest else "")


def _reason(table: pd.DataFrame) -> str:
    """The one most important reason: the step that buys the most where it matters most,
    the longest round trip (else the tightest CPU limit)."""
    rtt = table[table["kind"] == "rtt"].sort_values("rtt_ms")
    cpu = table[(table["kind"] == "cpu") & table["cpu_limit"].notna()].sort_values("cpu_limit")
    for t in ([rtt.iloc[-1]] if len(rtt) else []) + ([cpu.iloc[0]] if len(cpu) else []):
        gain = decision.largest_gain(t)
        if gain:
            return (f"The step that buys the most at {t['condition']} is {gain[0]}: p99 "
                    f"{ms_text(-gain[1])} lower than the step before.")
    return ""


def _unjudged(table: pd.DataFrame) -> str:
    """How many variant-condition pairs the table could not judge, pointing to it."""
    count = {said: 0 for said in ("cannot tell", "saturated")}
    for said in decision.fit_map(table).values():
        for s in said.values():
            if s in count:
                count[s] += 1
    words = []
    if count["cannot tell"]:
        words.append(f"{count['cannot tell']} variant-condition "
                     f"pair{'s' if count['cannot tell'] > 1 else ''} cannot be told")
    if count["saturated"]:
        words.append(f"{count['saturated']} {'is' if count['saturated'] == 1 else 'are'} "
                     f"saturated (a queue's latency, no p99)")
    if not words:
        return ""
    text = " and ".join(words)
    return text[0].upper() + text[1:] + ": the decision table below says why."


def verdict(table: pd.DataFrame, budget_ms: float) -> str:
    """The answer, 1-3 sentences computed from the decision table: which variants fit the
    budget under which conditions; the step that buys the most at the longest round trip
    (or the tightest CPU limit); how many pairs cannot be judged.  The rest is in
    ``details`` and the table."""
    if table.empty:
        return "No condition was measured."
    first = f"With a p99 budget of {budget_ms:g} ms, {_where_words(table)}."
    return " ".join(s for s in (first, _reason(table), _unjudged(table)) if s)


def details(table: pd.DataFrame) -> list[str]:
    """Short bullets under the verdict: where each variant stops fitting as the round trip
    grows, and which runs saturated (the verdict only counts them)."""
    if table.empty:
        return []
    out = []
    rtt = table[table["kind"] == "rtt"].sort_values("rtt_ms")
    if len(rtt):
        stops = []
        fitted = set(_names(rtt.iloc[0]["fits"]))
        for _, t in rtt.iloc[1:].iterrows():
            over = set(_names(t["over"]))
            queued = set(_noted(_saturated(t)))
            stops += [f"{n} from {t['condition']}" for n in sorted(fitted & over)]
            stops += [f"{n} from {t['condition']} (saturated there)"
                      for n in sorted(fitted & queued)]
            fitted -= over | queued
        if stops:
            out.append("Over the budget as the round trip grows: " + ", ".join(stops) + ".")
    queues = [f"{t['condition']}: {q}" for _, t in table.iterrows()
              for q in _saturated(t).split("; ") if q != "none"]
    if queues:
        out.append("Saturated (offered more than the variant sustains there): "
                   + "; ".join(queues) + ".")
    return out


__all__ = ["HEALTH_LABELS", "LABELS", "details", "health_rows", "health_table", "summary_rows", "verdict"]
