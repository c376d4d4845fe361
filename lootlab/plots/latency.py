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

from ..experiments.verdicts import kept_up, num, rate_text, saturated
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
    fig = Figure(figsize=(8, 4.5), layout="constrained")
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
                          target_ms: float | None = None, x: str = "offered_per_s",
                          logy: bool = True, title: str | None = None) -> Figure:
    """Latency percentiles (ms columns) against the offered rate, one colour per variant,
    one line style per percentile, the points joined in offered order.

    The x axis is the rate asked for: a variant that could not keep up completes less than
    it was offered, so against the achieved rate its line would double back on itself; here
    each such point is drawn hollow and says what it completed, and a saturated one (a
    queue's latency, ``verdicts.saturated``) says so.  ``frame``: ``experiments.latency.
    sweep`` rows (or LoadResults, each made a row by ``experiments.rows.measure``).  INVALID
    runs are drawn hollow, so nobody reads them as the system's numbers.  Where the frame
    has a column's interval (``p99_ci_low_ms``...), it is drawn as error bars, and a point
    with fewer than 10 samples above it (``p99_enough`` False) is crossed out.  ``x``
    ("achieved_per_s") draws against what completed, still joined in offered order."""
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
        valid = g["valid"].astype(bool).to_numpy()
        for k, col in enumerate(columns):
            y = unit.scale(g[col].to_numpy(float), "ms")
            ax.plot(g[x], y, ls=styles[k % len(styles)], color=color,
                    label=f"{variant} {col.removesuffix('_ms')}")
            _interval_bars(ax, g, x, col, color, unit)
            ax.scatter(g[x][valid], y[valid], color=color, s=16, zorder=3)
            ax.scatter(g[x][~valid], y[~valid], facecolors="white", edgecolors=color,
                       s=30, zorder=3)
        top = unit.scale(g[columns[-1]].to_numpy(float), "ms")
        right = float(g[x].max()) if len(g) else np.nan
        for (_, row), y_top in zip(g.iterrows(), top):
            said = _short_of_rate(row)
            if said and np.isfinite(y_top):     # the rightmost note ends at its point
                last = float(row[x]) >= right
                ax.annotate(said, (row[x], y_top), xytext=(-4 if last else 0, 6),
                            textcoords="offset points", ha="right" if last else "center",
                            va="bottom", fontsize=8, color=color)
    if target_ms is not None:
        ax.axhline(unit.scale(target_ms, "ms"), color="grey", ls=":", lw=1,
                   label=f"target {unit.format(target_ms, 'ms')}")
    if logy:
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi * 3)                      # room for the notes above the points
    if x == "offered_per_s" and (frame["offered_per_s"] > 0).all() and len(frame):
        ax.set_xscale("log")
        plain_log(ax.xaxis)
    ax.set_xlabel("offered rate (requests/s, log)" if x == "offered_per_s"
                  else "throughput (requests/s completed; points joined in offered order)")
    _time_axis(ax, unit, "latency", log=logy)
    ax.set_title(title or "latency vs offered rate (hollow: INVALID run)")
    ax.grid(True, alpha=0.3)
    legend_outside(ax)
    return fig


def _short_of_rate(row: pd.Series) -> str:
    """"saturated: 657/s done" / "completed 657/s" for a point that did not keep up with
    its offered rate (``verdicts.kept_up``), else ""."""
    if saturated(row):
        return f"saturated:\n{rate_text(num(row.get('achieved_per_s')))}/s done"
    if not kept_up(row):
        return f"completed\n{rate_text(num(row.get('achieved_per_s')))}/s"
    return ""


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
    """Per second: offered and completed requests (top: completed as a filled step, offered
    as a dashed line on top of it, so the two stay visible where they are equal), p50 / p99
    / max latency (bottom)."""
    frames = [results] if isinstance(results, pd.DataFrame) else \
        [r.timeline() for r in _as_list(results)]
    frame = pd.concat(frames, ignore_index=True)
    unit = pick_unit(frame["p50_us"], frame["p99_us"], frame["max_us"], log=logy)
    colors = variant_colors(frame["variant"].unique())
    fig = Figure(figsize=(8, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    for variant, g in frame.groupby("variant", sort=False):
        c = colors[variant]
        sec = g["second"].to_numpy(dtype=float)
        edges = np.append(sec, sec[-1] + 1 if len(sec) else 1)
        done = np.append(g["completed"], g["completed"].iloc[-1:]).astype(float)
        top.fill_between(edges, done, step="post", color=c, alpha=0.35, lw=0, zorder=1,
                         label=f"{variant} completed (filled)")
        top.step(edges, done, where="post", color=c, lw=1.2, zorder=2)
        top.step(edges, np.append(g["offered"], g["offered"].iloc[-1:]), where="post",
                 color="#222", ls=(0, (4, 3)), lw=1.4, zorder=3,
                 label=f"{variant} offered (dashed)")
        mid = sec + 0.5
        bottom.plot(mid, unit.scale(g["p99_us"]), color=c, marker="o", ms=3,
                    label=f"{variant} p99")
        bottom.plot(mid, unit.scale(g["p50_us"]), color=c, ls="--", label=f"{variant} p50")
        bottom.plot(mid, unit.scale(g["max_us"]), color=c, ls=":", label=f"{variant} max")
    top.set_ylabel("requests / s")
    top.set_ylim(bottom=0)
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
