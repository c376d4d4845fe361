"""Latency figures: percentile spectrum, latency vs throughput, spike timeline.

Each takes results (``LoadResult`` objects, or the DataFrames they and ``loadgen.sweep``
produce), draws several variants at once, and returns a matplotlib ``Figure`` built
without pyplot (safe under Agg, nothing global, nothing shown).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

SPECTRUM_TICKS = {0.0: "0%", 50.0: "50%", 90.0: "90%", 99.0: "99%", 99.9: "99.9%",
                  99.99: "99.99%", 99.999: "99.999%"}


def _as_list(results: Any) -> list:
    if isinstance(results, (list, tuple)):
        return list(results)
    return [results]


def _spectrum_frame(results: Any, metric: str) -> pd.DataFrame:
    if isinstance(results, pd.DataFrame):
        return results
    return pd.concat([r.spectrum(metric) for r in _as_list(results)], ignore_index=True)


def _max_by_variant(results: Any, metric: str, frame: pd.DataFrame) -> dict[str, float]:
    if isinstance(results, pd.DataFrame):
        return frame.groupby("variant")["latency_us"].max().to_dict()
    return {r.variant: r.percentile_us(100, metric) for r in _as_list(results)}


def percentile_spectrum(results: Any, *, metric: str = "latency", logy: bool = False,
                        title: str | None = None, target_us: float | None = None) -> Figure:
    """Latency by percentile, x = 1/(1-p) on a log axis (HdrHistogram's plot), max marked,
    the 95 % interval shaded, and the tail above the last 10 samples grey and dotted.

    ``results``: a LoadResult, a list of them, or a frame with variant / percentile /
    latency_us columns (``LoadResult.spectrum()``)."""
    frame = _spectrum_frame(results, metric)
    maxima = _max_by_variant(results, metric, frame)
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    thin_labelled = False
    for variant, g in frame.groupby("variant", sort=False):
        g = g[g["percentile"] < 100]
        x = 1.0 / (1.0 - g["percentile"].to_numpy() / 100.0)
        enough = g["enough"].to_numpy(bool) if "enough" in g else np.ones(len(g), bool)
        y = g["latency_us"].to_numpy(float)
        (line,) = ax.plot(x[enough], y[enough], label=variant, drawstyle="steps-post")
        if "ci_low_us" in g and enough.any():
            ax.fill_between(x[enough], g["ci_low_us"].to_numpy(float)[enough],
                            g["ci_high_us"].to_numpy(float)[enough], step="post",
                            color=line.get_color(), alpha=0.2, lw=0)
        if not enough.all():
            thin = ~enough
            if enough.any():       # join the grey tail to the last solid point
                thin[np.flatnonzero(enough)[-1]] = True
            ax.plot(x[thin], y[thin], color="grey", ls=":", drawstyle="steps-post",
                    label=None if thin_labelled else "fewer than 10 samples above (grey)")
            thin_labelled = True
        if variant in maxima and len(x):
            ax.scatter([x.max()], [maxima[variant]], marker="v", color=line.get_color(),
                       zorder=3)
            ax.annotate(f"max {maxima[variant]:,.0f} us", (x.max(), maxima[variant]),
                        textcoords="offset points", xytext=(-4, 6), ha="right", fontsize=8,
                        color=line.get_color())
    ax.set_xscale("log")
    ticks = {1 / (1 - p / 100): lab for p, lab in SPECTRUM_TICKS.items()}
    ax.xaxis.set_major_locator(FixedLocator(list(ticks)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels(list(ticks.values()))
    if len(frame):
        hi = 1.0 / (1.0 - frame.loc[frame["percentile"] < 100, "percentile"].max() / 100)
        ax.set_xlim(1, max(hi * 1.5, 10))
    if logy:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    if target_us is not None:
        ax.axhline(target_us, color="grey", ls=":", lw=1, label=f"target {target_us:,.0f} us")
    ax.set_xlabel("percentile")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (us)")
    ax.set_title(title or f"{metric.replace('_', ' ')} by percentile")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def latency_vs_throughput(frame: pd.DataFrame | Iterable, *, columns=("p50_us", "p99_us"),
                          target_us: float | None = None, x: str = "achieved_rate",
                          logy: bool = True, title: str | None = None) -> Figure:
    """Latency percentiles against throughput, one line per variant and percentile.

    ``frame``: ``loadgen.sweep`` output (or LoadResults).  Invalid runs (generator was the
    bottleneck) are drawn hollow, so nobody reads them as the system's numbers.  Where the
    frame has a column's interval (``p99_ci_low_us``...), it is drawn as error bars, and a
    point with fewer than 10 samples above it (``p99_enough`` False) is crossed out."""
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame([r.summary() for r in _as_list(frame)])
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    styles = ["-", "--", ":", "-."]
    for variant, g in frame.sort_values("rate").groupby("variant", sort=False):
        color = None
        for k, col in enumerate(columns):
            (line,) = ax.plot(g[x], g[col], ls=styles[k % len(styles)], color=color,
                              label=f"{variant} {col.removesuffix('_us')}")
            color = line.get_color()
            _interval_bars(ax, g, x, col, color)
            valid = g["valid"].astype(bool).to_numpy()
            ax.scatter(g[x][valid], g[col][valid], color=color, s=16, zorder=3)
            ax.scatter(g[x][~valid], g[col][~valid], facecolors="none", edgecolors=color,
                       s=30, zorder=3)
    if target_us is not None:
        ax.axhline(target_us, color="grey", ls=":", lw=1, label=f"target {target_us:,.0f} us")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("throughput (requests/s, achieved)" if x == "achieved_rate"
                  else "offered rate (requests/s)")
    ax.set_ylabel("latency (us)")
    ax.set_title(title or "latency vs throughput (hollow: invalid run)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _interval_bars(ax, g: pd.DataFrame, x: str, col: str, color) -> None:
    """Error bars from ``<p>_ci_low_us``/``<p>_ci_high_us``; an x over too-thin points."""
    stem = col.removesuffix("_us")
    lo, hi = f"{stem}_ci_low_us", f"{stem}_ci_high_us"
    if lo in g and hi in g:
        y = g[col].to_numpy(float)
        # a point outside its own interval (a median of trials, an edited row) gets a
        # one-sided bar rather than a matplotlib error
        err = np.clip(np.vstack([y - g[lo].to_numpy(float), g[hi].to_numpy(float) - y]), 0, None)
        ok = np.isfinite(err).all(axis=0)
        if ok.any():
            ax.errorbar(g[x].to_numpy(float)[ok], y[ok], yerr=err[:, ok], fmt="none",
                        ecolor=color, elinewidth=1, capsize=3, alpha=0.7)
    if f"{stem}_enough" in g:
        thin = ~g[f"{stem}_enough"].astype(bool).to_numpy()
        if thin.any():
            ax.scatter(g[x][thin], g[col][thin], marker="x", color="grey", s=40, zorder=4,
                       label=f"{stem}: too few samples")


def spike_timeline(results: Any, *, logy: bool = True, title: str | None = None) -> Figure:
    """Per second: offered vs completed requests (top), p50 / p99 / max latency (bottom)."""
    frames = [results] if isinstance(results, pd.DataFrame) else \
        [r.timeline() for r in _as_list(results)]
    frame = pd.concat(frames, ignore_index=True)
    fig = Figure(figsize=(8, 6))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for variant, g in frame.groupby("variant", sort=False):
        sec = g["second"].to_numpy(dtype=float)
        edges = np.append(sec, sec[-1] + 1 if len(sec) else 1)
        (line,) = top.step(edges, np.append(g["completed"], g["completed"].iloc[-1:]),
                           where="post", label=f"{variant} completed")
        c = line.get_color()
        top.step(edges, np.append(g["offered"], g["offered"].iloc[-1:]), where="post",
                 color=c, ls="--", lw=1, alpha=0.7, label=f"{variant} offered")
        mid = sec + 0.5
        bottom.plot(mid, g["p99_us"], color=c, marker="o", ms=3, label=f"{variant} p99")
        bottom.plot(mid, g["p50_us"], color=c, ls="--", label=f"{variant} p50")
        bottom.plot(mid, g["max_us"], color=c, ls=":", label=f"{variant} max")
    top.set_ylabel("requests / s")
    top.legend(fontsize=8)
    top.grid(True, alpha=0.3)
    if logy:
        bottom.set_yscale("log")
    bottom.set_ylabel("latency (us)")
    bottom.set_xlabel("second of the run (after warm-up)")
    bottom.legend(fontsize=8, ncol=2)
    bottom.grid(True, alpha=0.3)
    top.set_title(title or "spike: load and latency per second")
    fig.tight_layout()
    return fig


__all__ = ["percentile_spectrum", "latency_vs_throughput", "spike_timeline"]
