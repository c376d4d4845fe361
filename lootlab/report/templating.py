"""One jinja2 environment for the report's own pages, loaded from package data.

Autoescaping is on for every template: a value from a notebook, the machine or a summary is
text.  Only fragments lootlab built itself (a summary table, an embedded figure) are passed
through ``Markup``, at the call site, so each trusted fragment is visible where it is made.

One filter: ``readable_style``, the ``min-width`` below which a PNG figure's smallest text
would read under ``READABLE_PX`` (the exported notebook pages get the same through
``export.readable_figures``).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jinja2 is imported on first render: notebooks import this package early
    import jinja2

PACKAGE = "lootlab.report"
TEMPLATES = "templates"


def template_text(name: str) -> str:
    """The source of one template in ``lootlab/report/templates`` (for foreign loaders)."""
    return files(PACKAGE).joinpath(TEMPLATES, name).read_text(encoding="utf-8")


@cache
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader(PACKAGE, TEMPLATES),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["readable_style"] = readable_style
    return env


def readable_style(uri: str) -> str:
    """The inline style that keeps a PNG figure (a ``data:`` URI) wide enough to read:
    ``min-width`` at which its smallest text reads 9 px (``embed.readable_min_width``);
    '' for anything else."""
    prefix = "data:image/png;base64,"
    width = readable_min_width(uri[len(prefix):]) if uri.startswith(prefix) else None
    return f"min-width:{width}px" if width else ""


def render(name: str, **context: Any) -> str:
    """``name`` rendered with ``context``; a missing variable raises instead of printing ''."""
    return environment().get_template(name).render(**context)


#: The smallest text a figure may hold (points), and how large it must read on a page (CSS px).
MIN_TEXT_PT = 8.0
READABLE_PX = 9.0
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_facts(data: bytes) -> tuple[int, int, float | None]:
    """(width px, height px, dots per inch or None) from a PNG's header chunks (IHDR and, if
    present before the image data, pHYs: matplotlib writes it)."""
    if not data.startswith(_PNG_MAGIC) or len(data) < 24:
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    pos, dpi = 8, None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            break
        if kind == b"pHYs" and length >= 9 and pos + 17 <= len(data):
            per_unit, _, unit = struct.unpack(">IIB", data[pos + 8:pos + 17])
            if unit == 1 and per_unit:       # per metre
                dpi = per_unit * 0.0254
        pos += 12 + length
    return width, height, dpi


def readable_min_width(png_base64: str, *, default_dpi: float = 100.0) -> int | None:
    """The narrowest a PNG figure may be shown (CSS px) so that ``MIN_TEXT_PT`` text in it
    reads ``READABLE_PX`` px; None if it is not a PNG.  A figure saved at ``dpi`` holds
    8 pt text as 8 * dpi / 72 image pixels."""
    head = re.sub(r"\s+", "", png_base64[:4096])
    head = head[:len(head) // 4 * 4]
    try:
        width, _, dpi = png_facts(base64.b64decode(head))
    except (ValueError, binascii.Error, struct.error):
        return None
    if width < 100:                          # an icon, not a figure
        return None
    text_px = MIN_TEXT_PT * (dpi or default_dpi) / 72.0
    return min(width, round(width * READABLE_PX / text_px))
