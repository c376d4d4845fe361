"""Interactive SVG (py-spy flamegraphs) that keeps working in JupyterLab and in HTML exports.

JupyterLab shows ``image/svg+xml`` outputs as ``<img>``, and an ``<img>`` never runs the
SVG's script, so zoom and search die.  Here the SVG goes into an ``<iframe srcdoc>``: its own
document, so its script runs, and several flamegraphs on one page do not share globals.
"""

from __future__ import annotations

import html
import re

# The flamegraph script records zoom/search state with history.replaceState; inside a
# srcdoc frame that URL is cross-origin and throws.  Swallow it: state is not worth an error.
_SHIM = ("<script>(function(){var h=window.history,r=h.replaceState.bind(h),"
         "p=h.pushState.bind(h);h.replaceState=function(){try{r.apply(null,arguments)}"
         "catch(e){}};h.pushState=function(){try{p.apply(null,arguments)}catch(e){}};})();"
         "</script>")

_PROLOGUE = re.compile(r"^\s*(<\?xml[^>]*\?>)?\s*(<!DOCTYPE[^>]*>)?\s*", re.IGNORECASE)
_HEIGHT = re.compile(r"<svg\b[^>]*?\bheight=\"(\d+(?:\.\d+)?)", re.IGNORECASE | re.DOTALL)


def svg_document(svg: str) -> str:
    """The SVG wrapped as a small HTML document (prologue stripped: it is HTML-parsed)."""
    body = _PROLOGUE.sub("", svg, count=1)
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>" + _SHIM +
            "<style>html,body{margin:0;padding:0;background:#fff}</style></head><body>" + body + "</body></html>")


def svg_height(svg: str, default: int = 400) -> int:
    match = _HEIGHT.search(svg)
    return int(float(match.group(1))) if match else default


def interactive_svg_html(svg: str, *, title: str = "flamegraph", height: int | None = None) -> str:
    """HTML for one interactive SVG: an ``iframe`` whose ``srcdoc`` is the SVG document."""
    height = height or svg_height(svg) + 16
    doc = html.escape(svg_document(svg), quote=True)
    # wrapped in a div: IPython.display.HTML warns about markup that starts with <iframe
    return (f'<div class="lootlab-svg-frame"><iframe class="lootlab-svg" '
            f'title="{html.escape(title)}" srcdoc="{doc}" '
            f'style="width:100%;height:{height}px;border:1px solid #ddd" '
            f'loading="eager"></iframe></div>')


def interactive_svg(svg: str, *, title: str = "flamegraph", height: int | None = None):
    """An ``IPython.display.HTML`` object; end a cell with it to show a zoomable flamegraph."""
    from IPython.display import HTML

    return HTML(interactive_svg_html(svg, title=title, height=height))
