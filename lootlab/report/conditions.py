"""The conditions a measurement ran under, in words for the report: "RTT 5 ms, CPU limit
0.5 cores", or "loopback, no CPU limit" when nothing was added.

A notebook passes its conditions to ``publish_summary(conditions=)`` (a
``LoadResult.conditions``-shaped mapping, or words of its own when its rows span several);
the index page states them beside that notebook's numbers, and says "loopback, no CPU
limit" for a summary that names none (every notebook from before conditions were recorded ran so).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..loadgen.units import plural
from .cells import as_float

#: What a run without added conditions is called.
PLAIN = "loopback, no CPU limit"


def _positive(x: Any) -> bool:
    v = as_float(x)
    return not math.isnan(v) and v > 0


def network_words(conditions: Mapping[str, Any]) -> str:
    """"loopback" or "RTT 5 ms ± 1 ms, 100 Mbit/s" (``Network.label``'s words)."""
    rtt, jitter = as_float(conditions.get("rtt_ms")), as_float(conditions.get("jitter_ms"))
    band = conditions.get("bandwidth_mbit")
    if not (_positive(rtt) or _positive(jitter) or _positive(band)):
        return "loopback"
    words = f"RTT {0.0 if math.isnan(rtt) else rtt:g} ms"
    if _positive(jitter):
        words += f" ± {jitter:g} ms"
    if _positive(band):
        words += f", {as_float(band):g} Mbit/s"
    return words


def cpu_words(conditions: Mapping[str, Any]) -> str:
    """"no CPU limit", "CPU limit 0.5 cores", or, when a limit was asked but could not be
    applied, "CPU limit 0.5 cores asked, not applied: <why>" (the run went unlimited)."""
    limit = conditions.get("cpu_limit")
    if not _positive(limit):
        return "no CPU limit"
    words = f"CPU limit {plural(as_float(limit), 'core')}"
    if conditions.get("cpu_limit_applied") is False:
        note = str(conditions.get("cpu_limit_note") or "").strip()
        words += " asked, not applied" + (f": {note}" if note else "")
    return words


def label(conditions: Any) -> str:
    """Words for ``conditions``: a mapping as ``LoadResult.conditions`` holds it, a
    ``Network``-like object (``rtt_ms``...), text (kept as it is), or None (``PLAIN``)."""
    if conditions is None:
        return PLAIN
    if isinstance(conditions, str):
        return conditions.strip() or PLAIN
    if not isinstance(conditions, Mapping):
        conditions = {k: getattr(conditions, k, None)
                      for k in ("rtt_ms", "jitter_ms", "bandwidth_mbit", "cpu_limit")}
    return f"{network_words(conditions)}, {cpu_words(conditions)}"


__all__ = ["PLAIN", "cpu_words", "label", "network_words"]
