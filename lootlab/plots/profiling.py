"""Profiling figures: bucket shares, memory per variant, memory across replicas, GC pauses.

Drawing only: each takes what ``lootlab.profiling`` returns (DataFrames, ``GcStats``) and
returns a matplotlib ``Figure`` built without pyplot (nothing global, nothing shown).  These
are the figures notebooks 03 and 04 show.  Variants are listed top to bottom (names read
horizontally, however long or many) in their colours from ``colors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..profiling.categorize import UNATTRIBUTED
from .axes import PAGE_WIDTH_IN, fit_titles, integer_ticks, legend_outside
from .colors import variant_colors
from .units import pick_unit

if TYPE_CHECKING:
    from ..profiling.gcpause import GcStats

# (columns, title, scale): one panel each, drawn when any of its columns is in the table.
_MEMORY_PANELS: tuple[tuple[tuple[str, ...], str, float], ...] = (
    (("allocs_per_op",), "allocations per op (memray)", 1.0),
    (("bytes_per_op",), "KiB allocated per op (measured loop only; the mapping apart)",
     1 / 1024),
    (("RssAnon_MiB", "RssFile_MiB", "peak_heap_MiB"), "RSS anon / file, peak heap (MiB)",
     1.0),
)
# how a measure of the side-by-side panel is filled (the colour is the variant's)
_MEASURE_STYLE = {"RssAnon_MiB": ("RSS anon", {"alpha": 1.0}),
                  "RssFile_MiB": ("RSS file", {"alpha": 0.45, "hatch": "///"}),
                  "peak_heap_MiB": ("peak heap", {"fill": False, "lw": 1.5})}

# (column of ``replicas.totals``, legend label, line style)
_REPLICA_LINES = (
    ("pss_total_MiB", "PSS, all replicas", "-"),
    ("pss_file_total_MiB", "PSS file-backed (shared page cache)", "--"),
    ("rss_total_MiB", "RSS summed (counts shared pages K times)", ":"),
)

GC_TITLE = "GC pauses during the measured loop (write-up: 8 ms -> 0.6 ms)"


def bucket_bars(shares: pd.DataFrame, *, title: str | None = None) -> Figure:
    """One horizontal stacked bar per variant of ``profiling.bucket_shares`` (each row sums
    to 1), first variant on top, its name in its colour; every bucket keeps its legend
    entry, even at 0, so variants can be compared bucket by bucket.  The unattributed
    bucket (a library without symbols) is grey and hatched: a share nobody can name."""
    numeric = shares.set_index("variant").drop(columns=["samples"], errors="ignore")
    fig = Figure(figsize=(8, 1.6 + 0.5 * len(shares)), layout="constrained")
    ax = fig.subplots()
    numeric.plot.barh(stacked=True, ax=ax, colormap="tab20", width=0.7, legend=False)
    for bucket, bars in zip(numeric.columns, ax.containers):
        if bucket == UNATTRIBUTED:     # what the data cannot name: grey and hatched, never a hue
            for bar in bars:
                bar.set_facecolor("#d9d9d9")
                bar.set_hatch("///")
                bar.set_edgecolor("#777")
    ax.set_xlabel("share of samples in the measured loop")
    ax.set_ylabel("")
    ax.set_xlim(0, 1)
    legend_outside(ax)
    ax.invert_yaxis()
    colors = variant_colors(numeric.index)
    for label in ax.get_yticklabels():
        label.set_color(colors.get(label.get_text(), "black"))
        label.set_fontweight("bold")
    if title:
        ax.set_title(title)
        fit_titles(fig)
    return fig


def memory_bars(table: pd.DataFrame) -> Figure:
    """Per variant (a row each, named in every panel): allocations per op, KiB per op, and
    RSS anon / file with peak heap side by side (rows of ``MemoryProfile.summary()``), each
    bar in its variant's colour.  The panels are stacked, each the page's full width: side
    by side at the page's width their titles ran into one another.  A panel whose columns
    are all missing is left out, so a partial table still draws."""
    panels = [([c for c in columns if c in table], title, scale)
              for columns, title, scale in _MEMORY_PANELS]
    panels = [panel for panel in panels if panel[0]]
    n = len(table)
    # a panel's height: its title and ticks, then its bars (taller with a bar per measure)
    heights = [0.9 + 0.3 * n * (1.6 if len(columns) > 1 and n > 1 else 1)
               for columns, _, _ in panels]
    legend = 0.35 if any(len(columns) > 1 for columns, _, _ in panels) else 0.0
    fig = Figure(figsize=(PAGE_WIDTH_IN, sum(heights) + legend), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    variants = list(table["variant"])
    colors = [variant_colors(variants)[v] for v in variants]
    y = np.arange(n)
    for ax, (columns, title, scale) in zip(axes, panels):
        width = 0.8 / len(columns)
        for k, col in enumerate(columns):
            style = _MEASURE_STYLE.get(col, ("", {}))[1] if len(columns) > 1 else {}
            edge = {"edgecolor": colors} if style.get("fill") is False or "hatch" in style \
                else {}
            ax.barh(y - 0.4 + width * (k + 0.5), table[col].to_numpy(float) * scale, width,
                    color=colors, label=col, **edge, **style)
        if len(columns) > 1:   # how each measure is filled, under the figure
            fig.legend(handles=[Patch(facecolor="#555", label=_MEASURE_STYLE[c][0],
                                      **{**_MEASURE_STYLE[c][1], "edgecolor": "#555"})
                                for c in columns], fontsize=8, loc="outside lower right",
                       ncols=len(columns), frameon=False)
        ax.set_title(title, fontsize=10)
        ax.set_yticks(y, variants)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    fit_titles(fig)
    return fig


def pss_vs_replicas(totals: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Memory summed over K replicas (``profiling.replicas.totals``): total PSS, its
    file-backed part and summed RSS, one line style each (colour: the variant).  RSS counts
    pages the replicas share K times, PSS once; a remote variant's server PSS is added on
    top where the table has it.  K is a count: whole-number ticks only."""
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax = fig.subplots()
    variants = list(totals["variant"].unique())
    colors = variant_colors(variants)
    for variant, g in totals.groupby("variant", sort=False):
        prefix = f"{variant}: " if len(variants) > 1 else ""
        for col, label, style in _REPLICA_LINES:
            if col in g:
                ax.plot(g["k"], g[col], marker="o", ls=style, color=colors[variant],
                        label=prefix + label)
        if "server_pss_MiB" in g and g["server_pss_MiB"].notna().any():
            ax.plot(g["k"], g["pss_total_MiB"] + g["server_pss_MiB"].fillna(0), marker="s",
                    ls="-.", color=colors[variant],
                    label=prefix + "PSS, all replicas + their server")
    ax.set_xlabel("replicas (K)")
    integer_ticks(ax.xaxis)
    ax.set_ylabel("total MiB")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if title is None:
        title = (f"{variants[0]}: memory summed over K replicas" if len(variants) == 1
                 else "memory summed over K replicas")
    ax.set_title(title)
    fig.legend(fontsize=8, loc="outside lower center", frameon=False,
               ncols=1 if max(len(t) for t in ax.get_legend_handles_labels()[1]) > 45 else 2)
    fit_titles(fig)
    return fig


