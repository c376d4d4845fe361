"""Axis conventions every figure shares: plain tick labels on log axes (6, 10, 20, not
6x10^0), whole-number ticks where the quantity is a count, and titles wrapped to the width
they have instead of running into their neighbours.
"""

from __future__ import annotations

import textwrap

from matplotlib.ticker import LogFormatter, MaxNLocator

from .units import plain_number


class PlainLogFormatter(LogFormatter):
    """A log axis's labels written as plain numbers.  Which ticks get a label is
    matplotlib's own choice (every decade; some minor ticks when the axis spans little more
    than a decade), only the text changes."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        if not super().__call__(x, pos):
            return ""
        return plain_number(x)


def plain_log(axis) -> None:
    """Give a log ``axis`` (``ax.xaxis`` / ``ax.yaxis``) plain major and minor labels."""
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


def legend_outside(ax, fontsize: float = 8, **kwargs) -> None:
    """The axes' legend to the right of it (constrained layout makes room), so that a
    legend with many variants covers neither the data nor any other text."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0,
              fontsize=fontsize, **kwargs)


__all__ = ["PlainLogFormatter", "integer_ticks", "legend_outside", "plain_log", "wrap"]
