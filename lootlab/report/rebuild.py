"""The rebuild-under-load notebook's words and report rows (notebook 05): pure functions of
the ``RebuildRun`` list ``lootlab.experiments.story.rebuild_under_load`` returns (its ``summary()``:
``experiments.rows`` names); nothing here measures.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .format import round_sig, time_unit


def rebuild_rows(runs: Iterable[Any]) -> list[dict[str, Any]]:
    """Each rebuild-under-load run as a report row: the figures a reader compares, named as
    the step table names them (in the one time unit that fits all three); the health reasons
    stay in the notebook (a table cell is no place for a paragraph), the row says whether
    the run was valid."""
    summaries = [r.summary() for r in runs]
    unit, k = time_unit([[s[c] for c in ("p50_ms", "p99_ms", "max_ms")] for s in summaries],
                        "ms")    # one unit for the three: a reader compares them

    def ms(s: dict[str, Any], col: str) -> tuple[str, Any]:
        return f"{col[:-3]} ({unit})", round_sig(float(s[col]) * k)
    rows = []
    for s in summaries:
        rows.append({"source": s["source"], "rate (req/s)": round_sig(s["offered_per_s"]),
                     "achieved (req/s)": round_sig(s["achieved_per_s"]),
                     "requests": s["requests"], "errors": s["errors"] + s["timeouts"],
                     **dict(ms(s, c) for c in ("p50_ms", "p99_ms", "max_ms")),
                     "swaps": s["swaps"], "generations seen": s["generations_seen"],
                     "run": "valid" if s.get("valid", True) else "INVALID (see health)"})
    return rows


def rebuild_verdict(runs: Iterable[Any]) -> str:
    """What the rebuild runs show: zero reader errors across the swaps (the claim), or how
    many errors there were; a run whose load generator fell behind is named, since its
    latencies then describe the generator as much as the readers."""
    summaries = [r.summary() for r in runs]
    errors = sum(s["errors"] + s["timeouts"] for s in summaries)
    swaps = sum(s["swaps"] for s in summaries)
    across = f"across {swaps} swap{'' if swaps == 1 else 's'}"
    if errors == 0:
        text = f"Zero reader errors {across}."
    else:      # a sentence starts with a word, never a numeral
        text = (f"Readers saw {errors} error{'' if errors == 1 else 's'} {across}: see the "
                f"timeline.")
    invalid = [s["source"] for s in summaries if not s.get("valid", True)]
    if invalid:
        many = len(invalid) > 1
        text += (f" The {', '.join(invalid)} run{'s' if many else ''} {'were' if many else 'was'}"
                 f" INVALID (see health for why): rerun on a quieter machine before "
                 f"reading {'their' if many else 'its'} latencies.")
    return text


__all__ = ["rebuild_rows", "rebuild_verdict"]
