"""An interactive flame graph as one self-contained SVG string, written in Python.

No flamegraph.pl (GPL) and no network: the SVG carries a few lines of script, the package-data
file ``flamegraph.js``.  The script lays the graph out at the width it is shown at (the SVG is
``width="100%"``; rows and text keep their pixel size, labels that do not fit are hidden),
zooms on click (the root bar resets) and adds a search box (a substring or ``/regex/``:
matches are highlighted and their total share is shown, as py-spy's and inferno's SVGs do).
Without the script (an ``<img>``) the ``viewBox`` still scales the drawing to fit.

It works opened as a file and embedded inline in an HTML page (a Jupyter ``HTML`` output, an
``iframe srcdoc`` from ``lootlab.report.embed``, an nbconvert export); several on one page do
not interfere.  One SVG can hold several panels side by side (``render_panels``): the
differential view's fallback when two profiles share nothing.
"""

from __future__ import annotations

import html
import itertools
import textwrap
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

Stacks = Mapping[tuple[str, ...], float]
Node = dict   # {"n": name, "v": weight, "c": {name: Node}, "p": path, "s": shares (optional)}

PAD = 10.0          # left and right margin (px)
GAP = 16.0          # between side-by-side panels (px)
NOTE_CHARS = 110    # a note line fits 800 px at 11 px
CHAR_PX = 7.0       # about one character of 11 px Verdana, for the labels drawn in Python

_ids = itertools.count()


@cache
def script() -> str:
    """The script every SVG embeds, from the package-data file ``flamegraph.js``."""
    text = files("lootlab.profiling").joinpath("flamegraph.js").read_text(encoding="utf-8")
    if "]]>" in text:  # it goes inside <![CDATA[...]]>
        raise ValueError("flamegraph.js must not contain ']]>'")
    return text


def tree(stacks: Stacks, root: str = "all") -> Node:
    """Collapsed stacks as a tree of frames, each node weighted by the samples at or below it."""
    top: Node = {"n": root, "v": 0, "c": {}, "p": ()}
    for stack, count in stacks.items():
        top["v"] += count
        node = top
        for depth, frame in enumerate(stack):
            node = node["c"].setdefault(frame, {"n": frame, "v": 0, "c": {},
                                                "p": stack[:depth + 1]})
            node["v"] += count
    return top


KERNEL_TAG = " [k]"          # how perf profiles name kernel frames (profiling.perfscript)
KERNEL_SWATCH = "rgb(110,160,220)"


def warm_color(name: str) -> str:
    """A stable warm colour per frame name (like the classic flame graph palette); kernel
    frames (``name [k]``) get a stable blue instead, so user and kernel space read apart."""
    h = zlib.crc32(name.encode())
    if name.endswith(KERNEL_TAG):
        return f"rgb({80 + h % 50},{140 + (h >> 8) % 40},{200 + (h >> 16) % 50})"
    return f"rgb({205 + h % 50},{(h >> 8) % 180 + 40},{(h >> 16) % 55})"


