"""The story's figures: what each step bought (step chart), and the rebuild-under-load
timeline.  Plain data in (``lootlab.story`` results), a matplotlib ``Figure`` out, built
without pyplot (nothing global, nothing shown).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def step_chart(steps: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Left: p50 and p99 per step at the same offered load (log scale; with several
    trials, the pooled (or median) value and error bars spanning min..max of the trials), with
    the write-up's p99 figures as hollow markers where a step has one.  Right: the p99
    change each step made (a waterfall: green bars are gains)."""
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax, wf = fig.subplots(1, 2, width_ratios=[3, 2])
    x = np.arange(len(steps))
    w = 0.38
    trials = int(steps["trials"].max()) if "trials" in steps and len(steps) else 1
    pooled = "pooled" in steps and bool(steps["pooled"].all())
    of = "" if trials <= 1 else (f", {trials} trials pooled" if pooled
                                 else f", median of {trials} trials")
    for dx, col, name, color in ((-w / 2, "p50_ms", "p50", "#7aa6d8"),
                                 (w / 2, "p99_ms", "p99", "#2b5c9e")):
        ax.bar(x + dx, steps[col], w, label=f"{name} (this machine{of})", color=color,
               yerr=spread_err(steps, col), error_kw={"ecolor": "#222", "capsize": 3, "lw": 1})
    for i, (p50, p99) in enumerate(zip(steps["p50_ms"], steps["p99_ms"])):
        ax.annotate(f"{p99:.3g}", (i + w / 2, p99), ha="center", va="bottom", fontsize=8)
    if "writeup_p99_ms" in steps:
        ref = steps["writeup_p99_ms"].to_numpy(dtype=float)
        have = ~np.isnan(ref)
        if have.any():
            ax.scatter(x[have] + w / 2, ref[have], marker="D", facecolor="none",
                       edgecolor="#c0392b", s=60, zorder=3, label="p99 in the write-up")
    invalid = ~steps["valid"].to_numpy(dtype=bool)
    for i in np.flatnonzero(invalid):
        ax.annotate("INVALID\nrun", (i, steps["p99_ms"].iloc[i]), xytext=(0, 18),
                    textcoords="offset points", ha="center", fontsize=7, color="#b00020")
    ax.set_yscale("log")
    ax.set_xticks(x, steps["step"], rotation=20, ha="right")
    ax.set_ylabel("latency from intended send time (ms, log)")
    rate = steps["offered_per_s"].iloc[0] if len(steps) else float("nan")
    ax.set_title(title or f"Each step at {rate:,.0f} requests/s")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3, which="both")

    p99 = steps["p99_ms"].to_numpy(dtype=float)
    change = np.diff(p99, prepend=np.nan)
    bottoms, heights, colors = [], [], []
    for i in range(len(p99)):
        if i == 0:
            bottoms.append(0.0)
            heights.append(p99[0])
            colors.append("#888888")
        else:
            bottoms.append(min(p99[i - 1], p99[i]))
            heights.append(abs(change[i]))
            colors.append("#2e8b57" if change[i] < 0 else "#c0392b")
    wf.bar(x, heights, bottom=bottoms, color=colors)
    wf.step(np.append(x, x[-1] + 1) - 0.5 if len(x) else x,
            np.append(p99, p99[-1]) if len(p99) else p99, where="post", color="#444", lw=0.8)
    for i in range(1, len(p99)):
        wf.annotate(f"{change[i]:+.3g}", (i, bottoms[i] + heights[i]), ha="center",
                    va="bottom", fontsize=8)
    wf.set_xticks(x, steps["step"], rotation=20, ha="right")
    wf.set_ylabel("p99 (ms)")
    wf.set_title("What each change did to p99")
    wf.grid(axis="y", alpha=0.3)
    return fig


