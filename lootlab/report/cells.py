"""The cells of a table for people: numbers to their precision, the unit that fits a
column, a column's words and unit from its raw name, and a run's health as a badge.

``lootlab.report.format.table`` puts them together; they live apart so each module stays
small.  Only names seen in lootlab's frames get a unit; an unknown column keeps its name with
underscores turned into spaces.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from typing import Any

from ..loadgen.units import UNITS, pick_unit, plain_number

NA = "–"   # what an empty or NaN cell shows; the page around it says why

# Durations by the unit their column was measured in, in seconds.
TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
# The same in microseconds, exact (1e-3 / 1e-6 is not quite 1000).
US_PER = {u.name: u.us for u in UNITS}
BYTE_UNITS = (("B", 1), ("KiB", 2**10), ("MiB", 2**20), ("GiB", 2**30))

# Known columns: label and kind ("count", "rate", "cores", "share", "valid", "health",
# "run", "text"); durations, sizes and shares are also recognised by their suffix.
KNOWN: dict[str, tuple[str, str]] = {
    "n": ("samples", "count"), "samples": ("samples", "count"), "trials": ("trials", "count"),
    "trial": ("trial", "count"), "requests": ("requests", "count"),
    "errors": ("errors", "count"), "timeouts": ("timeouts", "count"),
    "invalid_trials": ("INVALID trials", "count"), "ops": ("operations", "count"),
    "collections": ("GC collections", "count"), "swaps": ("swaps", "count"),
    "k": ("replicas", "count"), "self": ("self samples", "count"),
    "total": ("total samples", "count"),
    "rate": ("rate (req/s)", "rate"), "offered_per_s": ("offered (req/s)", "rate"),
    "achieved_per_s": ("achieved (req/s)", "rate"), "achieved_rate": ("achieved (req/s)", "rate"),
    "sustainable_per_s": ("sustainable rate (req/s)", "rate"),
    "generator_cpu": ("generator CPU (cores)", "cores"),
    "server_cores": ("server CPU (cores)", "cores"),
    "valid": ("run", "valid"), "health": ("health", "health"), "reasons": ("health", "health"),
    "run": ("run", "run"), "note": ("note", "text"),
    "self_a": ("self share A", "share"), "self_b": ("self share B", "share"),
    "total_a": ("total share A", "share"), "total_b": ("total share B", "share"),
    "delta_self": ("self share A - B", "share"), "delta_total": ("total share A - B", "share"),
    "bytes_per_op": ("allocated per op", "bytes"),
    "allocs_per_op": ("allocations per op", "number"),
    "VmHWM": ("VmHWM, peak RSS", "bytes"), "VmHWM_MiB": ("VmHWM, peak RSS", "bytes"),
}
# Words inside a snake_case name, as a reader says them.
WORDS = {"p999": "p99.9", "ci": "95 % CI", "per": "per", "kop": "1,000 ops", "op": "op",
         "pss": "PSS", "rss": "RSS", "gen0": "gen 0", "gen1": "gen 1", "gen2": "gen 2",
         "cpu": "CPU", "rtt": "RTT",
         "dpss": "Δ PSS", "drssanon": "Δ RssAnon", "drssfile": "Δ RssFile",
         "minflt": "minor faults", "majflt": "major faults", "lo": "lowest trial",
         "hi": "highest trial", "map": "mapping"}
_TIME = re.compile(r"^(?P<base>.+?)_(?P<unit>us|ms|s)(?P<rest>(_[a-z]+)*)$")
_MEM = re.compile(r"^(?P<base>.+?)_MiB(?P<rest>(_[A-Za-z]+)*)$")
_PROC_BYTES = {"Rss", "Pss", "Pss_Anon", "Pss_File", "RssAnon", "RssFile", "index_rss",
               "index_pss"}


@dataclass(frozen=True)
class Column:
    """How one column is shown: its label without unit, kind, and the unit of its values."""

    name: str
    label: str
    kind: str = "text"
    unit: str = ""          # the unit the values are in (durations, sizes)


def column(name: str, label: str | None = None) -> Column:
    """The ``Column`` for a raw column name (``label`` overrides the words, not the unit)."""
    if name in KNOWN:
        text, kind = KNOWN[name]
        unit = "MiB" if name.endswith("_MiB") else "B" if kind == "bytes" else ""
        said = re.search(r" \([^)]*\)$", text)      # "rate (req/s)": keep the unit
        if label and said and not label.endswith(")"):
            label += said.group(0)
        return Column(name, label or text, kind, unit)
    if name in _PROC_BYTES:
        return Column(name, label or _words(name), "bytes", "B")
    if name.endswith("_per_s"):
        return Column(name, label or f"{_words(name[:-6])} (req/s)", "rate")
    m = _MEM.match(name)
    if m:
        return Column(name, label or _words(m["base"] + m["rest"]), "bytes", "MiB")
    m = _TIME.match(name)
    if m and m["base"]:
        return Column(name, label or _words(m["base"] + m["rest"]), "time", m["unit"])
    if name.endswith("_share"):
        return Column(name, label or _words(name[:-6]) + " share", "share")
    return Column(name, label or _words(name), "auto")


def _words(name: str) -> str:
    out = []
    for w in str(name).split("_"):
        out.append(WORDS.get(w.lower(), w) if w else "")
    text = " ".join(p for p in out if p)
    return re.sub(r"^(.*) (lowest|highest) trial$", r"\1, \2 trial", text)


# --- numbers ---------------------------------------------------------------------------

def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def as_float(x: Any) -> float:
    """A cell's value as a float, NaN where it is none (None, text, a missing key)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def number(x: Any, sig: int = 3) -> str:
    """``x`` as the CLI prints it (``loadgen.units.plain_number``, so a page, the index and a
    terminal agree): ``sig`` significant figures, thousands separators, no exponent and no
    trailing zeros (0.1234 -> "0.123", 40.0 -> "40", 1767321.4 -> "1,770,000"); integers
    exactly as they are (a count is never rounded), NaN and None as the empty mark."""
    if x is None or isinstance(x, str):
        return NA if x is None or x == "" else x
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int) or (hasattr(x, "dtype") and getattr(x.dtype, "kind", "") in "iu"):
        return f"{int(x):,}"
    f = float(x)
    if math.isnan(f):
        return NA
    if math.isinf(f):
        return "∞" if f > 0 else "-∞"
    return plain_number(f, sig)


