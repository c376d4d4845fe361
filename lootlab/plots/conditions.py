"""The what-if figures: p99 of each variant against the round-trip time, and p99 and
throttled periods against the CPU limit, with the write-up's reference lines (the 120 ms
paint budget players complained past, and the reader's own budget).

Rendering only: the rows of ``lootlab.experiments.whatif.rtt_sweep`` / ``cpu_sweep`` in, a
matplotlib ``Figure`` out, built without pyplot.  Variants keep their colours
(``colors``), latency is in the unit that fits (``units``).  A point whose runs were
INVALID is drawn hollow, and one measured once (a local variant crosses no network) dashed.
A saturated point (the offered rate above what the variant sustains there) has no p99: its
latency is a queue's, so it is drawn as a hollow triangle at the top edge, labelled with the
rate it saturated at, and its queue never stretches the latency axis.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from ..experiments.verdicts import saturated_at
from .axes import fit_titles, legend_outside, plain_log
from .colors import variant_colors
from .headline import p99_bands, saturated_rows
from .units import TimeUnit, pick_unit

#: The write-up's paint budget: players complained past it.
PAINT_BUDGET_MS = 120.0


def _measured(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows whose p99 is the variant's: what the latency axis is fitted to."""
    return rows[~saturated_rows(rows)]


def _band(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p99 and its band (``verdicts.band``: the pooled 95 % interval widened to the lowest
    and highest trial), in ms."""
    lo, hi = p99_bands(g)
    return g["p99_ms"].to_numpy(float), lo, hi


def _references(ax, unit: TimeUnit, budget_ms: float | None,
                paint_budget_ms: float | None) -> None:
    """Horizontal lines: the paint budget (write-up) and the reader's budget."""
    if paint_budget_ms:
        ax.axhline(unit.scale(paint_budget_ms, "ms"), color="#b00020", ls="--", lw=1,
                   label=f"paint budget {paint_budget_ms:g} ms (write-up)")
    if budget_ms:
        ax.axhline(unit.scale(budget_ms, "ms"), color="#444", ls=":", lw=1.2,
                   label=f"your budget {budget_ms:g} ms (budget_ms)")


def _series(ax, rows: pd.DataFrame, x: str, unit: TimeUnit) -> None:
    """One line per variant: p99 with its band as error bars; INVALID points hollow; a
    saturated point leaves a gap in its line and is marked at the top edge instead."""
    colors = variant_colors([str(v) for v in rows["variant"]])
    stacked: dict[float, int] = {}
    for name, g in rows.groupby("variant", sort=False):
        g = g.sort_values(x)
        xs = g[x].to_numpy(float)
        p99, lo, hi = _band(g)
        sat = saturated_rows(g)
        p99, lo, hi = (np.where(sat, np.nan, a) for a in (p99, lo, hi))
        v, vlo, vhi = (unit.scale(a, "ms") for a in (p99, lo, hi))
        color = colors[str(name)]
        once = bool(g["measured_once"].any()) if "measured_once" in g else False
        ax.plot(xs, v, color=color, lw=1.4, ls="--" if once else "-",
                label=str(name) + (" (measured once: no network)" if once else ""))
        err = np.vstack([np.clip(v - vlo, 0, None), np.clip(vhi - v, 0, None)])
        ok = np.isfinite(err).all(axis=0)
        ax.errorbar(xs[ok], v[ok], yerr=err[:, ok], fmt="none", ecolor=color, capsize=3,
                    lw=1)
        valid = g["valid"].to_numpy(bool) if "valid" in g else np.ones(len(g), bool)
        ax.scatter(xs[valid], v[valid], color=color, s=22, zorder=3)
        ax.scatter(xs[~valid], v[~valid], facecolor="white", edgecolor=color, s=30,
                   zorder=3, lw=1.4)
        for (_, r), at in zip(g[sat].iterrows(), xs[sat]):
            k = stacked.get(float(at), 0)
            stacked[float(at)] = k + 1
            words = f"{name} {saturated_at(r)}"
            _saturated_mark(ax, float(at), color, words, k)


def _saturated_mark(ax, x: float, color: str, text: str, k: int) -> None:
    """A hollow triangle at the top edge above ``x`` and its words under it (the ``k``-th
    at that x stacked below the ones before), in place of a queue's p99."""
    top = blended_transform_factory(ax.transData, ax.transAxes)
    ax.scatter([x], [1.0], transform=top, marker="^", facecolor="white", edgecolor=color,
               s=46, lw=1.4, zorder=4, clip_on=False)
    ax.annotate(text, (x, 1.0), xycoords=top, xytext=(-7, -3 - 11 * k),
                textcoords="offset points", ha="right", va="top", fontsize=8, color=color)


def _legend_extra(ax, rows: pd.DataFrame) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if "valid" in rows and not rows["valid"].astype(bool).all():
        handles.append(Line2D([], [], marker="o", ls="none", markerfacecolor="white",
                              markeredgecolor="#444"))
        labels.append("hollow: INVALID run (see health)")
    if saturated_rows(rows).any():
        handles.append(Line2D([], [], marker="^", ls="none", markerfacecolor="white",
                              markeredgecolor="#444"))
        labels.append("triangle at the top: saturated (a queue, no p99)")
    handles.append(Line2D([], [], color="#444", marker="|", ls="none", markersize=9))
    labels.append("bars: 95 % interval and trial spread")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0,
              fontsize=8)


def _need(rows: pd.DataFrame, cols: tuple[str, ...], what: str) -> None:
    if not len(rows):
        raise ValueError(f"{what} needs at least one row (the frame is empty)")
    missing = [c for c in cols if c not in rows]
    if missing:
        raise ValueError(f"{what}: the rows have no {', '.join(map(repr, missing))} column")


