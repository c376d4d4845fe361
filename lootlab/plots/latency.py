"""Latency figures: percentile spectrum, latency vs throughput, spike timeline.

Each takes results (``LoadResult`` objects, or the DataFrames they and
``experiments.latency.sweep`` produce), draws several variants at once, and returns a
matplotlib ``Figure`` built without pyplot (safe under Agg, nothing global, nothing shown).
Latency comes in microseconds (spectra, timelines) or milliseconds (sweep rows, the
``experiments.rows`` names) and is drawn in the unit that fits it (``units.pick_unit``);
each variant has its colour from ``colors``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from .axes import legend_outside, plain_log
from .colors import variant_colors
from .units import TimeUnit, pick_unit

#: Labelled percentiles (0 % is the axis's left end; labelled, it would print over 50 %).
SPECTRUM_TICKS = {50.0: "50%", 90.0: "90%", 99.0: "99%", 99.9: "99.9%",
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


def _time_axis(ax, unit: TimeUnit, what: str, *, log: bool, axis: str = "y") -> None:
    """Label a latency axis with its unit; a log axis gets plain numbers."""
    set_label = ax.set_ylabel if axis == "y" else ax.set_xlabel
    set_label(f"{what} ({unit.name}{', log' if log else ''})")
    if log:
        plain_log(ax.yaxis if axis == "y" else ax.xaxis)


def percentile_spectrum(results: Any, *, metric: str = "latency", logy: bool = False,
                        title: str | None = None, target_us: float | None = None) -> Figure:
    """Latency by percentile, x = 1/(1-p) on a log axis (HdrHistogram's plot), max marked,
    the 95 % interval shaded, and the tail above the last 10 samples grey and dotted.

    ``results``: a LoadResult, a list of them, or a frame with variant / percentile /
    latency_us columns (``LoadResult.spectrum()``)."""
    frame = _spectrum_frame(results, metric)
    maxima = _max_by_variant(results, metric, frame)
    unit = pick_unit(frame["latency_us"], list(maxima.values()),
                     [] if target_us is None else [target_us], log=logy)
    colors = variant_colors(frame["variant"].unique())
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    thin_labelled = False
    marks: list[tuple[float, float, str, str]] = []   # x, y, text, colour of each max
    for variant, g in frame.groupby("variant", sort=False):
        g = g[g["percentile"] < 100]
        color = colors[variant]
        x = 1.0 / (1.0 - g["percentile"].to_numpy() / 100.0)
        enough = g["enough"].to_numpy(bool) if "enough" in g else np.ones(len(g), bool)
        y = unit.scale(g["latency_us"].to_numpy(float))
        ax.plot(x[enough], y[enough], label=variant, drawstyle="steps-post", color=color)
        if "ci_low_us" in g and enough.any():
            ax.fill_between(x[enough], unit.scale(g["ci_low_us"].to_numpy(float))[enough],
                            unit.scale(g["ci_high_us"].to_numpy(float))[enough],
                            step="post", color=color, alpha=0.2, lw=0)
        if not enough.all():
            thin = ~enough
            if enough.any():       # join the grey tail to the last solid point
                thin[np.flatnonzero(enough)[-1]] = True
            ax.plot(x[thin], y[thin], color="grey", ls=":", drawstyle="steps-post",
                    label=None if thin_labelled else "fewer than 10 samples above (grey)")
            thin_labelled = True
        if variant in maxima and len(x):
            top = unit.scale(maxima[variant])
            ax.scatter([x.max()], [top], marker="v", color=color, zorder=3)
            marks.append((float(x.max()), top, f"max {unit.format(maxima[variant])}", color))
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
        ax.axhline(unit.scale(target_us), color="grey", ls=":", lw=1,
                   label=f"target {unit.format(target_us)}")
    _time_axis(ax, unit, metric.replace("_", " "), log=logy)
    ax.set_xlabel("percentile")
    ax.set_title(title or f"{metric.replace('_', ' ')} by percentile")
    ax.grid(True, which="major", alpha=0.3)
    legend_outside(ax)
    _label_maxima(ax, marks, log=logy, height_in=3.6)
    return fig


def _label_maxima(ax, marks: list[tuple[float, float, str, str]], *, log: bool,
                  height_in: float, fontsize: float = 8) -> None:
    """Each variant's "max ..." left of its marker, pushed apart vertically (in axes
    fractions, the limits fixed first) so that maxima close in value do not print over
    each other; a thin line joins a label that moved to its marker."""
    if not marks:
        return
    lo, hi = ax.get_ylim()
    tops = [y for _, y, _, _ in marks]
    if log:
        lo, hi = min(lo, min(tops)), max(hi, max(tops) * 1.6)
    else:
        hi = max(hi, max(tops) * 1.12)
    ax.set_ylim(lo, hi)

    def frac(y: float) -> float:
        if log:
            return (np.log10(y) - np.log10(lo)) / (np.log10(hi) - np.log10(lo))
        return (y - lo) / (hi - lo)

    gap = min(fontsize * 1.35 / (height_in * 72), 0.9 / len(marks))
    order = sorted(range(len(marks)), key=lambda i: frac(max(marks[i][1], 1e-300)))
    want = [frac(max(marks[i][1], 1e-300)) for i in order]
    placed: list[float] = []
    for w in want:
        placed.append(max(w, placed[-1] + gap) if placed else w)
    overflow = placed[-1] - (1 - gap / 2)
    if overflow > 0:                # shift the whole column down, keeping the gaps
        placed = [p - overflow for p in placed]
        for k in range(len(placed) - 2, -1, -1):
            placed[k] = min(placed[k], placed[k + 1] - gap)
    for i, y_frac in zip(order, placed):
        x, y, text, color = marks[i]
        moved = abs(y_frac - frac(max(y, 1e-300))) > gap / 4
        ax.annotate(text, (x, y), xytext=(x / 1.15, y_frac), textcoords=("data", "axes fraction"),
                    ha="right", va="center", fontsize=fontsize, color=color,
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                          "alpha": 0.85},
                    arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6} if moved else None)


def latency_vs_throughput(frame: pd.DataFrame | Iterable, *, columns=("p50_ms", "p99_ms"),
                          target_ms: float | None = None, x: str = "achieved_per_s",
                          logy: bool = True, title: str | None = None) -> Figure:
    """Latency percentiles (ms columns) against throughput, one colour per variant, one
    line style per percentile.

    ``frame``: ``experiments.latency.sweep`` rows (or LoadResults, each made a row by
    ``experiments.rows.measure``).  Invalid runs (generator was the bottleneck) are drawn
    hollow, so nobody reads them as the system's numbers.  Where the frame has a column's
    interval (``p99_ci_low_ms``...), it is drawn as error bars, and a point with fewer than
    10 samples above it (``p99_enough`` False) is crossed out."""
    if not isinstance(frame, pd.DataFrame):
        from ..experiments.rows import Measurement, measure
        frame = Measurement.to_frame(measure(r) for r in _as_list(frame))
    unit = pick_unit(*[frame[c] for c in columns if c in frame],
                     [] if target_ms is None else [target_ms], source="ms", log=logy)
    colors = variant_colors(frame["variant"].unique())
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    styles = ["-", "--", ":", "-."]
    for variant, g in frame.sort_values("offered_per_s").groupby("variant", sort=False):
        color = colors[variant]
        for k, col in enumerate(columns):
            y = unit.scale(g[col].to_numpy(float), "ms")
            ax.plot(g[x], y, ls=styles[k % len(styles)], color=color,
                    label=f"{variant} {col.removesuffix('_ms')}")
            _interval_bars(ax, g, x, col, color, unit)
            valid = g["valid"].astype(bool).to_numpy()
            ax.scatter(g[x][valid], y[valid], color=color, s=16, zorder=3)
            ax.scatter(g[x][~valid], y[~valid], facecolors="none", edgecolors=color,
                       s=30, zorder=3)
    if target_ms is not None:
        ax.axhline(unit.scale(target_ms, "ms"), color="grey", ls=":", lw=1,
                   label=f"target {unit.format(target_ms, 'ms')}")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("throughput (requests/s, achieved)" if x == "achieved_per_s"
                  else "offered rate (requests/s)")
    _time_axis(ax, unit, "latency", log=logy)
    ax.set_title(title or "latency vs throughput (hollow: invalid run)")
    ax.grid(True, alpha=0.3)
    legend_outside(ax)
    return fig


def _interval_bars(ax, g: pd.DataFrame, x: str, col: str, color, unit: TimeUnit) -> None:
    """Error bars from ``<p>_ci_low_ms``/``<p>_ci_high_ms``; an x over too-thin points."""
    stem = col.removesuffix("_ms")
    lo, hi = f"{stem}_ci_low_ms", f"{stem}_ci_high_ms"
    y = unit.scale(g[col].to_numpy(float), "ms")
    if lo in g and hi in g:
        # a point outside its own interval (a median of trials, an edited row) gets a
        # one-sided bar rather than a matplotlib error
        err = np.clip(np.vstack([y - unit.scale(g[lo].to_numpy(float), "ms"),
                                 unit.scale(g[hi].to_numpy(float), "ms") - y]), 0, None)
        ok = np.isfinite(err).all(axis=0)
        if ok.any():
            ax.errorbar(g[x].to_numpy(float)[ok], y[ok], yerr=err[:, ok], fmt="none",
                        ecolor=color, elinewidth=1, capsize=3, alpha=0.7)
    if f"{stem}_enough" in g:
        thin = ~g[f"{stem}_enough"].astype(bool).to_numpy()
        if thin.any():
            ax.scatter(g[x][thin], y[thin], marker="x", color="grey", s=40, zorder=4,
                       label=f"{stem}: too few samples")


def spike_timeline(results: Any, *, logy: bool = True, title: str | None = None) -> Figure:
    """Per second: offered vs completed requests (top), p50 / p99 / max latency (bottom)."""
    frames = [results] if isinstance(results, pd.DataFrame) else \
        [r.timeline() for r in _as_list(results)]
    frame = pd.concat(frames, ignore_index=True)
    unit = pick_unit(frame["p50_us"], frame["p99_us"], frame["max_us"], log=logy)
    colors = variant_colors(frame["variant"].unique())
    fig = Figure(figsize=(9, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    for variant, g in frame.groupby("variant", sort=False):
        c = colors[variant]
        sec = g["second"].to_numpy(dtype=float)
        edges = np.append(sec, sec[-1] + 1 if len(sec) else 1)
        top.step(edges, np.append(g["completed"], g["completed"].iloc[-1:]),
                 where="post", label=f"{variant} completed", color=c)
        top.step(edges, np.append(g["offered"], g["offered"].iloc[-1:]), where="post",
                 color=c, ls="--", lw=1, alpha=0.7, label=f"{variant} offered")
        mid = sec + 0.5
        bottom.plot(mid, unit.scale(g["p99_us"]), color=c, marker="o", ms=3,
                    label=f"{variant} p99")
        bottom.plot(mid, unit.scale(g["p50_us"]), color=c, ls="--", label=f"{variant} p50")
        bottom.plot(mid, unit.scale(g["max_us"]), color=c, ls=":", label=f"{variant} max")
    top.set_ylabel("requests / s")
    legend_outside(top)
    top.grid(True, alpha=0.3)
    if logy:
        bottom.set_yscale("log")
    _time_axis(bottom, unit, "latency", log=logy)
    bottom.set_xlabel("second of the run (after warm-up)")
    legend_outside(bottom)
    bottom.grid(True, alpha=0.3)
    top.set_title(title or "spike: load and latency per second")
    return fig


__all__ = ["latency_vs_throughput", "percentile_spectrum", "spike_timeline"]
