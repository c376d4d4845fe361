"""The story's figures: what each step bought (step chart), the write-up's own figures,
the rebuild-under-load timeline, and the index page's one chart (``headline_chart``).
Plain data in (``lootlab.experiments.story`` results), a matplotlib ``Figure`` out, built without
pyplot (nothing global, nothing shown).  Each step is drawn in its variant's colour
(``colors``), latency in the unit that fits (``units``).
"""

from __future__ import annotations

import textwrap
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from ..experiments.verdicts import (
    FEW_SAMPLES,
    INVALID_STEP,
    SATURATED_STEP,
    WITHIN_SPREAD,
    saturated_at,
    unnamed_change,
)
from .axes import category_labels, fit_titles, integer_ticks, plain_log
from .colors import variant_colors
from .headline import headline_chart, saturated_rows
from .units import pick_unit, plain_number


def step_chart(steps: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Top: p50 (light) and p99 (solid) per step at the same offered load, in the step's
    colour (log scale; with several trials, the pooled (or median) value and error bars
    spanning min..max of the trials), with the write-up's p99 figures as hollow markers
    where a step has one.  Bottom: the p99 change each step made (a waterfall: green bars
    are gains).  One row each, so every step's name has the full width."""
    queued = saturated_rows(steps)
    why = change_reasons(steps)           # before a queue's figures are blanked
    said = {i: saturated_at(steps.iloc[i]).replace(" at", "\nat") + ":\na queue,\nno p99"
            for i in np.flatnonzero(queued)}
    if queued.any():        # a queue's latency is no step's: no bar, no change drawn from it
        steps = steps.copy()
        steps.loc[queued, [c for c in steps if c.startswith(("p50_ms", "p99_ms"))]] = np.nan
    fig = Figure(figsize=(8, 7.6), layout="constrained")
    ax, wf = fig.subplots(2, 1, height_ratios=[3, 2])
    x = np.arange(len(steps))
    names = [str(s) for s in steps["variant"]]
    colors = [variant_colors(names)[n] for n in names]
    w = 0.38
    trials = int(steps["trials"].max()) if "trials" in steps and len(steps) else 1
    pooled = "pooled" in steps and bool(steps["pooled"].all())
    of = "" if trials <= 1 else (f", {trials} trials pooled" if pooled
                                 else f", median of {trials} trials")
    ref = steps["writeup_p99_ms"].to_numpy(dtype=float) if "writeup_p99_ms" in steps \
        else np.full(len(steps), np.nan)
    unit = pick_unit(steps["p50_ms"], steps["p99_ms"], ref, source="ms", log=True)
    scale = unit.scale(1.0, "ms")
    for dx, col, name, alpha in ((-w / 2, "p50_ms", "p50", 0.4), (w / 2, "p99_ms", "p99", 1.0)):
        err = spread_err(steps, col)
        ax.bar(x + dx, steps[col] * scale, w, label=f"{name} (this machine{of})", color=colors,
               alpha=alpha, edgecolor=colors, yerr=None if err is None else err * scale,
               error_kw={"ecolor": "#222", "capsize": 3, "lw": 1})
    have = ~np.isnan(ref)
    if have.any():
        ax.scatter(x[have] + w / 2, ref[have] * scale, marker="D", facecolor="none",
                   edgecolor="#c0392b", s=60, zorder=3, label="p99 in the write-up")
    valid = steps["valid"].to_numpy(dtype=bool)
    p99_err = spread_err(steps, "p99_ms")
    tops = steps["p99_ms"].to_numpy(float) + (0 if p99_err is None else p99_err[1])
    for i, text in said.items():
        ax.text(i, 0.03, text, transform=blended_transform_factory(ax.transData, ax.transAxes),
                ha="center", va="bottom", fontsize=8, color="#b00020", fontweight="bold")
    for i, p99 in enumerate(steps["p99_ms"]):      # the value (above its error bar), and
        # INVALID in the same text, so the two never print over each other
        if queued[i]:
            continue
        ax.annotate(plain_number(p99 * scale) + ("" if valid[i] else "\nINVALID run"),
                    (i + w / 2, tops[i] * scale), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8,
                    color="#222" if valid[i] else "#b00020")
    ax.set_yscale("log")
    plain_log(ax.yaxis)
    heights = np.concatenate([tops, ref])
    top = np.nanmax(heights) * scale if np.isfinite(heights).any() else 1.0
    ax.set_ylim(top=top * 4)                      # room for the values above the bars
    ticks = category_labels(names, 6.8 / max(1, len(names)))   # the axes is ~6.8 in wide
    ax.set_xticks(x, ticks)
    ax.set_ylabel(f"latency from intended send time ({unit.name}, log)")
    rate = steps["offered_per_s"].iloc[0] if len(steps) else float("nan")
    ax.set_title(title or f"Each step at {rate:,.0f} requests/s")
    handles, labels = ax.get_legend_handles_labels()
    swatch = {"p50 (": Patch(facecolor="#777", alpha=0.4), "p99 (": Patch(facecolor="#777")}
    fig.legend([swatch.get(lab[:5], h) for h, lab in zip(handles, labels)], labels,
               fontsize=8, loc="outside upper center", ncol=min(3, len(labels)),
               frameon=False)
    ax.grid(axis="y", alpha=0.3, which="both")
    _waterfall(wf, steps["p99_ms"].to_numpy(dtype=float) * scale, x, ticks, unit.name, why)
    wf.set_xlim(ax.get_xlim())
    fit_titles(fig)
    return fig


#: A change the words do not name, as its hollow bar on the waterfall says why.
UNNAMED_LABELS = {SATURATED_STEP: "saturated", INVALID_STEP: "INVALID run",
                  FEW_SAMPLES: "too few samples", WITHIN_SPREAD: "within trial noise"}


def change_reasons(steps: pd.DataFrame) -> list[str]:
    """Per step, why its p99 change from the step before is not named ("" when it is; the
    first step has none): ``verdicts.unnamed_change``, the rule the verdict's words use."""
    rows = [row for _, row in steps.iterrows()]
    return [""] + [unnamed_change(a, b) for a, b in pairwise(rows)]


def _waterfall(wf, p99: np.ndarray, x: np.ndarray, names: list[str], unit: str,
               why: list[str]) -> None:
    """The p99 of the first step, then each step's change from the one before: a change the
    verdict names (``why`` "") is a solid bar, one it does not is hollow and hatched, with
    the reason under its value, so the largest bar drawn and the gain named never
    disagree without saying why."""
    change = np.diff(p99, prepend=np.nan)
    hollow = False
    for i in range(len(p99)):
        if i == 0:
            wf.bar(x[i], p99[0], color="#888888")
            continue
        if np.isnan(change[i]):       # a saturated step on either side: nothing drawn
            continue
        color = "#2e8b57" if change[i] < 0 else "#c0392b"
        bottom, height = min(p99[i - 1], p99[i]), abs(change[i])
        if why[i]:
            hollow = True
            wf.bar(x[i], height, bottom=bottom, facecolor="white", edgecolor=color,
                   hatch="///", lw=1.2)
        else:
            wf.bar(x[i], height, bottom=bottom, color=color)
        sign = "+" if change[i] > 0 else "-" if change[i] < 0 else ""
        text = sign + plain_number(height) + (
            f"\nnot named:\n{UNNAMED_LABELS.get(why[i], why[i])}" if why[i] else "")
        wf.annotate(text, (i, bottom + height), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8,
                    color="#555" if why[i] else "#222")
    wf.step(np.append(x, x[-1] + 1) - 0.5 if len(x) else x,
            np.append(p99, p99[-1]) if len(p99) else p99, where="post", color="#444", lw=0.8)
    if np.isfinite(p99).any():       # (every step saturated: nothing drawn, no limit)
        wf.set_ylim(0, np.nanmax(p99) * (1.5 if hollow else 1.15))   # room for the reasons
    wf.set_xticks(x, names)
    wf.set_ylabel(f"p99 ({unit})")
    wf.set_title("What each change did to p99 (green: faster, red: slower"
                 + ("; hollow: not named, see why)" if hollow else ")"))
    wf.grid(axis="y", alpha=0.3)


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
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    panels = ((a, writeup["p99_ms"], "#c0392b", "write-up: p99 (ms)"),
              (b, writeup["gc_pause_ms"], "#d35400", "write-up: GC pause (ms)"),
              (c, writeup["allocs_per_op"], "#8e44ad",
               f"write-up: allocations/op (RSS < {writeup['rss_mb_max']:.0f} MB)"))
    for ax, figures, color, title in panels:
        labels = [textwrap.fill(str(k), 10) for k in figures]
        ax.bar(range(len(figures)), list(figures.values()), color=color)
        ax.set_xticks(range(len(figures)), labels, fontsize=8)
        ax.set_title(textwrap.fill(title, 24), fontsize=9)
        for patch in ax.patches:
            ax.annotate(plain_number(patch.get_height()),
                        (patch.get_x() + patch.get_width() / 2, patch.get_height()),
                        ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, max(figures.values()) * 1.15)
        ax.grid(axis="y", alpha=0.3)
    return fig


def rebuild_timeline(runs: list[Any], *, window: float = 1.0) -> Figure:
    """Per run (one row each): p50/p99 per ``window`` seconds of the measured run (the
    merged per-second histograms, drawn at each window's middle), the worker's swaps as
    vertical lines, and the generation the readers answered from (right axis, whole
    numbers)."""
    fig = Figure(figsize=(8, 3.6 * max(1, len(runs))), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(runs), 1, squeeze=False)[:, 0])
    wins = [run.windows(window) for run in runs]
    unit = pick_unit(*[w["p50_ms"] for w in wins], *[w["p99_ms"] for w in wins], source="ms",
                     log=True)
    for ax, run, win in zip(axes, runs, wins):
        mid = (win["t_s"] + win["t_end_s"]) / 2
        ax.plot(mid, unit.scale(win["p99_ms"], "ms"), label="p99", color="#2b5c9e",
                marker=".")
        ax.plot(mid, unit.scale(win["p50_ms"], "ms"), label="p50", color="#7aa6d8",
                marker=".")
        for j, t in enumerate(run.swaps["t_s"]):
            ax.axvline(t, color="#c0392b", lw=0.8, ls="--",
                       label="index swapped" if j == 0 else None)
        ax.set_yscale("log")
        plain_log(ax.yaxis)
        ax.set_ylabel(f"latency per {window:g} s ({unit.name}, log)")
        s = run.summary()
        ax.set_title(f"{run.source} source: {s['requests']:,} queries at {run.rate:,.0f}/s, "
                     f"{s['swaps']} swaps, {s['generations_seen']} generations seen, "
                     f"{s['errors']} errors" + ("" if s["valid"] else " (INVALID run)"))
        gen_ax = ax.twinx()
        t, g = _generation_steps(run.seen, run.duration)
        gen_ax.step(t, g, where="post", color="#27ae60", lw=1, label="generation seen")
        gen_ax.set_ylabel("generation", color="#27ae60")
        integer_ticks(gen_ax.yaxis)
        lines = ax.get_legend_handles_labels()
        glines = gen_ax.get_legend_handles_labels()
        gen_ax.legend(lines[0] + glines[0], lines[1] + glines[1], fontsize=8,
                      loc="upper left", bbox_to_anchor=(1.08, 1), borderaxespad=0)
        ax.grid(alpha=0.3)
        ax.set_xlim(0, max(run.duration, float(win["t_end_s"].max()) if len(win) else 0.0))
    axes[-1].set_xlabel("time since the end of the warm-up (s)")
    fit_titles(fig)
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


__all__ = ["UNNAMED_LABELS", "change_reasons", "headline_chart", "rebuild_timeline",
           "spread_err", "step_chart", "writeup_chart"]
