"""An interactive flame graph as one self-contained SVG string, written in Python.

No flamegraph.pl (GPL) and no network: the SVG carries a few lines of script, the package-data
file ``flamegraph.js`` (click a frame to zoom into it, click the root to reset; hover for the
full name and share).  It works opened as a file and embedded inline in an HTML page (a Jupyter
``HTML`` output or an nbconvert export); several on one page do not interfere.  An ``<img>``
tag would show it without interactivity.
"""

from __future__ import annotations

import html
import itertools
import zlib
from collections.abc import Callable, Mapping
from functools import cache
from importlib.resources import files

Stacks = Mapping[tuple[str, ...], int]

_ids = itertools.count()


@cache
def script() -> str:
    """The zoom script every SVG embeds, from the package-data file ``flamegraph.js``."""
    text = files("lootlab.profiling").joinpath("flamegraph.js").read_text(encoding="utf-8")
    if "]]>" in text:  # it goes inside <![CDATA[...]]>
        raise ValueError("flamegraph.js must not contain ']]>'")
    return text


def _tree(stacks: Stacks) -> dict:
    root: dict = {"n": "all", "v": 0, "c": {}, "p": ()}
    for stack, count in stacks.items():
        root["v"] += count
        node = root
        for depth, frame in enumerate(stack):
            node = node["c"].setdefault(frame, {"n": frame, "v": 0, "c": {},
                                                "p": stack[:depth + 1]})
            node["v"] += count
    return root


def warm_color(name: str) -> str:
    """A stable warm colour per frame name (like the classic flame graph palette)."""
    h = zlib.crc32(name.encode())
    return f"rgb({205 + h % 50},{(h >> 8) % 180 + 40},{(h >> 16) % 55})"


def render(stacks: Stacks, *, title: str = "", width: float = 1200, row: int = 17,
           color: Callable[[tuple[str, ...], str], str] | None = None,
           label: Callable[[tuple[str, ...], int, int], str] | None = None,
           min_fraction: float = 0.001) -> str:
    """An icicle-style flame graph (root on top) of collapsed stacks.

    ``color(path, name)`` and ``label(path, samples, total)`` customise fill and hover
    text (the differential view uses both); frames narrower than ``min_fraction`` of the
    total are left out to keep the file small.
    """
    root = _tree(stacks)
    total = root["v"] or 1
    pad = 10.0
    color = color or (lambda path, name: warm_color(name))
    label = label or (lambda path, v, t: f"{v:,} samples, {100 * v / t:.2f} %")
    rows: list[str] = []
    depth_max = 0
    todo = [(root, 0.0, 0)]
    while todo:
        node, x, depth = todo.pop()
        frac = node["v"] / total
        if frac < min_fraction and depth:
            continue
        depth_max = max(depth_max, depth)
        name = node["n"]
        px, pw = pad + x * width, frac * width
        chars = int((pw - 6) // 7)
        text = (name if len(name) <= chars else name[:max(chars - 2, 0)] + "..") if chars >= 3 else ""
        fill = "rgb(200,200,200)" if not depth else color(node["p"], name)
        root_attr = ' data-root="1"' if not depth else ""
        rows.append(
            f'<g class="lf" data-x="{x:.6f}" data-w="{frac:.6f}" data-n="{html.escape(name)}"'
            f'{root_attr}>'
            f"<title>{html.escape(name)} ({html.escape(label(node['p'], node['v'], total))})</title>"
            f'<rect x="{px:.2f}" y="{30 + depth * row}" width="{max(pw - 0.5, 0.1):.2f}" '
            f'height="{row - 1}" fill="{fill}" rx="1"/>'
            f'<text x="{px + 3:.2f}" y="{30 + depth * row + row - 5}">{html.escape(text)}</text></g>')
        cx = x
        for child in sorted(node["c"].values(), key=lambda c: c["n"]):
            todo.append((child, cx, depth + 1))
            cx += child["v"] / total
    height = 30 + (depth_max + 1) * row + 10
    uid = f"lootlab-flame-{next(_ids)}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" id="{uid}" '
        f'data-lf-width="{width:f}" data-lf-pad="{pad:f}" '
        f'width="{width + 2 * pad:.0f}" height="{height}" '
        f'viewBox="0 0 {width + 2 * pad:.0f} {height}" '
        f'style="font-family:Verdana,sans-serif;font-size:11px;background:#fafafa">'
        f'<text x="{pad}" y="18" style="font-size:14px">{html.escape(title)} '
        f'({root["v"]:,} samples; click a frame to zoom, the top bar to reset)</text>'
        + "".join(rows) +
        f"<script><![CDATA[\n{script()}]]></script></svg>")
