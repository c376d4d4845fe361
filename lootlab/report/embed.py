"""Interactive SVG (py-spy flamegraphs) that keeps working in JupyterLab and in HTML exports.

JupyterLab shows ``image/svg+xml`` outputs as ``<img>``, and an ``<img>`` never runs the
SVG's script, so zoom and search die.  Here the SVG goes into an ``<iframe srcdoc>``: its own
document, so its script runs, and several flamegraphs on one page do not share globals.
"""

from __future__ import annotations

import re

from markupsafe import Markup

from .templating import render

_PROLOGUE = re.compile(r"^\s*(<\?xml[^>]*\?>)?\s*(<!DOCTYPE[^>]*>)?\s*", re.IGNORECASE)
_HEIGHT = re.compile(r"<svg\b[^>]*?\bheight=\"(\d+(?:\.\d+)?)", re.IGNORECASE | re.DOTALL)


def svg_document(svg: str) -> str:
    """The SVG wrapped as a small HTML document (prologue stripped: it is HTML-parsed)."""
    # the SVG is the figure itself (py-spy's or lootlab's): trusted markup, not text
    return render("svg_document.html.j2", svg=Markup(_PROLOGUE.sub("", svg, count=1)))


def svg_height(svg: str, default: int = 400) -> int:
    match = _HEIGHT.search(svg)
    return int(float(match.group(1))) if match else default


def interactive_svg_html(svg: str, *, title: str = "flamegraph", height: int | None = None) -> str:
    """HTML for one interactive SVG: an ``iframe`` whose ``srcdoc`` is the SVG document."""
    height = height or svg_height(svg) + 16
    # the document is a plain str, so the template escapes all of it into the attribute
    return render("svg_frame.html.j2", title=title, doc=svg_document(svg), height=height)


def interactive_svg(svg: str, *, title: str = "flamegraph", height: int | None = None):
    """An ``IPython.display.HTML`` object; end a cell with it to show a zoomable flamegraph."""
    from IPython.display import HTML

    return HTML(interactive_svg_html(svg, title=title, height=height))
