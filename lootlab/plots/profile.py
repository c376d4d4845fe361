"""Profiling figures: bucket shares, memory, PSS vs replicas, GC pauses.  Drawing only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..profiling.categorize import BUCKETS

_COLORS = {"TLS/ssl": "#d62728", "gRPC core": "#ff7f0e", "protobuf": "#bcbd22", "socket I/O": "#e377c2",
           "numpy/memcpy": "#1f77b4", "GC": "#9467bd", "Python overhead": "#7f7f7f",
           "idle/wait": "#c7c7c7", "other": "#8c564b"}


def bucket_bars(shares: pd.DataFrame, *, title: str = "Where the CPU samples go") -> Figure:
    """Stacked bars, one per variant, of ``profiling.bucket_shares`` (shares sum to 1)."""
    fig = Figure(figsize=(max(5, 1.2 * len(shares) + 3), 4.5), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(shares))
    bottom = np.zeros(len(shares))
    for b in BUCKETS:
        if b not in shares or not shares[b].any():
            continue
        vals = shares[b].to_numpy(float) * 100
        ax.bar(x, vals, bottom=bottom, label=b, color=_COLORS.get(b))
        bottom += vals
    ax.set_xticks(x, shares["variant"], rotation=20, ha="right")
    ax.set_ylabel("share of samples in the measured loop (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize="small")
    return fig


def memory_bars(table: pd.DataFrame, columns: Sequence[str] = ("allocs_per_op", "peak_heap_MiB",
                                                              "RssAnon_MiB")) -> Figure:
    """One panel per measure, one bar per variant (rows of the bench table or
    ``MemoryProfile.summary()`` dicts in a DataFrame)."""
    cols = [c for c in columns if c in table]
    fig = Figure(figsize=(4 * len(cols), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(cols)))
    for ax, c in zip(axes, cols):
        ax.bar(table["variant"], table[c], color="#1f77b4")
        ax.set_title(c)
        ax.tick_params(axis="x", rotation=30)
    return fig


def pss_vs_replicas(totals: pd.DataFrame) -> Figure:
    """Total PSS and total RSS against K replicas (``replicas.totals``), per variant: RSS
    counts shared pages K times, PSS once."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for v, g in totals.groupby("variant"):
        ax.plot(g["k"], g["pss_total_MiB"], "o-", label=f"{v} total PSS")
        ax.plot(g["k"], g["rss_total_MiB"], "x--", alpha=0.6, label=f"{v} total RSS")
        if "server_pss_MiB" in g and g["server_pss_MiB"].notna().any():
            ax.plot(g["k"], g["pss_total_MiB"] + g["server_pss_MiB"].fillna(0), "o-.",
                    alpha=0.7, label=f"{v} total PSS + its server")
        if "index_pss_total_MiB" in g and g["index_pss_total_MiB"].any():
            ax.plot(g["k"], g["index_pss_total_MiB"], "s:", label=f"{v} index PSS (shared)")
    ax.set_xlabel("replicas (K)")
    ax.set_ylabel("MiB")
    ax.set_xticks(sorted(totals["k"].unique()))
    ax.set_title("Memory across replicas")
    ax.legend(fontsize="small")
    return fig


def gc_pause_chart(stats: Iterable) -> Figure:
    """Per variant (``GcStats``): collections per 1 k ops by generation, and p99/max pause."""
    stats = list(stats)
    rows = pd.DataFrame([s.summary() for s in stats])
    fig = Figure(figsize=(10, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    x = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    for g in (0, 1, 2):
        vals = rows[f"gen{g}_per_kop"].to_numpy(float)
        left.bar(x, vals, bottom=bottom, label=f"gen {g}")
        bottom += vals
    left.set_xticks(x, rows["variant"], rotation=20, ha="right")
    left.set_ylabel("collections per 1 000 ops")
    left.legend(fontsize="small")
    w = 0.38
    right.bar(x - w / 2, rows["pause_p99_ms"], w, label="p99")
    right.bar(x + w / 2, rows["pause_max_ms"], w, label="max")
    right.set_xticks(x, rows["variant"], rotation=20, ha="right")
    right.set_ylabel("GC pause (ms)")
    right.legend(fontsize="small")
    fig.suptitle("GC pauses (gc.callbacks)")
    return fig
