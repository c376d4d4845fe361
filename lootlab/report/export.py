"""Executed notebook -> one self-contained HTML file that opens offline.

nbconvert's lab template loads require.js, MathJax and mermaid from a CDN.  The report's
template (``templates/export_offline.html.j2``, package data) empties those blocks; PNG
figures are already base64 inside the page, and flamegraphs are ``iframe srcdoc``.  A last
pass removes any remaining ``<script src=http...>``/``<link href=http...>`` and
``external_urls`` lets tests prove nothing is fetched.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat

from .templating import readable_min_width, render, template_text

TEMPLATE_NAME = "export_offline.html.j2"
#: What the template includes: how wide tables and figures read in a narrow window.
INCLUDED = ("readable.css", "scroll_hint.js")

_EXTERNAL_TAG = re.compile(
    r"<(script|link|img|iframe)\b[^>]*?\b(src|href)\s*=\s*[\"']((?:https?:)?//[^\"']+)[\"'][^>]*>"
    r"(?:\s*</script>)?", re.IGNORECASE)


def external_urls(page: str) -> list[str]:
    """URLs a browser would fetch from the network to render ``page`` (scripts, styles, images)."""
    return [m.group(3) for m in _EXTERNAL_TAG.finditer(page)]


def strip_external(page: str) -> str:
    return _EXTERNAL_TAG.sub("", page)


SMOKE_NOTE = ("quick size: a smoke run, too few samples for conclusions; run `make report` "
              "(standard) or `--size full`")


_PNG_IMG = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*[\"']data:image/png;base64,([A-Za-z0-9+/=\s]+)[\"'][^>]*>",
                      re.IGNORECASE)
_STYLE = re.compile(r"\bstyle\s*=\s*([\"'])(.*?)\1", re.IGNORECASE | re.DOTALL)


def readable_figures(page: str) -> str:
    """Every PNG figure in ``page`` given a ``min-width``: the width at which its smallest
    text (``templating.MIN_TEXT_PT``) still reads ``templating.READABLE_PX`` px.  A narrow window then
    scrolls the figure sideways instead of shrinking its labels to a blur."""
    def widen(match: re.Match[str]) -> str:
        tag = match.group(0)
        width = readable_min_width(match.group(1))
        if width is None or "min-width" in tag:
            return tag
        rule = f"min-width:{width}px"
        style = _STYLE.search(tag)
        if style:
            quote, body = style.group(1), style.group(2)
            return tag[:style.start()] + f"style={quote}{rule};{body}{quote}" + tag[style.end():]
        return tag[:4] + f" style='{rule}'" + tag[4:]

    return _PNG_IMG.sub(widen, page)


def smoke_note(size: str | None) -> str:
    """The sentence every page of a ``quick`` report carries, '' for any other size: its
    p99s rest on a handful of samples, and a reader must not take them for results."""
    return SMOKE_NOTE if size == "quick" else ""


def smoke_note_html(size: str | None) -> str:
    """``smoke_note(size)`` as an escaped HTML block (``code`` for the commands), or ''."""
    from markupsafe import escape

    note = smoke_note(size)
    if not note:
        return ""
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(note)))
    return f"<div class='lootlab-smoke'>{text}</div>"


def notebook_size(node: Any) -> str | None:
    """The report ``size`` papermill injected into an executed notebook (None if it was not
    run by papermill or without that parameter)."""
    params = node.metadata.get("papermill", {}).get("parameters", {}) or {}
    size = params.get("size")
    return size if isinstance(size, str) else None


def drop_progress(node: Any) -> None:
    """Leave out of the page the lines progress bars left (how long measuring took): a page
    drawn again from the stored run has none, and must read the same."""
    from .bars import is_progress

    for cell in node.cells:
        if cell.get("outputs"):
            cell.outputs = [o for o in cell.outputs if not is_progress(o)]


def _shows_nothing(output: Any) -> bool:
    """True for an output that draws nothing: an empty stream, a display of empty data."""
    kind = output.get("output_type")
    if kind == "stream":
        return not str(output.get("text") or "").strip()
    if kind in ("display_data", "execute_result"):
        return not any(str(v).strip() for v in (output.get("data") or {}).values())
    return False


def drop_empty_cells(node: Any) -> None:
    """Leave out of a page without code the code cells that show nothing (the parameters,
    a measuring cell that printed nothing or only progress): each would still be an
    empty box, a blank gap above the answer."""
    node.cells = [cell for cell in node.cells
                  if cell.get("cell_type") != "code"
                  or not all(_shows_nothing(o) for o in cell.get("outputs") or [])]


def _exporter(show_code: bool):
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    # nbconvert has its own jinja2 environment (with the 'lab' base template on its search
    # path), so the text is handed over through a DictLoader rather than a second loader.
    loader = DictLoader({name: template_text(name) for name in (TEMPLATE_NAME, *INCLUDED)})
    exporter = HTMLExporter(template_name="lab", extra_loaders=[loader])
    exporter.template_file = TEMPLATE_NAME
    exporter.exclude_input = not show_code
    exporter.exclude_input_prompt = not show_code
    exporter.exclude_output_prompt = True
    exporter.embed_images = True
    return exporter


def env_footer(rows: list[tuple[str, str]], *, note: str = "") -> str:
    """The environment table for the foot of an exported notebook (``export_html(footer=)``)."""
    return render("env_footer.html.j2", rows=rows, note=note)


def nav_header(names: list[str], current: str) -> str:
    """The bar linking the index and every notebook, ``current`` in bold (``header=``)."""
    return render("nav.html.j2", names=names, current=current)


def export_html(notebook: str | Path | Any, html_path: str | Path, *, show_code: bool = False,
                header: str = "", footer: str = "", title: str | None = None,
                size: str | None = None) -> Path:
    """Write ``notebook`` (a path or an nbformat node) as self-contained HTML at ``html_path``.

    ``size`` (default: the one papermill injected into the notebook) decides the smoke-run
    note under the header: a quick page says on its face that it proves nothing."""
    node = nbformat.read(str(notebook), as_version=4) if isinstance(notebook, (str, Path)) else notebook
    if title:
        node.metadata["title"] = title
    drop_progress(node)
    if not show_code:
        drop_empty_cells(node)
    note = smoke_note_html(size if size is not None else notebook_size(node))
    resources = {"lootlab_header": header, "lootlab_note": note, "lootlab_footer": footer,
                 "metadata": {"name": Path(html_path).stem}}
    body, _ = _exporter(show_code).from_notebook_node(node, resources=resources)
    body = readable_figures(strip_external(body))
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(body, encoding="utf-8")
    return html_path
