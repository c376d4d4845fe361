"""Tables for people: one formatter for every table a report page or notebook shows.

``table(frame_or_rows)`` names each column with its unit (``p99_ms`` -> "p99 (ms)", or
"p99 (us)" when the column's values are under a millisecond), writes numbers to three
significant figures without exponents, drops the 0..n index, shows a run's health as a
compact valid / INVALID badge with its reasons in a ``<details>``, and lets long text wrap
at word boundaries.  The result displays as HTML in JupyterLab and stays plain inline HTML
(no script, no external style) in the exported page.  Only names seen in lootlab's frames
get a unit; an unknown column keeps its name with underscores turned into spaces.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import pandas as pd

NA = "–"   # what an empty or NaN cell shows; the page around it says why

# Durations by the unit their column was measured in, in seconds.
TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
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
    "sustainable_rate": ("sustainable rate (req/s)", "rate"),
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
         "cpu": "CPU", "dpss": "Δ PSS", "drssanon": "Δ RssAnon", "drssfile": "Δ RssFile",
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


def number(x: Any, sig: int = 3) -> str:
    """``x`` to ``sig`` significant figures, never an exponent: 0.1234 -> "0.123", 40.0 ->
    "40.0"; from 1,000 up the whole number (1767000.4 -> "1,767,000"), and integers as they
    are, with thousands separators."""
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
    if f == 0:
        return "0"
    digits = sig - 1 - math.floor(math.log10(abs(f)))
    rounded = round(f, digits)          # 0.99999 rounds to 1.00, not 1.000
    if rounded != 0:
        digits = sig - 1 - math.floor(math.log10(abs(rounded)))
    if abs(f) >= 1000:
        return f"{f:,.0f}"
    if digits <= 0:
        return f"{round(f, digits):,.0f}"
    return f"{f:,.{digits}f}"


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
    converts them into it: "us" when the typical value is under 1 ms, "s" from 1 s up."""
    if unit not in TIME_UNITS:
        raise ValueError(f"time unit must be one of {', '.join(TIME_UNITS)}, not {unit!r}")
    vals = sorted(abs(v) * TIME_UNITS[unit] for v in _finite(values))
    if not vals:
        return unit, 1.0
    typical = vals[(len(vals) - 1) // 2]   # the lower median: a unit for most rows
    best = "us" if typical < 1e-3 else "ms" if typical < 1.0 else "s"
    return best, TIME_UNITS[unit] / TIME_UNITS[best]


def byte_unit(values: Iterable[Any], unit: str = "B") -> tuple[str, float]:
    """The binary unit (B, KiB, MiB, GiB) that fits sizes given in ``unit``, and the factor."""
    scale = dict(BYTE_UNITS)[unit]
    vals = sorted(abs(v) * scale for v in _finite(values))
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
    said = sum(len(items) for _, items in groups)
    if not said:
        return badge(valid, label)
    body = "".join(f"<p>{name}:</p><ul>{''.join(f'<li>{escape(i)}</li>' for i in items)}</ul>"
                   for name, items in groups if items)
    what = "reason" if valid is False else "note"
    return (f"<details class='ll-why'><summary>{badge(valid, label)} {said} "
            f"{what}{'s' if said > 1 else ''}</summary>{body}</details>")


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


# --- tables ----------------------------------------------------------------------------

STYLE = """<style>
.ll-table-wrap{max-width:100%;overflow-x:auto;margin:.5em 0}
.ll-table-wrap table.ll-table{border-collapse:collapse;table-layout:auto;margin:0;width:auto;
 font:13px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;color:#222}
.ll-table-wrap table.ll-table caption{text-align:left;font-weight:600;padding:0 0 4px}
.ll-table-wrap table.ll-table th{text-align:left;vertical-align:bottom;white-space:normal;
 border-bottom:1px solid #999;padding:4px 8px;min-width:3em;max-width:14em}
.ll-table-wrap table.ll-table td{text-align:left;vertical-align:top;padding:3px 8px;
 border-bottom:1px solid #e4e4e4;max-width:none;white-space:normal;background:none}
.ll-table-wrap table.ll-table th.ll-num,.ll-table-wrap table.ll-table td.ll-num{
 text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ll-table-wrap table.ll-table td.ll-text{overflow-wrap:break-word;word-break:normal;
 min-width:10em;max-width:32em}
.ll-badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;font-weight:600;
 white-space:nowrap}
.ll-ok{background:#e3f4e6;color:#1d6b2c}.ll-bad{background:#fde2e1;color:#a1160a}
.ll-unknown{background:#eee;color:#555}
.ll-why{min-width:12em;max-width:32em}.ll-why summary{cursor:pointer}
.ll-why ul{margin:2px 0 4px 1.2em;padding:0;white-space:normal}
.ll-why p{margin:4px 0 0;font-weight:600}
.ll-small{color:#555;font-size:12px}
.ll-note{font:13px/1.4 system-ui,sans-serif;margin:4px 0 0;max-width:60em;color:#333}
</style>"""


@dataclass(frozen=True)
class Table:
    """A formatted table: ``html`` for a browser or JupyterLab, ``text`` for a terminal,
    ``frame`` the cells as shown (labelled columns, plain text) for tests and reuse."""

    html: str
    text: str
    frame: pd.DataFrame

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def _frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, Sequence) and all(isinstance(r, Mapping) for r in data):
        frame = pd.DataFrame(list(data))
    else:
        raise TypeError(f"table() takes a DataFrame or a list of row dicts, "
                        f"not {type(data).__name__}")
    named = any(n is not None for n in frame.index.names)
    if named or not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    return frame


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) or (hasattr(v, "dtype") and v.dtype.kind in "iufb")