def spread_err(steps: pd.DataFrame, col: str) -> np.ndarray | None:
    """Error bar lengths (2, n) below/above ``col`` from ``<col>_lo``/``<col>_hi``: the
    spread across trials; None when the rows have no spread columns."""
    if f"{col}_lo" not in steps or f"{col}_hi" not in steps:
        return None
    mid = steps[col].to_numpy(dtype=float)
    lo, hi = steps[f"{col}_lo"].to_numpy(dtype=float), steps[f"{col}_hi"].to_numpy(dtype=float)
    return np.vstack([np.clip(mid - lo, 0, None), np.clip(hi - mid, 0, None)])


def writeup_chart(writeup: dict[str, Any]) -> Figure:
    """The original write-up's own figures, drawn as reported (for reference only)."""
    fig = Figure(figsize=(12, 3.2), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    p99 = writeup["p99_ms"]
    a.bar(list(p99), list(p99.values()), color="#c0392b")
    a.set_title("write-up: p99 (ms)")
    a.tick_params(axis="x", labelsize=7)
    gc = writeup["gc_pause_ms"]
    b.bar(list(gc), list(gc.values()), color="#d35400")
    b.set_title("write-up: GC pause (ms)")
    allocs = writeup["allocs_per_op"]
    c.bar(list(allocs), list(allocs.values()), color="#8e44ad")
    c.set_title(f"write-up: allocations/op (RSS < {writeup['rss_mb_max']:.0f} MB)")
    for ax in (a, b, c):
        for patch in ax.patches:
            ax.annotate(f"{patch.get_height():g}", (patch.get_x() + patch.get_width() / 2,
                        patch.get_height()), ha="center", va="bottom", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    return fig


def rebuild_timeline(runs: list[Any], *, window: float = 1.0) -> Figure:
    """Per run (one row each): p50/p99 per ``window`` seconds of the measured run (the
    merged per-second histograms, drawn at each window's middle), the worker's swaps as
    vertical lines, and the generation the readers answered from (right axis)."""
    fig = Figure(figsize=(12, 3.4 * max(1, len(runs))), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(runs), 1, squeeze=False)[:, 0])
    for ax, run in zip(axes, runs):
        win = run.windows(window)
        mid = (win["t_s"] + win["t_end_s"]) / 2
        ax.plot(mid, win["p99_ms"], label="p99", color="#2b5c9e", marker=".")
        ax.plot(mid, win["p50_ms"], label="p50", color="#7aa6d8", marker=".")
        for j, t in enumerate(run.swaps["t_s"]):
            ax.axvline(t, color="#c0392b", lw=0.8, ls="--",
                       label="index swapped" if j == 0 else None)
        ax.set_yscale("log")
        ax.set_ylabel(f"latency per {window:g} s (ms, log)")
        s = run.summary()
        ax.set_title(f"{run.source} source: {s['requests']:,} queries at {run.rate:,.0f}/s, "
                     f"{s['swaps']} swaps, {s['generations_seen']} generations seen, "
                     f"{s['errors']} errors" + ("" if s["valid"] else " (INVALID run)"))
        gen_ax = ax.twinx()
        t, g = _generation_steps(run.seen, run.duration)
        gen_ax.step(t, g, where="post", color="#27ae60", lw=1, label="generation seen")
        gen_ax.set_ylabel("generation", color="#27ae60")
        lines = ax.get_legend_handles_labels()
        glines = gen_ax.get_legend_handles_labels()
        ax.legend(lines[0] + glines[0], lines[1] + glines[1], fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)
        ax.set_xlim(0, max(run.duration, float(win["t_end_s"].max()) if len(win) else 0.0))
    axes[-1].set_xlabel("time since the end of the warm-up (s)")
    return fig


def _generation_steps(seen: pd.DataFrame, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """The generation in effect from 0 to ``duration`` as step points: the one seen last
    in the warm-up holds at 0, then each change where the readers first saw it."""
    t = seen["t_s"].to_numpy(dtype=float)
    g = seen["generation"].to_numpy(dtype=float)
    if not len(t):
        return t, g
    inside = (t > 0) & (t <= duration)
    start = g[t <= 0][-1:] if (t <= 0).any() else g[:1]
    ts = np.concatenate([[0.0], t[inside], [duration]])
    gs = np.concatenate([start, g[inside], g[inside][-1:] if inside.any() else start])
    return ts, gs
