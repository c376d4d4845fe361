"""Executed notebook -> one self-contained HTML file that opens offline.

nbconvert's lab template loads require.js, MathJax and mermaid from a CDN.  The report's
template (kept here as a string, so it ships with the module) empties those blocks; PNG
figures are already base64 inside the page, and flamegraphs are ``iframe srcdoc``.  A last
pass removes any remaining ``<script src=http...>``/``<link href=http...>`` and
``external_urls`` lets tests prove nothing is fetched.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import nbformat

TEMPLATE_NAME = "lootlab_offline.html.j2"
TEMPLATE = r"""
{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block extra_css -%}
<style type="text/css">
body { max-width: 1200px; margin: 0 auto; }
.lootlab-nav { font: 14px sans-serif; padding: 8px 16px; border-bottom: 1px solid #ddd; }
.lootlab-footer { font: 12px sans-serif; color: #555; padding: 16px; border-top: 1px solid #ddd; }
.lootlab-footer td { padding: 1px 8px; vertical-align: top; }
table.lootlab-summary td, table.lootlab-summary th { padding: 2px 10px; }
</style>
{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.lootlab_header | default('') }}
{%- endblock body_header -%}
{%- block body_footer -%}
{{ resources.lootlab_footer | default('') }}
{{ super() }}
{%- endblock body_footer -%}
"""

_EXTERNAL_TAG = re.compile(
    r"<(script|link|img|iframe)\b[^>]*?\b(src|href)\s*=\s*[\"']((?:https?:)?//[^\"']+)[\"'][^>]*>"
    r"(?:\s*</script>)?", re.IGNORECASE)


def external_urls(page: str) -> list[str]:
    """URLs a browser would fetch from the network to render ``page`` (scripts, styles, images)."""
    return [m.group(3) for m in _EXTERNAL_TAG.finditer(page)]


def strip_external(page: str) -> str:
    return _EXTERNAL_TAG.sub("", page)


def _exporter(show_code: bool):
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({TEMPLATE_NAME: TEMPLATE})])
    exporter.template_file = TEMPLATE_NAME
    exporter.exclude_input = not show_code
    exporter.exclude_input_prompt = not show_code
    exporter.exclude_output_prompt = True
    exporter.embed_images = True
    return exporter


def env_footer(rows: list[tuple[str, str]], *, note: str = "") -> str:
    cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    extra = f"<p>{html.escape(note)}</p>" if note else ""
    return f"<div class='lootlab-footer'><b>Environment</b>{extra}<table>{cells}</table></div>"


def export_html(notebook: str | Path | Any, html_path: str | Path, *, show_code: bool = False,
                header: str = "", footer: str = "", title: str | None = None) -> Path:
    """Write ``notebook`` (a path or an nbformat node) as self-contained HTML at ``html_path``."""
    node = nbformat.read(str(notebook), as_version=4) if isinstance(notebook, (str, Path)) else notebook
    if title:
        node.metadata["title"] = title
    resources = {"lootlab_header": header, "lootlab_footer": footer,
                 "metadata": {"name": Path(html_path).stem}}
    body, _ = _exporter(show_code).from_notebook_node(node, resources=resources)
    body = strip_external(body)
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(body, encoding="utf-8")
    return html_path