def rtt_chart(rows: pd.DataFrame, *, budget_ms: float | None = None,
              paint_budget_ms: float | None = PAINT_BUDGET_MS,
              title: str | None = None) -> Figure:
    """p99 of each variant against the added round-trip time (``rtt_sweep`` rows), on a
    log latency axis and a symmetric-log RTT axis (0 stays on it), with the paint budget
    and ``budget_ms`` as reference lines."""
    _need(rows, ("variant", "rtt_ms", "p99_ms"), "rtt_chart")
    fig = Figure(figsize=(8, 4.4), layout="constrained")
    ax = fig.subplots()
    measured = _measured(rows)
    _, lo, hi = _band(measured)
    refs = [r for r in (budget_ms, paint_budget_ms) if r]
    unit = pick_unit(measured["p99_ms"], lo, hi, refs, source="ms", log=True)
    _series(ax, rows, "rtt_ms", unit)
    _references(ax, unit, budget_ms, paint_budget_ms)
    ax.set_yscale("log")
    plain_log(ax.yaxis)
    rtts = sorted(set(rows["rtt_ms"].astype(float)))
    linthresh = max(0.5, min([r for r in rtts if r > 0], default=1))
    ax.set_xscale("symlog", linthresh=linthresh)
    ax.set_xticks(rtts, [f"{r:g}" for r in rtts])
    # a little room either side: no empty negative half, no marker cut at the edges
    ax.set_xlim(min(rtts) - 0.25 * linthresh, max(rtts) * 1.3 if max(rtts) > 0 else linthresh)
    ax.set_xlabel("round-trip time added by the proxy (ms)")
    ax.set_ylabel(f"p99 latency from intended send time ({unit.name}, log)")
    rate = rows["offered_per_s"].iloc[0] if "offered_per_s" in rows else math.nan
    ax.set_title(title or ("p99 against the network round trip"
                           + (f" at {rate:,.0f} requests/s" if not math.isnan(rate) else "")))
    ax.grid(alpha=0.3, which="both")
    _legend_extra(ax, rows)
    fit_titles(fig)
    return fig


def cpu_chart(rows: pd.DataFrame, *, budget_ms: float | None = None,
              paint_budget_ms: float | None = PAINT_BUDGET_MS,
              title: str | None = None) -> Figure:
    """Two panels against the client side's CPU limit (``cpu_sweep`` rows; cores, log
    axis; an unlimited run, a NaN limit, drawn at the right edge and labelled "none"): each
    variant's p99 with the reference lines, and the share of CFS periods in which it was
    throttled (0 for an unlimited run: no quota, never throttled).  The axis mentions
    "none" only when such a run is drawn."""
    _need(rows, ("variant", "cpu_limit", "p99_ms"), "cpu_chart")
    rows = rows.copy()
    limits = rows["cpu_limit"].astype(float)
    top = float(np.nanmax(limits)) if limits.notna().any() else 1.0
    free = 2 * top
    rows["x"] = limits.fillna(free)
    fig = Figure(figsize=(8, 6.4), layout="constrained")
    ax, tx = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    measured = _measured(rows)
    _, lo, hi = _band(measured)
    refs = [r for r in (budget_ms, paint_budget_ms) if r]
    unit = pick_unit(measured["p99_ms"], lo, hi, refs, source="ms", log=True)
    _series(ax, rows, "x", unit)
    _references(ax, unit, budget_ms, paint_budget_ms)
    ax.set_yscale("log")
    plain_log(ax.yaxis)
    ax.set_ylabel(f"p99 ({unit.name}, log)")
    ax.grid(alpha=0.3, which="both")
    rate = rows["offered_per_s"].iloc[0] if "offered_per_s" in rows else math.nan
    ax.set_title(title or ("p99 against the client side's CPU limit"
                           + (f" at {rate:,.0f} requests/s" if not math.isnan(rate) else "")))
    _legend_extra(ax, rows)
    colors = variant_colors([str(v) for v in rows["variant"]])
    share = rows["throttled_share"] if "throttled_share" in rows else pd.Series(
        np.nan, index=rows.index)
    share = share.where(limits.notna(), share.fillna(0.0))   # no quota: never throttled
    for name, g in rows.assign(share=share).groupby("variant", sort=False):
        g = g.sort_values("x")
        ax_share = g["share"].to_numpy(float) * 100
        tx.plot(g["x"], ax_share, marker="o", color=colors[str(name)], label=str(name))
    tx.set_ylabel("throttled (% of periods)")
    top = float(np.nanmax(share.to_numpy(float))) * 100 if share.notna().any() else 0.0
    tx.set_ylim(0, max(5.0, 1.15 * top))       # no throttling reads as a flat 0, not noise
    tx.set_xlabel("CPU limit on the client side (cores, log"
                  + ("; none: no limit)" if limits.isna().any() else ")"))
    tx.set_title("How often the quota stopped the client (cgroup cpu.stat nr_throttled)")
    tx.grid(alpha=0.3)
    legend_outside(tx)
    ax.set_xscale("log", base=2)
    xs = sorted(set(rows["x"]))
    ax.set_xlim(min(xs) / 1.25, max(xs) * 1.25)      # no marker cut at the edges
    ax.set_xticks(xs, ["none" if x == free and limits.isna().any() else f"{x:g}" for x in xs])
    ax.minorticks_off()
    tx.minorticks_off()
    fit_titles(fig)
    return fig


__all__ = ["PAINT_BUDGET_MS", "cpu_chart", "rtt_chart"]