def round_sig(x: Any, sig: int = 3) -> Any:
    """A float rounded to ``sig`` significant figures (a summary row keeps numbers, not
    text); None for NaN/None, anything else unchanged."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return x
    if math.isnan(f):
        return None
    if f == 0 or math.isinf(f):
        return f
    return round(f, sig - 1 - math.floor(math.log10(abs(f))))


def time_unit(values: Iterable[Any], unit: str = "ms") -> tuple[str, float]:
    """The unit that fits durations given in ``unit`` (us, ms or s), and the factor that
    converts them into it: the CLI's rule for a table (``loadgen.units.pick_unit`` over the
    values' range, geometric middle), so a page, the index and the terminal choose the same
    unit for the same values.  ``values`` may nest (a list of columns): a table of one
    quantity takes one unit for all of its columns."""
    if unit not in TIME_UNITS:
        raise ValueError(f"time unit must be one of {', '.join(TIME_UNITS)}, not {unit!r}")
    chosen = pick_unit(_finite(_flat(values)), source=unit, log=True)
    return chosen.name, chosen.scale(1.0, unit)


def _flat(values: Any) -> Iterable[Any]:
    """Every scalar in ``values``, however deep its lists, arrays or Series nest."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable) \
            or getattr(values, "ndim", None) == 0:
        yield values
        return
    for v in values:
        yield from _flat(v)


def byte_unit(values: Iterable[Any], unit: str = "B") -> tuple[str, float]:
    """The binary unit (B, KiB, MiB, GiB) that fits sizes given in ``unit``, and the factor."""
    scale = dict(BYTE_UNITS)[unit]
    vals = sorted(abs(v) * scale for v in _finite(values) if v != 0)
    typical = vals[(len(vals) - 1) // 2] if vals else scale
    best, size = BYTE_UNITS[0]
    for name, s in BYTE_UNITS:
        if typical >= s:
            best, size = name, s
    return best, scale / size


def percent(x: Any) -> str:
    """A share (0..1) as "12.3 %"; NaN as the empty mark."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return NA if x is None else str(x)
    if math.isnan(f):
        return NA
    return "0 %" if f == 0 else f"{number(f * 100)} %"


# --- health ----------------------------------------------------------------------------

def _as_list(x: Any) -> list[str]:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return []
    if isinstance(x, str):
        return [] if x.strip() in ("", "ok") else [x.strip()]
    return [str(v) for v in x if str(v).strip()]


def badge(valid: bool | None, text: str | None = None) -> str:
    """A compact green "valid" or red "INVALID" mark (grey when unknown), as HTML."""
    cls = "ll-unknown" if valid is None else "ll-ok" if valid else "ll-bad"
    text = text or ("unknown" if valid is None else "valid" if valid else "INVALID")
    return f"<span class='ll-badge {cls}'>{escape(text)}</span>"


def health_html(valid: bool | None, reasons: Any = (), warnings: Any = (),
                evidence: Any = (), *, label: str | None = None) -> str:
    """A run's health as a badge, with what made it INVALID (``reasons``), what to keep in
    mind (``warnings``) and the evidence in an expandable ``<details>``; just the badge
    when there is nothing to say."""
    groups = [("Why", _as_list(reasons)), ("Notes", _as_list(warnings)),
              ("Evidence", _as_list(evidence))]
    why, notes = len(groups[0][1]), len(groups[1][1]) + len(groups[2][1])
    if not why + notes:
        return badge(valid, label)
    body = "".join(f"<p>{name}:</p><ul>{''.join(f'<li>{escape(i)}</li>' for i in items)}</ul>"
                   for name, items in groups if items)
    said = ", ".join(f"{k} {word}{'s' if k > 1 else ''}"
                     for k, word in ((why, "reason"), (notes, "note")) if k)
    return (f"<details class='ll-why'><summary>{badge(valid, label)} {said}"
            f"</summary>{body}</details>")


def health_text(valid: bool | None, reasons: Any = ()) -> str:
    """The plain-text twin of ``health_html`` (for ``text/plain``)."""
    head = "unknown" if valid is None else "valid" if valid else "INVALID"
    items = _as_list(reasons)
    return f"{head}: {'; '.join(items)}" if items else head


def run_html(text: Any) -> str:
    """A summary row's ``run`` cell ("valid", "valid; server saturated", "INVALID (1 of 3)")
    as a badge followed by the rest of its words."""
    text = "" if text is None else str(text)
    for head, valid in (("INVALID", False), ("valid", True)):
        if text.startswith(head):
            rest = text[len(head):].lstrip(" ;")
            return badge(valid) + (f" <span class='ll-small'>{escape(rest)}</span>" if rest else "")
    return escape(text)