def fit_label(name: str, width_px: float) -> str:
    """The label a box of ``width_px`` can hold: the name, a shortened name, or nothing."""
    chars = int((width_px - 6) // CHAR_PX)
    if chars < 3:
        return ""
    return name if len(name) <= chars else name[:chars - 2] + ".."


@dataclass(frozen=True)
class Panel:
    """One flame graph of a figure: its tree, a heading, fill and hover text per node."""

    root: Node
    heading: str = ""
    color: Callable[[Node], str] | None = None
    label: Callable[[Node, float], str] | None = None   # (node, its share) -> hover text


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _frames(panel: Panel, k: int, n_panels: int, *, top: float, width: float, row: int,
            min_fraction: float, shares: int) -> tuple[list[str], int]:
    """The ``<g class="lf">`` boxes of panel ``k`` at the nominal ``width``; its depth."""
    root = panel.root
    total = root["v"] or 1
    pw_all = (width - GAP * (n_panels - 1)) / n_panels
    left = PAD + k * (pw_all + GAP)
    color = panel.color or (lambda node: warm_color(node["n"]))
    label = panel.label or (lambda node, share: f"{node['v']:,} samples, {100 * share:.2f} %")
    out: list[str] = []
    depth_max = 0
    todo = [(root, 0.0, 0)]
    while todo:
        node, x, depth = todo.pop()
        frac = node["v"] / total
        if frac < min_fraction and depth:
            continue
        depth_max = max(depth_max, depth)
        name = node["n"]
        px, pw = left + x * pw_all, frac * pw_all
        fill = "rgb(200,200,200)" if not depth else color(node)
        vals = node.get("s") or tuple(frac if i == k else 0.0 for i in range(shares))
        y = top + depth * row
        root_attr = ' data-root="1"' if not depth else ""
        out.append(
            f'<g class="lf" data-p="{k}" data-d="{depth}" data-x="{x:.6f}" data-w="{frac:.6f}" '
            f'data-s="{" ".join(f"{s:.6f}" for s in vals)}" data-n="{_esc(name)}"'
            f'{root_attr}>'
            f"<title>{_esc(name)} ({_esc(label(node, frac))})</title>"
            f'<rect x="{px:.2f}" y="{y:.0f}" width="{max(pw - 0.5, 0.1):.2f}" '
            f'height="{row - 1}" fill="{fill}" rx="1"/>'
            f'<text x="{px + 3:.2f}" y="{y + row - 5:.0f}">{_esc(fit_label(name, pw))}</text></g>')
        cx = x
        for child in sorted(node["c"].values(), key=lambda c: c["n"]):
            todo.append((child, cx, depth + 1))
            cx += child["v"] / total
    return out, depth_max


def _legend(items: Sequence[tuple[str | None, str]], y: float) -> str:
    """Swatches and words in one row: ``(fill, text)``; a ``None`` fill is text alone.  The
    script re-spaces them by their measured widths (and hides what does not fit)."""
    parts, x = [], PAD
    for fill, text in items:
        part = ""
        if fill:
            part += (f'<rect x="{x:.0f}" y="{y - 10:.0f}" width="14" height="12" fill="{fill}" '
                     f'stroke="#999" stroke-width="0.5"/>')
            x += 16
        if text:
            part += f'<text x="{x:.0f}" y="{y:.0f}" style="fill:#333">{_esc(text)}</text>'
            x += len(text) * 6.4 + 8
        parts.append(f'<g class="lf-legend">{part}</g>')
    return "".join(parts)


def render_panels(panels: Sequence[Panel], *, title: str = "", note: str | Sequence[str] = "",
                  legend: Sequence[tuple[str | None, str]] = (), share_names: Sequence[str] = (),
                  width: float = 1200, row: int = 17, min_fraction: float = 0.001) -> str:
    """One SVG of ``panels`` side by side, under a title, a note (wrapped to lines that fit
    800 px; a list gives paragraphs) and an optional legend row.

    ``share_names`` name what the search reports a share of: one per panel by default (the
    panel headings), or the names of the ``"s"`` tuple every node carries.
    """
    if not panels:
        raise ValueError("render_panels needs at least one panel")
    names = list(share_names) or [p.heading or f"panel {i + 1}" for i, p in enumerate(panels)]
    lines = [w for par in ([note] if isinstance(note, str) else note)
             for w in (textwrap.wrap(par, NOTE_CHARS) or [""])]
    notes = "".join(f'<text class="lf-note" x="{PAD}" y="{34 + 14 * i}" style="fill:#444">'
                    f"{_esc(line)}</text>" for i, line in enumerate(lines))
    search_y = 24 + 14 * len(lines) + 6   # the search row the script adds, below the note
    y = search_y + 26.0
    legend_svg = ""
    if legend:
        legend_svg = _legend(legend, y + 10)
        y += 18
    headings = ""
    if len(panels) > 1 or panels[0].heading:
        pw_all = (width - GAP * (len(panels) - 1)) / len(panels)
        headings = "".join(
            f'<text class="lf-heading" data-p="{k}" x="{PAD + k * (pw_all + GAP):.2f}" '
            f'y="{y + 12:.0f}" style="font-size:12px;font-weight:bold">{_esc(p.heading)}</text>'
            for k, p in enumerate(panels))
        y += 18
    rows: list[str] = []
    depth = 0
    for k, panel in enumerate(panels):
        out, d = _frames(panel, k, len(panels), top=y, width=width, row=row,
                         min_fraction=min_fraction, shares=len(names))
        rows += out
        depth = max(depth, d)
    height = int(y + (depth + 1) * row + 10)
    full = width + 2 * PAD
    uid = f"lootlab-flame-{next(_ids)}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" id="{uid}" class="lf-svg" '
        f'data-lf-width="{width:f}" data-lf-pad="{PAD:f}" data-lf-gap="{GAP:f}" '
        f'data-lf-panels="{len(panels)}" data-lf-names="{_esc("|".join(names))}" '
        f'data-lf-search-y="{search_y}" width="100%" height="{height}" '
        f'viewBox="0 0 {full:.0f} {height}" preserveAspectRatio="xMinYMin meet" '
        f'style="display:block;font-family:Verdana,sans-serif;font-size:11px;background:#fafafa">'
        f'<text class="lf-title" x="{PAD}" y="18" style="font-size:14px">{_esc(title)}</text>'
        + notes
        + legend_svg + headings + "".join(rows) +
        f"<script><![CDATA[\n{script()}]]></script></svg>")


def render(stacks: Stacks, *, title: str = "", width: float = 1200, row: int = 17,
           color: Callable[[tuple[str, ...], str], str] | None = None,
           label: Callable[[tuple[str, ...], int, int], str] | None = None,
           min_fraction: float = 0.001, note: str | None = None, root: str = "all",
           legend: Sequence[tuple[str | None, str]] = ()) -> str:
    """An icicle-style flame graph (root on top) of collapsed stacks.

    ``color(path, name)`` and ``label(path, samples, total)`` customise fill and hover
    text; frames narrower than ``min_fraction`` of the total are left out to keep the file
    small (the search's shares leave them out too).  ``root`` names the top bar;
    ``legend`` is an optional row of ``(fill, text)`` swatches under the note.
    """
    top = tree(stacks, root)
    total = top["v"] or 1
    panel = Panel(
        top,
        color=(lambda node: color(node["p"], node["n"])) if color else None,
        label=(lambda node, share: label(node["p"], node["v"], total)) if label else None)
    if note is None:
        note = f"{top['v']:,} samples; click a frame to zoom, the top bar to reset"
    return render_panels([panel], title=title, note=note, share_names=["samples"],
                         legend=legend, width=width, row=row, min_fraction=min_fraction)
