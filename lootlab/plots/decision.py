"""The decision page's figures: freshness (a PBS curve per rebuild interval), memory per
node against replicas per node, dollars per hour against fleet size, and each failure's
timeline.

Rendering only: rows measured by the decision experiments (``lootlab.experiments``:
``freshness``, ``node_memory``, ``failure``) and the pure cost model in, a matplotlib
``Figure`` out, built without pyplot.  What was extrapolated is drawn dashed and says so in
its legend, beside the measured points it rests on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..experiments.cost_model import CostInputs, Prices, cost_per_million
from .axes import fit_titles, legend_outside, plain_log
from .colors import variant_color

MIB = float(2 ** 20)
WIDTH_IN = 8.0


def freshness_chart(curve: pd.DataFrame, *, budget_s: float | None = None,
                    title: str = "Share of reads that already see a change") -> Figure:
    """``pbs_curve`` rows: one line per rebuild interval, measured solid, modelled dashed
    (labelled "model"), with the freshness budget as a vertical line."""
    fig = Figure(figsize=(WIDTH_IN, 4.2), layout="constrained")
    ax = fig.subplots()
    cmap = ["#0072B2", "#009E73", "#D55E00", "#CC79A7", "#E69F00", "#56B4E9"]
    for i, ((interval, basis), g) in enumerate(curve.groupby(["interval_s", "basis"],
                                                             sort=True)):
        model = basis == "model"
        ax.plot(g["t_s"], 100 * g["share"], ls="--" if model else "-",
                color=cmap[i % len(cmap)], lw=1.8,
                label=f"poll every {interval:g} s ({'model' if model else 'measured'}, "
                      f"{int(g['reads'].iloc[0])} reads)")
    if budget_s:
        ax.axvline(budget_s, color="#b00020", lw=1, ls=":")
        ax.annotate(f"budget {budget_s:g} s", (budget_s, 50), xytext=(4, 0),
                    textcoords="offset points", color="#b00020", fontsize=9)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("seconds since the change was made (log beyond 1 s)")
    ax.set_ylabel("reads that see it (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title)
    legend_outside(ax, fontsize=9)
    fit_titles(fig)
    return fig


def memory_chart(rows: pd.DataFrame, *, title: str = "Memory per node") -> Figure:
    """``node_memory`` rows: the node's PSS sum against processes per node, one line per
    (side, index size); the swap peak dashed."""
    fig = Figure(figsize=(WIDTH_IN, 4.4), layout="constrained")
    ax = fig.subplots()
    for (kind, phase, size), g in rows.groupby(["kind", "phase", "index_bytes"], sort=True):
        if kind == "remote-server":
            continue
        g = g.sort_values("n")
        color = variant_color("mmap") if kind == "mmap" else variant_color("grpc-tls-pooled")
        who = "file readers" if kind == "mmap" else "remote clients"
        ax.plot(g["n"], g["node_bytes"] / MIB, marker="o", ls="--" if phase != "steady" else "-",
                color=color, alpha=0.55 + 0.45 * (size == rows["index_bytes"].max()),
                label=f"{who}, {size / MIB:,.0f} MiB index"
                      + (" (during a swap)" if phase != "steady" else ""))
    ax.set_xscale("log", base=2)
    ns = sorted(set(rows["n"].astype(int)))
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_yscale("log")
    plain_log(ax.yaxis)
    ax.set_xlabel("processes on the node (replicas or clients)")
    ax.set_ylabel("node memory: sum of PSS (MiB, log)")
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title)
    legend_outside(ax, fontsize=9)
    fit_titles(fig)
    return fig


def fleet_costs(inputs: CostInputs, fleet_sizes: np.ndarray, qps: float, data_bytes: float,
                prices: Prices, **scenario: float) -> pd.DataFrame:
    """Dollars per hour for each variant at each fleet size (the model, evaluated)."""
    frames = [cost_per_million(inputs, float(n), qps, data_bytes, prices, **scenario)
              for n in fleet_sizes]
    return pd.concat(frames, ignore_index=True)


def cost_chart(inputs: CostInputs, *, fleet_size: float, qps: float, data_bytes: float,
               prices: Prices, crossings: pd.DataFrame | None = None,
               title: str = "Dollars per hour against fleet size", **scenario: float) -> Figure:
    """Each variant's hourly cost from 1 to 4x the reader's fleet size, the reader's fleet
    marked, and where the file variant crosses each remote one (``crossover`` rows)."""
    top = 4 * fleet_size
    if crossings is not None:      # show where the lines cross, up to a million replicas
        at = crossings.loc[crossings["variable"] == "fleet_size", "at"].dropna()
        top = max([top, *[1.5 * a for a in at if a <= 1e6]])
    sizes = np.unique(np.geomspace(1, max(top, 8), 80).round())
    frame = fleet_costs(inputs, sizes, qps, data_bytes, prices, **scenario)
    fig = Figure(figsize=(WIDTH_IN, 4.4), layout="constrained")
    ax = fig.subplots()
    for v, g in frame.groupby("variant", sort=False):
        ax.plot(g["fleet_size"], g["dollars_per_hour"], color=variant_color(str(v)), lw=1.8,
                label=str(v))
    ax.axvline(fleet_size, color="#444", lw=1, ls=":")
    ax.annotate(f"your fleet: {fleet_size:,.0f}", (fleet_size, 0.98), xycoords=("data",
                "axes fraction"), xytext=(4, -4), textcoords="offset points", va="top",
                fontsize=9, color="#444")
    if crossings is not None:
        fleet = crossings[(crossings["variable"] == "fleet_size") & crossings["at"].notna()]
        for _, c in fleet.iterrows():
            if 1 <= c["at"] <= sizes.max():
                ax.axvline(c["at"], color=variant_color(str(c["b"])), lw=0.8, ls="--",
                           label=f"mmap costs as much as {c['b']} at {c['at']:,.0f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log(ax.xaxis)
    plain_log(ax.yaxis)
    ax.set_xlabel("replicas in the fleet (log)")
    ax.set_ylabel("dollars per hour (log)")
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title)
    legend_outside(ax, fontsize=9)
    fit_titles(fig)
    return fig


def failure_chart(rows: pd.DataFrame, summary: pd.DataFrame | None = None, *,
                  title: str = "Each failure, second by second") -> Figure:
    """One row of panels per scenario: queries answered and failed per second (left) and
    staleness (right, where the scenario has one), the fault (``summary``'s
    ``fault_start_s`` to ``fault_end_s``) shaded."""
    scenarios = list(dict.fromkeys(rows["scenario"]))
    fig = Figure(figsize=(WIDTH_IN, 1.2 + 1.9 * len(scenarios)), layout="constrained")
    axes = fig.subplots(len(scenarios), 2, squeeze=False, sharex=True)
    for (left, right), sc in zip(axes, scenarios):
        g = rows[rows["scenario"] == sc].sort_values("t_s")
        left.plot(g["t_s"], g["ok_count"], color="#009E73", lw=1.5, label="answered")
        left.plot(g["t_s"], g["error_count"], color="#b00020", lw=1.5, label="failed")
        left.set_ylabel("queries/s")
        left.set_title(sc, loc="left", fontsize=10)
        stale = g["staleness_s"].astype(float)
        if stale.notna().any():
            right.plot(g["t_s"], stale, color="#0072B2", lw=1.5)
            right.set_ylabel("staleness (s)")
        else:
            right.text(0.5, 0.5, "no staleness: the server\nanswers from a fixed index",
                       ha="center", va="center", transform=right.transAxes, fontsize=9,
                       color="#555")
            right.set_yticks([])
        if summary is not None and len(summary):
            fault = summary[summary["scenario"] == sc]
            if len(fault):
                t0, t1 = (float(fault[c].iloc[0]) for c in ("fault_start_s", "fault_end_s"))
                if np.isfinite(t0) and np.isfinite(t1):
                    for ax in (left, right):
                        ax.axvspan(t0, t1, color="#b00020", alpha=0.08)
        for ax in (left, right):
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("seconds into the run")
    axes[0][0].legend(fontsize=9, loc="lower left", frameon=False)
    fig.suptitle(title + " (fault shaded)")
    fit_titles(fig)
    return fig


def has_finite(values: pd.Series) -> bool:
    return bool(np.isfinite(values.astype(float)).any()) if len(values) else False


__all__ = ["cost_chart", "failure_chart", "fleet_costs", "freshness_chart", "has_finite",
           "memory_chart"]