def _cells(col: Column, values: pd.Series, extra: pd.Series | None) -> tuple[str, list[str],
                                                                              list[str], bool]:
    """(label, html cells, text cells, numeric?) of one column."""
    vals = list(values)
    if col.kind == "valid":
        html = [health_html(None if v is None else bool(v), r)
                for v, r in zip(vals, extra if extra is not None else [()] * len(vals))]
        text = [health_text(None if v is None else bool(v),
                            r if extra is not None else ()) for v, r in
                zip(vals, extra if extra is not None else [()] * len(vals))]
        return col.label, html, text, False
    if col.kind == "health":
        html = [escape(str(v)) if not _as_list(v) else health_html(None, warnings=v,
                                                                   label="see notes")
                for v in vals]
        return col.label, html, ["ok" if not _as_list(v) else str(v) for v in vals], False
    if col.kind == "run":
        return col.label, [run_html(v) for v in vals], [str(v) for v in vals], False
    label, fmt = col.label, number
    if col.kind == "time":
        unit, factor = time_unit(vals, col.unit)
        label, fmt = f"{col.label} ({unit})", lambda v: number(float(v) * factor)
    elif col.kind == "bytes":
        unit, factor = byte_unit(vals, col.unit)
        label, fmt = f"{col.label} ({unit})", lambda v: number(float(v) * factor)
    elif col.kind == "share":
        fmt = percent
    elif col.kind == "count":
        def fmt(v: Any) -> str:
            return number(int(v)) if _numeric(v) and float(v) == int(float(v)) else number(v)
    text = [NA if v is None or (isinstance(v, float) and math.isnan(v))
            else fmt(v) if _numeric(v) and not isinstance(v, bool) else
            number(v) if isinstance(v, bool) else str(v) for v in vals]
    numeric = sum(_numeric(v) and not isinstance(v, bool) for v in vals) >= max(1, len(vals) / 2)
    return label, [escape(t) for t in text], text, numeric


def table(data: Any, *, title: str = "", note: str = "", columns: Iterable[str] | None = None,
          labels: Mapping[str, str] | None = None, units: Mapping[str, str] | None = None,
          shares: Iterable[str] = (), collapsed: str | None = None) -> Table:
    """``data`` (a DataFrame or a list of row dicts) as a table for people.

    ``columns`` picks and orders raw columns; ``labels`` renames them (the unit is still
    added); ``units`` gives the unit of columns whose name does not say it ("us", "ms",
    "s", "B", "MiB"); ``shares`` are shown as percentages.  A ``valid`` column becomes a
    badge that carries the ``health``/``reasons`` column beside it; a named or non-default
    index becomes the first column.  ``collapsed`` puts the table in a closed
    ``<details>`` with that summary line; ``note`` is a sentence under it."""
    frame = _frame(data)
    names = [str(c) for c in frame.columns] if columns is None else list(columns)
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise KeyError(f"no column(s) {', '.join(map(repr, missing))} in the table "
                       f"(it has {', '.join(map(str, frame.columns))})")
    labels, units, shares = dict(labels or {}), dict(units or {}), set(shares)
    reasons = next((c for c in ("health", "reasons") if c in names), None)
    folded = reasons if "valid" in names else None
    heads, body, plain, nums = [], [], [], []
    for name in names:
        if name == folded:
            continue
        col = column(name, labels.get(name))
        if name in shares:
            col = Column(name, col.label, "share")
        elif name in units:
            kind = "time" if units[name] in TIME_UNITS else "bytes"
            col = Column(name, col.label, kind, units[name])
        extra = frame[folded] if col.kind == "valid" and folded else None
        label, html, text, numeric = _cells(col, frame[name], extra)
        heads.append(label)
        body.append(html)
        plain.append(text)
        nums.append(numeric)
    kinds = [column(n).kind for n in names if n != folded]

    long = [max((len(t) for t in texts), default=0) > 30 for texts in plain]

    def cls(i: int) -> str:   # numbers align right; long text wraps at word boundaries
        return " class='ll-num'" if nums[i] else " class='ll-text'" if long[i] and kinds[i] in (
            "text", "auto") else ""
    thead = "".join(f"<th scope='col'{' class=ll-num' if nums[i] else ''}>{escape(h)}</th>"
                    for i, h in enumerate(heads))
    rows = "".join("<tr>" + "".join(f"<td{cls(i)}>{body[i][r]}</td>" for i in range(len(heads)))
                   + "</tr>" for r in range(len(frame)))
    caption = f"<caption>{escape(title)}</caption>" if title else ""
    html = (f"<table class='ll-table'>{caption}<thead><tr>{thead}</tr></thead>"
            f"<tbody>{rows}</tbody></table>")
    if note:
        html += f"<p class='ll-note'>{escape(note)}</p>"
    if collapsed:
        html = f"<details class='ll-more'><summary>{escape(collapsed)}</summary>{html}</details>"
    shown = pd.DataFrame(dict(enumerate(plain)), index=range(len(frame)))
    shown.columns = heads
    text = "\n".join(p for p in (title, shown.to_string(index=False) if heads else "", note) if p)
    return Table(f"<div class='ll-table-wrap'>{STYLE}{html}</div>", text, shown)

