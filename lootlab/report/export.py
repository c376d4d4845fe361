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

from .templating import render, template_text

TEMPLATE_NAME = "export_offline.html.j2"

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


def _exporter(show_code: bool):
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    # nbconvert has its own jinja2 environment (with the 'lab' base template on its search
    # path), so the text is handed over through a DictLoader rather than a second loader.
    loader = DictLoader({TEMPLATE_NAME: template_text(TEMPLATE_NAME)})
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
    note = smoke_note_html(size if size is not None else notebook_size(node))
    resources = {"lootlab_header": header, "lootlab_note": note, "lootlab_footer": footer,
                 "metadata": {"name": Path(html_path).stem}}
    body, _ = _exporter(show_code).from_notebook_node(node, resources=resources)
    body = strip_external(body)
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(body, encoding="utf-8")
    return html_path
