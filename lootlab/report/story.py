"""The story's words and report rows: what the measured experiments of ``lootlab.story``
show, said in plain prose and laid out as rows for ``publish_summary``.

Pure functions of the data the experiments return (the steps DataFrame of
``story.run_steps``, the ``RebuildRun`` list of ``story.rebuild_under_load``): nothing here
measures, and nothing in ``lootlab.story`` writes prose.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import pandas as pd


def _fmt_ms(ms: float) -> str:
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def verdict(steps: pd.DataFrame) -> str:
    """Plain words for what the measured steps show (computed from the rows, not assumed)."""
    if steps.empty:
        return "No step was measured."
    by = steps.set_index("step")
    first, last = steps.iloc[0], steps.iloc[-1]
    parts = []
    rate = first["offered_per_s"]
    ratio = first["p99_ms"] / last["p99_ms"] if last["p99_ms"] > 0 else math.inf
    if last["p99_ms"] < first["p99_ms"]:
        parts.append(f"At {rate:,.0f} requests/s, p99 went from {_fmt_ms(first['p99_ms'])} "
                     f"({first['step']}) to {_fmt_ms(last['p99_ms'])} ({last['step']}), "
                     f"{ratio:.1f}x lower.")
    else:
        parts.append(f"At {rate:,.0f} requests/s, {last['step']} did not beat {first['step']} "
                     f"at p99 ({_fmt_ms(last['p99_ms'])} vs {_fmt_ms(first['p99_ms'])}).")
    deltas = steps["p99_ms"].diff().iloc[1:]
    if len(deltas):
        best = int(deltas.idxmin())
        gain = -deltas.loc[best]
        if gain > 0:
            parts.append(f"The largest single gain was {steps.loc[best, 'step']} "
                         f"({steps.loc[best, 'change']}): p99 {_fmt_ms(gain)} lower than the "
                         f"step before.")
        worse = [steps.loc[i, "step"] for i in deltas.index if deltas.loc[i] > 0]
        if worse:
            parts.append(f"p99 got worse at: {', '.join(worse)}.")
    if "mmap" in by.index and "grpc-tls-packed" in by.index:
        remote = by.loc["grpc-tls-packed", "p50_ms"]
        local = by.loc["mmap", "p50_ms"]
        if local < remote:
            parts.append(f"Even the best remote client pays {_fmt_ms(remote - local)} more at "
                         f"the median than reading the mapped file.")
    behind = steps[steps["achieved_per_s"] < 0.97 * steps["offered_per_s"]]
    for _, s in behind.iterrows():
        parts.append(f"{s['step']} could not keep up with {s['offered_per_s']:,.0f} requests/s "
                     f"here (it completed {s['achieved_per_s']:,.0f}/s), so its latency is "
                     f"mostly time spent queued: it is saturated at this load.")
    invalid = steps.loc[~steps["valid"], "step"].tolist()
    if invalid:
        parts.append(f"The load generator could not keep the schedule for {', '.join(invalid)}:"
                     f" those numbers describe the generator's limit as much as the variant.")
    errors = int(steps["errors"].sum())
    if errors:
        parts.append(f"{errors:,} requests failed.")
    parts.append("The write-up reported 95 -> 78 -> 34 ms p99 on production hardware with a "
                 "real network; a loopback server here has no network latency, so compare "
                 "the ratios, not the milliseconds.")
    return " ".join(parts)


def summary_rows(steps: pd.DataFrame) -> list[dict[str, Any]]:
    """The step chart's numbers as rows for ``lootlab.report.publish_summary``."""
    rows = []
    for _, s in steps.iterrows():
        rows.append({"step": s["step"], "p50 ms": round(float(s["p50_ms"]), 3),
                     "p99 ms": round(float(s["p99_ms"]), 3),
                     "achieved/s": round(float(s["achieved_per_s"]), 1),
                     "write-up p99 ms": (None if math.isnan(s["writeup_p99_ms"])
                                         else s["writeup_p99_ms"]),
                     "run": "valid" if s["valid"] else "INVALID (see health)"})
    return rows


def rebuild_rows(runs: Iterable[Any]) -> list[dict[str, Any]]:
    """Each rebuild-under-load run as a report row: the figures a reader compares, named as
    the step table names them; the health reasons stay in the notebook (a table cell is no
    place for a paragraph), the row says whether the run was valid."""
    rows = []
    for r in runs:
        s = r.summary()
        rows.append({"source": s["source"], "rate/s": round(float(s["rate"]), 1),
                     "achieved/s": round(float(s["achieved_per_s"]), 1),
                     "requests": s["requests"], "errors": s["errors"],
                     "p50 ms": round(float(s["p50_ms"]), 3),
                     "p99 ms": round(float(s["p99_ms"]), 3),
                     "max ms": round(float(s["max_ms"]), 3), "swaps": s["swaps"],
                     "generations seen": s["generations_seen"],
                     "run": "valid" if s.get("valid", True) else "INVALID (see health)"})
    return rows


def rebuild_verdict(runs: Iterable[Any]) -> str:
    """What the rebuild runs show: zero reader errors across the swaps (the claim), or how
    many errors there were; a run whose load generator fell behind is named, since its
    latencies then describe the generator as much as the readers."""
    summaries = [r.summary() for r in runs]
    errors = sum(s["errors"] for s in summaries)
    if errors == 0:
        text = f"zero reader errors across {sum(s['swaps'] for s in summaries)} swaps"
    else:
        text = f"{errors} reader errors: see the timeline"
    invalid = [s["source"] for s in summaries if not s.get("valid", True)]
    if invalid:
        text += (f"; the load generator could not keep the schedule for the "
                 f"{', '.join(invalid)} run{'s' if len(invalid) > 1 else ''} (see health)")
    return text
