"""The index page's chart: the story in one compact figure (p99 per step with the band the
verdict judges it by), for a recipient who reads nothing else.  ``lootlab.plots.story``
re-exports it as ``headline_chart``.

Each bar is a step's p99 in its variant's colour (``colors``); the error bar spans the
band ``lootlab.report.story.band`` uses (the lowest of trial low and interval low to the
highest of trial high and interval high); an INVALID step is hatched and says so; a p99
resting on fewer than 10 samples above it is drawn hollow, with a note under the chart.  A
saturated step (the rate above what it sustains) has no bar: its latency is a queue's, so
its row says "saturated at N/s" and its queue never stretches the axis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from ..conditions.decision import saturated_at

from .axes import category_labels, fit_titles, plain_log
from .colors import variant_colors
from .units import pick_unit, plain_number

#: a p99 needs this many samples above it to be a number (``loadgen.uncertainty``)
MIN_ABOVE = 10


def p99_band(steps: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per step, the low and high end (ms) of the p99 band: the lowest of the lowest trial
    and the interval's low end, the highest of the highest trial and the interval's high end
    (a missing column or NaN is skipped; with none, the p99 itself)."""
    p99 = steps["p99_ms"].to_numpy(float)

    def cols(*names: str) -> np.ndarray:
        have = [steps[n].to_numpy(float) for n in names if n in steps]
        return np.vstack([p99, *have])

    with np.errstate(all="ignore"):
        lo = np.nanmin(cols("p99_ms_lo", "p99_ci_low_ms"), axis=0)
        hi = np.nanmax(cols("p99_ms_hi", "p99_ci_high_ms"), axis=0)
    return lo, hi


def few_samples(steps: pd.DataFrame) -> np.ndarray:
    """Steps whose p99 rests on fewer than 10 samples above it (``n * 0.01 < 10``)."""
    if "n" not in steps:
        return np.zeros(len(steps), bool)
    n = steps["n"].to_numpy(float)
    return np.nan_to_num(n, nan=np.inf) * 0.01 < MIN_ABOVE


def saturated(steps: pd.DataFrame) -> np.ndarray:
    """Steps whose runs were saturated (rows without the column: none)."""
    if "saturated" not in steps:
        return np.zeros(len(steps), bool)
    return steps["saturated"].fillna(False).to_numpy(bool)


def headline_chart(steps: pd.DataFrame, *, title: str | None = None) -> Figure:
    """The story at a glance (about 7 x 3 in): one horizontal bar per step, first on top,
    its p99 on a log axis in the unit that fits, the band as an error bar, the value
    written beside it.  ``steps``: the steps frame of ``story.run_steps``."""
    if not len(steps):
        raise ValueError("headline_chart needs at least one step (the steps frame is empty)")
    for col in ("step", "p99_ms"):
        if col not in steps:
            raise ValueError(f"headline_chart: the steps frame has no {col!r} column")
    names = [str(s) for s in steps["step"]]
    queued = saturated(steps)
    p99 = np.where(queued, np.nan, steps["p99_ms"].to_numpy(float))
    lo, hi = (np.where(queued, np.nan, a) for a in p99_band(steps))
    unit = pick_unit(p99, lo, hi, source="ms", log=True)
    valid = steps["valid"].to_numpy(bool) if "valid" in steps else np.ones(len(steps), bool)
    thin = few_samples(steps)
    colors = variant_colors(names)
    fig = Figure(figsize=(7, max(2.4, 1.3 + 0.34 * len(steps))), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(steps))
    v, vlo, vhi = (unit.scale(a, "ms") for a in (p99, lo, hi))
    for i, name in enumerate(names):
        color = colors[name]
        if queued[i]:
            continue
        face = "white" if thin[i] else color if valid[i] else to_rgba(color, 0.3)
        ax.barh(y[i], v[i], 0.62, color=face, edgecolor=color, lw=1.6,
                hatch=None if valid[i] else "///")
    err = np.vstack([np.clip(v - vlo, 0, None), np.clip(vhi - v, 0, None)])
    ok = np.isfinite(err).all(axis=0)
    ax.errorbar(v[ok], y[ok], xerr=err[:, ok], fmt="none", ecolor="#222", capsize=3, lw=1)
    for i in range(len(steps)):
        if queued[i]:
            continue
        text = plain_number(v[i]) + ("" if valid[i] else "  INVALID run")
        ax.annotate(text, (np.nanmax([vhi[i], v[i]]), y[i]), xytext=(5, 0),
                    textcoords="offset points", va="center", fontsize=8,
                    color="#222" if valid[i] else "#b00020",
                    fontweight="normal" if valid[i] else "bold")
    ax.set_xscale("log")
    plain_log(ax.xaxis, numticks=6)
    finite = np.concatenate([v, vlo, vhi])
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if len(finite):   # room on the right for the values
        ax.set_xlim(finite.min() / 2, finite.max() * 10 ** (0.2 * max(1.0, np.log10(
            finite.max() / finite.min())) + 0.25))
    edge = blended_transform_factory(ax.transAxes, ax.transData)
    for i in np.flatnonzero(queued):
        ax.text(0.01, y[i], f"{saturated_at(steps.iloc[i])}: a queue, no p99", transform=edge,
                va="center", fontsize=8, color="#b00020", fontweight="bold")
    ax.set_yticks(y, category_labels(names, 2.0))   # a long name wraps at its hyphens
    ax.invert_yaxis()
    for label, name in zip(ax.get_yticklabels(), names):
        label.set_color(colors[name])
        label.set_fontweight("bold")
    ax.set_xlabel(f"p99 ({unit.name}, log scale; lower is better)")
    ax.grid(axis="x", which="major", alpha=0.3)
    rate = steps["offered_per_s"].iloc[0] if "offered_per_s" in steps else None
    ax.set_title(title or ("p99 per step" + (f" at {rate:,.0f} requests/s" if rate else "")),
                 loc="left", fontsize=11)
    handles = [Line2D([], [], color="#222", marker="|", markersize=8, lw=1,
                      label="whiskers: lowest..highest trial and 95 % interval")]
    if thin.any():
        handles.append(Patch(facecolor="white", edgecolor="#444", label=(
            f"hollow: fewer than {MIN_ABOVE} samples above the p99 (n < "
            f"{MIN_ABOVE * 100:,}), a rough figure")))
    if not valid.all():
        handles.append(Patch(facecolor="#eee", edgecolor="#444", hatch="///",
                             label="hatched: INVALID run (see the step's health)"))
    fig.legend(handles=handles, loc="outside lower left", fontsize=7.5, frameon=False)
    fit_titles(fig)
    return fig


__all__ = ["few_samples", "headline_chart", "p99_band", "saturated"]
