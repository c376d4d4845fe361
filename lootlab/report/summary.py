"""A notebook's headline numbers, carried inside its executed outputs for the index page.

A notebook calls ``publish_summary``: the reader sees an HTML table, and the same numbers
travel as JSON under a lootlab mimetype that the index page reads back from the executed
notebook.  No side files, so a notebook run by hand in JupyterLab behaves the same.
"""

from __future__ import annotations

import json
from typing import Any

from .templating import render

SUMMARY_MIME = "application/vnd.lootlab.summary+json"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def summary_bundle(title: str, rows: list[dict[str, Any]], *, verdict: str = "") -> dict:
    """The display bundle: ``text/html`` for readers, ``SUMMARY_MIME`` for the index page."""
    rows = [{str(k): _jsonable(v) for k, v in row.items()} for row in rows]
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    table = render("summary.html.j2", title=title, columns=columns, verdict=verdict,
                   rows=[[_fmt(row.get(c)) for c in columns] for row in rows])
    payload = {"title": title, "columns": columns, "rows": rows, "verdict": verdict}
    return {"text/html": table, SUMMARY_MIME: json.loads(json.dumps(payload, default=str)),
            "text/plain": f"{title}: {len(rows)} row(s)"}


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def publish_summary(title: str, rows: list[dict[str, Any]], *, verdict: str = "") -> None:
    """Show the headline table in the notebook and mark it for the report's index page."""
    from IPython.display import display

    display(summary_bundle(title, rows, verdict=verdict), raw=True)


def read_summary(notebook: Any) -> dict | None:
    """The last published summary in an executed notebook (an ``nbformat`` node), if any."""
    found = None
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) or []:
            data = output.get("data") or {}
            if SUMMARY_MIME in data:
                found = data[SUMMARY_MIME]
    return found
