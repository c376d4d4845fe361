"""Tables for people: one formatter for every table a report page or notebook shows.

``table(frame_or_rows)`` names each column with its unit (``p99_ms`` -> "p99 (ms)", or
"p99 (us)" when the column's values are under a millisecond), writes numbers to three
significant figures without exponents, drops the 0..n index, shows a run's health as a
compact valid / INVALID badge with its reasons in a ``<details>``, and lets long text wrap
at word boundaries.  The result displays as HTML in JupyterLab and stays plain inline HTML
(no script, no external style) in the exported page.  The cells' rules are in
``lootlab.report.cells``; this module re-exports them, so callers need one import.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import pandas as pd

from .cells import (
    NA,
    TIME_UNITS,
    US_PER,
    Column,
    _as_list,
    badge,
    byte_unit,
    column,
    health_html,
    health_text,
    number,
    percent,
    round_sig,
    run_html,
    time_unit,
)

__all__ = ["NA", "Column", "Table", "badge", "byte_unit", "column", "health_html",
           "health_text", "number", "percent", "round_sig", "run_html", "table", "time_unit"]


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
.ll-table-wrap table.ll-table th.ll-num{text-align:right}
.ll-table-wrap table.ll-table td.ll-num{text-align:right;font-variant-numeric:tabular-nums;
 white-space:nowrap}
.ll-table-wrap table.ll-table td.ll-key{white-space:nowrap}
.ll-table-wrap table.ll-table td.ll-text{overflow-wrap:break-word;word-break:normal;
 min-width:10em;max-width:32em}
.ll-badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;font-weight:600;
 white-space:nowrap}
.ll-ok{background:#e3f4e6;color:#1d6b2c}.ll-bad{background:#fde2e1;color:#a1160a}
.ll-unknown{background:#eee;color:#555}
.ll-why{min-width:12em;max-width:32em}.ll-why summary{cursor:pointer;white-space:nowrap}
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


#: Time columns that place a row in time ("t_s": seconds since the start) rather than
#: measure a duration: they keep a unit of their own, not the table's one for durations.
_WHEN = {"t", "t_end"}


def _table_time_units(frame: pd.DataFrame, cols: list[Column]) -> dict[str, str]:
    """The one unit for each quantity's duration columns in a table (``time_unit`` over
    all of their values together): p50 and p99 never sit in different units side by side.
    Columns stored in the same unit measure one quantity (latencies in ``_ms``/``_us``,
    staleness or recovery in ``_s``), so a table of both keeps seconds for the one and
    milliseconds for the other instead of writing 60 s as 60,000 ms."""
    durations = [c for c in cols if c.kind == "time" and c.name.rsplit("_", 1)[0] not in _WHEN]
    groups: dict[str, list[Column]] = {}
    for c in durations:
        groups.setdefault("s" if c.unit == "s" else "sub-second", []).append(c)
    out: dict[str, str] = {}
    for members in groups.values():
        values = [[v * US_PER[c.unit] for v in _numbers(frame[c.name])] for c in members]
        unit = time_unit(values, "us")[0]
        out.update({c.name: unit for c in members})
    return out


def _numbers(values: pd.Series) -> list[float]:
    return [float(v) for v in values if _numeric(v) and not isinstance(v, bool)]


def _cells(col: Column, values: pd.Series, extra: pd.Series | None,
           unit: str | None = None) -> tuple[str, list[str], list[str], bool]:
    """(label, html cells, text cells, numeric?) of one column; ``unit``: the table's one
    unit for durations, when the column is one."""
    vals = list(values)
    if col.kind == "valid":
        why = list(extra) if extra is not None else [()] * len(vals)
        html, text = [], []
        for v, r in zip(vals, why):
            if hasattr(v, "reasons"):        # a loadgen Health: reasons, warnings, evidence
                html.append(health_html(v.valid, v.reasons, v.warnings, v.evidence))
                text.append(health_text(v.valid, v.reasons))
            else:
                ok = None if v is None else bool(v)
                html.append(health_html(ok, r))
                text.append(health_text(ok, r))
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
        if unit is None or col.name.rsplit("_", 1)[0] in _WHEN:
            unit, factor = time_unit(vals, col.unit)
        else:
            factor = US_PER[col.unit] / US_PER[unit]
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

    ``columns`` picks and orders raw columns; a ``valid`` column may hold loadgen
    ``Health`` objects (their reasons, warnings and evidence go in the details); ``labels`` renames them (the unit is still
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
    cols = []
    for name in names:
        if name == folded:
            continue
        col = column(name, labels.get(name))
        if name in shares:
            col = Column(name, col.label, "share")
        elif name in units:
            kind = "time" if units[name] in TIME_UNITS else "bytes"
            col = Column(name, col.label, kind, units[name])
        cols.append(col)
    one_unit = _table_time_units(frame, cols)
    for col in cols:
        name = col.name
        extra = frame[folded] if col.kind == "valid" and folded else None
        label, html, text, numeric = _cells(col, frame[name], extra, one_unit.get(name))
        heads.append(label)
        body.append(html)
        plain.append(text)
        nums.append(numeric)
    kinds = [column(n).kind for n in names if n != folded]

    long = [max((len(t) for t in texts), default=0) > 30 for texts in plain]

    def cls(i: int) -> str:   # numbers align right; long text wraps at word boundaries,
        if nums[i]:           # a short name ("grpc-tls-fresh") never breaks at its hyphens
            return " class='ll-num'"
        if kinds[i] in ("text", "auto"):
            return " class='ll-text'" if long[i] else " class='ll-key'"
        return ""
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

