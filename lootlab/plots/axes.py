"""Axis conventions every figure shares: plain tick labels on log axes (6, 10, 20, not
6x10^0), whole-number ticks where the quantity is a count, titles wrapped to the width
they have instead of running into their neighbours, and the page rules: a figure at most
``PAGE_WIDTH_IN`` wide holding no text under ``MIN_TEXT_PT`` (so it reads >= 9 px in an
800 px window, where the page shows it about 750 px wide).
"""

from __future__ import annotations

import textwrap

from matplotlib.text import Text
from matplotlib.ticker import LogFormatter, LogLocator, MaxNLocator

from .units import plain_number

#: The widest a figure may be (inches): at 100 dpi it then shows near its own size on a page.
PAGE_WIDTH_IN = 8.0
#: The smallest text a figure may hold (points): ticks, legends, annotations, titles.
MIN_TEXT_PT = 8.0


def page_width(width_in: float) -> float:
    """``width_in`` capped at ``PAGE_WIDTH_IN``: a wider figure is shrunk on the page until
    its text is too small to read."""
    return min(float(width_in), PAGE_WIDTH_IN)


def readable_text(fig, min_pt: float = MIN_TEXT_PT) -> None:
    """Raise every text in ``fig`` smaller than ``min_pt`` to ``min_pt``: tick labels
    (including ticks not made yet), legends, annotations and titles."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for which, ticks in (("major", axis.get_major_ticks()),
                                 ("minor", axis.get_minor_ticks())):
                if ticks and ticks[0].label1.get_fontsize() < min_pt:
                    axis.set_tick_params(which=which, labelsize=min_pt)
    for text in fig.findobj(Text):
        if text.get_fontsize() < min_pt:
            text.set_fontsize(min_pt)


class PlainLogFormatter(LogFormatter):
    """A log axis's labels written as plain numbers.  Which ticks get a label is
    matplotlib's own choice (every decade; some minor ticks when the axis spans little more
    than a decade), only the text changes."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        if not super().__call__(x, pos):
            return ""
        return plain_number(x)


def plain_log(axis, numticks: int | None = None) -> None:
    """Give a log ``axis`` (``ax.xaxis`` / ``ax.yaxis``) plain major and minor labels;
    ``numticks`` caps the labelled decades (every other one when the axis spans many, so
    "100,000" and "1,000,000" do not meet on a short axis)."""
    if numticks is not None:
        axis.set_major_locator(LogLocator(base=10, numticks=numticks))
    axis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


def integer_ticks(axis) -> None:
    """Ticks at whole numbers only, for counts (replicas, processes, generations, swaps)."""
    axis.set_major_locator(MaxNLocator(integer=True))


def wrap(text: str, width_in: float, fontsize: float = 10.0) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``fontsize`` points
    (about 0.55 em per character), so a panel's title stays over its own panel."""
    chars = max(12, int(width_in * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars)) or text


def category_labels(names: list[str], width_in: float, fontsize: float = 10.0) -> list[str]:
    """Names for ticks ``width_in`` inches apart: as they are when every one fits, else
    each broken after its hyphens into lines that fit (never mid-word), so neighbours'
    labels stay apart however many or long the names are."""
    chars = max(6, int(width_in * 72 / (0.6 * fontsize)))
    if all(len(n) <= chars for n in names):
        return list(names)
    return ["\n".join(textwrap.wrap(n, chars, break_on_hyphens=True, break_long_words=False))
            for n in names]


def fit_titles(fig, margin_px: float = 6.0) -> None:
    """Wrap every axes title that would run out of the figure once laid out (a long
    y-axis name or a legend beside the axes leaves a centred title less room than its
    axes' share of the figure).  Lays the figure out once to measure, with every text made
    readable first (``readable_text``): the last step of drawing a figure."""
    readable_text(fig)
    for _ in range(3):
        fig.draw_without_rendering()
        width = fig.bbox.width
        changed = False
        for ax in fig.axes:
            for title in (ax.title, ax._left_title, ax._right_title):
                text = title.get_text()
                if not text.strip():
                    continue
                box = title.get_window_extent()
                centre = (box.x0 + box.x1) / 2
                room = 2 * min(centre, width - centre) - 2 * margin_px
                if box.x0 < margin_px or box.x1 > width - margin_px:
                    lines = max(len(line) for line in text.splitlines())
                    chars = max(12, int(lines * room / max(box.width, 1.0)))
                    wrapped = "\n".join(textwrap.wrap(" ".join(text.split()), chars))
                    if wrapped != text:
                        title.set_text(wrapped)
                        changed = True
        if not changed:
            return


def legend_outside(ax, fontsize: float = 8, **kwargs) -> None:
    """The axes' legend to the right of it (constrained layout makes room), so that a
    legend with many variants covers neither the data nor any other text."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0,
              fontsize=fontsize, **kwargs)


__all__ = ["MIN_TEXT_PT", "PAGE_WIDTH_IN", "PlainLogFormatter", "category_labels", "fit_titles",
           "integer_ticks", "legend_outside", "page_width", "plain_log", "readable_text", "wrap"]
