"""The index page's chart: the story in one compact figure (p99 per step with the band the
verdict judges it by), for a recipient who reads nothing else.  ``lootlab.plots.steps``
re-exports it as ``headline_chart``.

Each bar is a step's p99 in its variant's colour (``colors``); the error bar spans the
band every verdict judges by (``lootlab.experiments.verdicts.band``: the lowest of trial low
and interval low to the highest of trial high and interval high); an INVALID step is hatched
and says so; a p99 resting on fewer than 10 samples above it is drawn hollow, with a note
under the chart.  A saturated step (the rate above what it sustains) has no bar: its latency
is a queue's, so its row says "saturated at N/s" and its queue never stretches the axis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from ..experiments import verdicts
from ..experiments.verdicts import MIN_TAIL, saturated_at
from .axes import category_labels, fit_titles, plain_log
from .colors import variant_colors
from .units import pick_unit, plain_number


def p99_bands(steps: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per step, the low and high end (ms) of its p99 band (``verdicts.band``)."""
    bands = [verdicts.band(row) for _, row in steps.iterrows()]
    return (np.array([b[0] for b in bands], float), np.array([b[1] for b in bands], float))


def thin_rows(steps: pd.DataFrame) -> np.ndarray:
    """Steps whose p99 rests on too few samples above it (``verdicts.too_few_samples``)."""
    return np.array([verdicts.too_few_samples(row) for _, row in steps.iterrows()], bool)


def saturated_rows(steps: pd.DataFrame) -> np.ndarray:
    """Steps whose runs were saturated (``verdicts.saturated``; rows without it: none)."""
    return np.array([verdicts.saturated(row) for _, row in steps.iterrows()], bool)


def headline_chart(steps: pd.DataFrame, *, title: str | None = None) -> Figure:
    """The story at a glance (about 7 x 3 in): one horizontal bar per step, first on top,
    its p99 on a log axis in the unit that fits, the band as an error bar, the value
    written beside it.  ``steps``: the steps frame of ``story.run_steps``."""
    if not len(steps):
        raise ValueError("headline_chart needs at least one step (the steps frame is empty)")
    for col in ("variant", "p99_ms"):
        if col not in steps:
            raise ValueError(f"headline_chart: the steps frame has no {col!r} column")
    names = [str(s) for s in steps["variant"]]
    queued = saturated_rows(steps)
    p99 = np.where(queued, np.nan, steps["p99_ms"].to_numpy(float))
    lo, hi = (np.where(queued, np.nan, a) for a in p99_bands(steps))
    unit = pick_unit(p99, lo, hi, source="ms", log=True)
    valid = steps["valid"].to_numpy(bool) if "valid" in steps else np.ones(len(steps), bool)
    thin = thin_rows(steps)
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
            f"hollow: fewer than {MIN_TAIL} samples above the p99 (n < "
            f"{MIN_TAIL * 100:,}), a rough figure")))
    if not valid.all():
        handles.append(Patch(facecolor="#eee", edgecolor="#444", hatch="///",
                             label="hatched: INVALID run (see the step's health)"))
    fig.legend(handles=handles, loc="outside lower left", fontsize=8, frameon=False)
    fit_titles(fig)
    return fig


__all__ = ["headline_chart", "p99_bands", "saturated_rows", "thin_rows"]
