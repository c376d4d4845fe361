"""Where each step's latency goes: a stacked bar per step of its mean latency, split into
the wait to be sent and the parts of the call (``LoadResult.split_us``,
``lootlab.loadgen.split``).  Means, because means add up; the p99 is on the step chart.
Plain data in (the steps DataFrame of ``story.run_steps``), a ``Figure`` out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..loadgen.split import SPLIT_PARTS, split_means
from .axes import PAGE_WIDTH_IN, fit_titles
from .colors import variant_colors
from .units import pick_unit, plain_number

#: One colour per part (the same on every page).
COLORS = {"send_wait": "#bbbbbb", "client_serialize": "#f2c14e", "transport": "#5b8fd1",
          "server_queue": "#e07a5f", "server_compute": "#b23a48",
          "client_deserialize": "#81b29a", "call": "#3d405b"}


def latency_split(steps: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Left: each step's mean latency (ms) as a stack of its parts.  Right: the same as
    shares of the step's mean, so the small steps' make-up can be read too."""
    frame = split_means(steps)
    unit = pick_unit(frame.sum(axis=1).to_numpy(), source="ms")
    frame = frame * unit.scale(1.0, "ms")
    fig = Figure(figsize=(PAGE_WIDTH_IN, 2.8 + 0.42 * len(frame)), layout="constrained")
    ax, share = fig.subplots(1, 2)
    y = np.arange(len(frame))
    totals = frame.sum(axis=1).to_numpy()
    left = np.zeros(len(frame))
    left_share = np.zeros(len(frame))
    for part in frame.columns:
        label, color = SPLIT_PARTS[part], COLORS[part]
        values = frame[part].to_numpy()
        if not values.any():
            continue
        ax.barh(y, values, left=left, color=color, label=label)
        frac = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
        share.barh(y, frac * 100, left=left_share, color=color)
        left += values
        left_share += frac * 100
    for i, total in enumerate(totals):
        ax.annotate(f"{plain_number(total)} {unit.name}", (total, i), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    for a in (ax, share):
        a.set_yticks(y, frame.index)
        a.invert_yaxis()
        a.grid(axis="x", alpha=0.3)
    share.set_yticklabels([])
    colors = variant_colors(str(n) for n in frame.index)
    for label in ax.get_yticklabels():
        label.set_color(colors.get(label.get_text(), "black"))
        label.set_fontweight("bold")
    ax.set_xlabel(f"mean latency ({unit.name})")
    share.set_xlabel("share of the step's mean latency (%)")
    share.set_xlim(0, 100)
    ax.set_xlim(0, max(float(totals.max(initial=0.0)) * 1.18, 1e-3))
    ax.set_title(title or "Where each step's mean latency goes")
    share.set_title("The same, as shares")
    fig.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    fit_titles(fig)
    return fig


__all__ = ["COLORS", "latency_split"]
