"""A notebook's headline numbers, carried inside its executed outputs for the index page.

A notebook calls ``publish_summary``: the reader sees an HTML table (and the figure, when
one is published with it), and the same numbers travel as JSON under a lootlab mimetype that
the index page reads back from the executed notebook.  No side files, so a notebook run by
hand in JupyterLab behaves the same.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from ..loadgen.units import plural
from .templating import render

SUMMARY_MIME = "application/vnd.lootlab.summary+json"

#: Pixels per inch of the figure as the page lays it out (matplotlib's default), and the
#: resolution it is rendered at: twice that, so it stays sharp on a high-density screen.
CSS_DPI = 100
RENDER_DPI = 2 * CSS_DPI


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def figure_payload(figure: Any, *, alt: str = "") -> dict[str, Any]:
    """A matplotlib Figure as a self-contained PNG (base64) with the size it is shown at.

    PNG, not SVG: the notebooks' other figures are PNG too, so the story's chart looks the
    same in the notebook, its export and the index; ``alt`` names it for a screen reader."""
    if not hasattr(figure, "savefig") or not hasattr(figure, "get_size_inches"):
        raise TypeError(f"figure must be a matplotlib Figure, not {type(figure).__name__}")
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=RENDER_DPI)
    width, height = (round(float(v) * CSS_DPI) for v in figure.get_size_inches())
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    suptitle = getattr(figure, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        titles.insert(0, suptitle.get_text())
    return {"mime": "image/png", "data": base64.b64encode(buf.getvalue()).decode("ascii"),
            "width": width, "height": height,
            "alt": alt or "; ".join(titles) or "the notebook's headline chart"}


def figure_uri(figure: dict[str, Any]) -> str:
    """The ``data:`` URI of a ``figure_payload``: the page needs no file and no network."""
    return f"data:{figure['mime']};base64,{figure['data']}"


def summary_bundle(title: str, rows: list[dict[str, Any]], *, verdict: str = "",
                   figure: Any = None, conditions: Any = None, instrument: Any = None,
                   said_above: bool = False) -> dict:
    """The display bundle: ``text/html`` for readers, ``SUMMARY_MIME`` for the index page.

    ``figure`` (a matplotlib Figure) is shown above the table and travels in the payload, so
    the index can lead with it; ``conditions`` (see ``lootlab.report.conditions.label``)
    is said under the title and beside the numbers on the index page; ``instrument`` (the
    runs or rows behind the numbers, or a line of words) says how fine the load generator
    was in them (``lootlab.report.instrument.resolution_line``), on both pages too.
    ``said_above``: the notebook showed the verdict and the figure above, answer first; the
    table here leaves them out and the index still gets both."""
    from .conditions import label

    said = label(conditions)
    fine = instrument_words(instrument)
    rows = [{str(k): _jsonable(v) for k, v in row.items()} for row in rows]
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    picture = figure_payload(figure, alt=title) if figure is not None else None
    from markupsafe import Markup

    from .format import table as people_table

    # the readers' table goes through the one formatting module (units, badges, no index)
    formatted = Markup(people_table(rows).html) if rows else None
    shown = None if said_above else picture
    table = render("summary.html.j2", title=title, columns=columns,
                   verdict="" if said_above else verdict, conditions=said, instrument=fine,
                   rows=[[_fmt(row.get(c)) for c in columns] for row in rows],
                   figure=shown and {**shown, "uri": figure_uri(shown)},
                   formatted=formatted)
    payload = {"title": title, "columns": columns, "rows": rows, "verdict": verdict,
               "conditions": said, "instrument": fine}
    if picture is not None:
        payload["figure"] = picture
    return {"text/html": table, SUMMARY_MIME: json.loads(json.dumps(payload, default=str)),
            "text/plain": f"{title}: {plural(len(rows), 'row')}"}


def instrument_words(instrument: Any) -> str:
    """The instrument line for ``instrument``: text as it is, "" for None (a page that
    draws no latency), else the resolution of the runs or rows given."""
    if instrument is None:
        return ""
    if isinstance(instrument, str):
        return instrument.strip()
    from .instrument import resolution_line
    return resolution_line(instrument)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        from .cells import number  # as the page's own table and the CLI write it
        return number(value)
    return str(value)


def publish_summary(title: str, rows: list[dict[str, Any]], *, verdict: str = "",
                    figure: Any = None, conditions: Any = None, instrument: Any = None,
                    said_above: bool = False) -> None:
    """Show the headline table (and ``figure``, a matplotlib Figure, above it) in the
    notebook and mark them for the report's index page.  ``conditions``: what the numbers
    were measured under (a ``LoadResult.conditions`` mapping, or words); None is "loopback,
    no CPU limit".  ``instrument``: the ``LoadResult``s (or rows) behind the numbers, so the
    page says how fine the load generator was in them (once, under the conditions).
    ``said_above``: the verdict and figure were shown above (``summary_bundle``)."""
    from IPython.display import display

    display(summary_bundle(title, rows, verdict=verdict, figure=figure,
                           conditions=conditions, instrument=instrument,
                           said_above=said_above), raw=True)


def read_summary(notebook: Any) -> dict | None:
    """The last published summary in an executed notebook (an ``nbformat`` node), if any."""
    found = None
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) or []:
            data = output.get("data") or {}
            if SUMMARY_MIME in data:
                found = data[SUMMARY_MIME]
    return found