def gc_pause_chart(stats: Mapping[str, GcStats] | Iterable[GcStats], *,
                   title: str = GC_TITLE) -> Figure:
    """One horizontal box of GC pause durations per variant, first on top (``profiling.
    gc_pauses`` results, as a list or a name -> stats mapping whose keys label the boxes),
    in the variant's colour, the time in the unit that fits.  A variant without a single
    collection is drawn at 0 rather than left out, so its absence of pauses shows."""
    if isinstance(stats, Mapping):
        labels, values = list(stats), list(stats.values())
    else:
        values = list(stats)
        labels = [s.variant for s in values]
    data_ms = [np.asarray(s.pauses_ms if len(s.pauses_ms) else [0.0], float) for s in values]
    unit = pick_unit(*data_ms, source="ms")
    colors = variant_colors(labels)
    fig = Figure(figsize=(8, 1.4 + 0.45 * len(values)), layout="constrained")
    ax = fig.subplots()
    boxes = ax.boxplot([unit.scale(d, "ms") for d in data_ms], orientation="horizontal",
                       showfliers=True,
                       patch_artist=True, widths=0.6)
    for box, label in zip(boxes["boxes"], labels):
        box.set(facecolor=colors[label], alpha=0.55, edgecolor=colors[label])
    for median in boxes["medians"]:
        median.set(color="black")
    ax.set_yticks(range(1, len(values) + 1), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"GC pause ({unit.name})")
    ax.set_xlim(left=0)
    _clip_outliers(ax, boxes, [unit.scale(d, "ms") for d in data_ms], unit)
    for row, s in enumerate(values, 1):
        if not len(s.pauses_ms):
            ax.annotate("no collection during the loop", (0, row), xytext=(6, 0),
                        textcoords="offset points", va="center", fontsize=8, color="#444")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    fit_titles(fig)
    return fig


def _clip_outliers(ax, boxes: dict, data: list[np.ndarray], unit) -> None:
    """Where a few pauses lie far beyond every box's whiskers (one 30 ms pause among
    0.1 ms ones), end the axis a little past the whiskers and write each clipped variant's
    pauses beyond it at the right edge, so one pause does not squash every box to a line."""
    reach = max((float(np.max(w.get_xdata())) for w in boxes["whiskers"]), default=0.0)
    top = max((float(np.max(d)) for d in data if len(d)), default=0.0)
    if not (reach > 0 and top > 3 * reach):
        return
    limit = reach * 1.6
    ax.set_xlim(0, limit)
    for row, d in enumerate(data, 1):
        beyond = d[d > limit]
        if len(beyond):
            ax.annotate(f"{len(beyond)} beyond the axis, up to {unit.format(float(beyond.max()), unit.name)} →",
                        (1, row), xycoords=("axes fraction", "data"), xytext=(-4, 9),
                        textcoords="offset points", ha="right", va="center", fontsize=8,
                        color="#b00020")


__all__ = ["bucket_bars", "gc_pause_chart", "memory_bars", "pss_vs_replicas"]
