"""Profiling figures: bucket shares, memory per variant, memory across replicas, GC pauses.

Drawing only: each takes what ``lootlab.profiling`` returns (DataFrames, ``GcStats``) and
returns a matplotlib ``Figure`` built without pyplot (nothing global, nothing shown).  These
are the figures notebooks 03 and 04 show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from ..profiling.gcpause import GcStats

# (columns, title, colour, scale): one panel each, drawn when any of its columns is in the
# table; colour None draws the columns side by side with a legend.
_MEMORY_PANELS: tuple[tuple[tuple[str, ...], str, str | None, float], ...] = (
    (("allocs_per_op",), "allocations per op (memray)", "#2b5c9e", 1.0),
    (("bytes_per_op",),
     "KiB allocated per op (measured loop only; the mapping is reported apart)", "#7aa6d8",
     1 / 1024),
    (("RssAnon_MiB", "RssFile_MiB", "peak_heap_MiB"), "RSS anon / file, peak heap (MiB)", None,
     1.0),
)

# (column of ``replicas.totals``, legend label)
_REPLICA_LINES = (
    ("pss_total_MiB", "PSS, all replicas"),
    ("pss_file_total_MiB", "PSS file-backed (shared page cache)"),
    ("rss_total_MiB", "RSS summed (counts shared pages K times)"),
)

GC_TITLE = "GC pauses during the measured loop (write-up: 8 ms -> 0.6 ms)"


def bucket_bars(shares: pd.DataFrame, *, title: str | None = None) -> Figure:
    """One horizontal stacked bar per variant of ``profiling.bucket_shares`` (each row sums
    to 1), first variant on top; every bucket keeps its legend entry, even at 0, so variants
    can be compared bucket by bucket."""
    numeric = shares.set_index("variant").drop(columns=["samples"], errors="ignore")
    fig = Figure(figsize=(10, 0.6 + 0.5 * len(shares)), layout="constrained")
    ax = fig.subplots()
    numeric.plot.barh(stacked=True, ax=ax, colormap="tab20", width=0.7)
    ax.set_xlabel("share of samples in the measured loop")
    ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8)
    ax.invert_yaxis()
    if title:
        ax.set_title(title)
    return fig


def memory_bars(table: pd.DataFrame) -> Figure:
    """Per variant: allocations per op, KiB per op, and RSS anon / file with peak heap
    side by side (rows of ``MemoryProfile.summary()``).  A panel whose columns are all
    missing is left out, so a partial table still draws."""
    panels = [([c for c in columns if c in table], title, color, scale)
              for columns, title, color, scale in _MEMORY_PANELS]
    panels = [panel for panel in panels if panel[0]]
    fig = Figure(figsize=(4 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (columns, title, color, scale) in zip(axes, panels):
        if color is not None:  # a single measure
            ax.bar(table["variant"], table[columns[0]] * scale, color=color)
        else:  # measures side by side, with a legend
            (table.set_index("variant")[columns] * scale).plot.bar(ax=ax)
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=20)
    return fig


def pss_vs_replicas(totals: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Memory summed over K replicas (``profiling.replicas.totals``): total PSS, its
    file-backed part and summed RSS.  RSS counts pages the replicas share K times, PSS once;
    a remote variant's server PSS is added on top where the table has it."""
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    variants = list(totals["variant"].unique())
    for variant, g in totals.groupby("variant", sort=False):
        prefix = f"{variant}: " if len(variants) > 1 else ""
        for col, label in _REPLICA_LINES:
            if col in g:
                ax.plot(g["k"], g[col], marker="o", label=prefix + label)
        if "server_pss_MiB" in g and g["server_pss_MiB"].notna().any():
            ax.plot(g["k"], g["pss_total_MiB"] + g["server_pss_MiB"].fillna(0), marker="o",
                    ls="-.", label=prefix + "PSS, all replicas + their server")
    ax.set_xlabel("replicas (K)")
    ax.set_ylabel("total MiB")
    if title is None:
        title = (f"{variants[0]}: memory summed over K replicas" if len(variants) == 1
                 else "memory summed over K replicas")
    ax.set_title(title)
    ax.legend()
    return fig


def gc_pause_chart(stats: Mapping[str, GcStats] | Iterable[GcStats], *,
                   title: str = GC_TITLE) -> Figure:
    """One box of GC pause durations per variant (``profiling.gc_pauses`` results, as a
    list or a name -> stats mapping whose keys label the boxes).  A variant without a
    single collection is drawn at 0 ms rather than left out, so its absence of pauses shows."""
    if isinstance(stats, Mapping):
        labels, values = list(stats), list(stats.values())
    else:
        values = list(stats)
        labels = [s.variant for s in values]
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax = fig.subplots()
    data = [s.pauses_ms if len(s.pauses_ms) else [0.0] for s in values]
    ax.boxplot(data, showfliers=True)
    ax.set_xticks(range(1, len(values) + 1), labels)
    ax.set_ylabel("GC pause (ms)")
    ax.set_title(title)
    return fig


__all__ = ["bucket_bars", "gc_pause_chart", "memory_bars", "pss_vs_replicas"]
