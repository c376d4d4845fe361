"""The answers that lead the latency and memory pages: a sentence or two per experiment,
computed from the rows its tables and charts draw, by the rules in ``verdicts``.

* one rate: which variant had the lowest p99, by how much, and only when the bands of the
  two compared are apart (``verdicts.separated``) in valid, unsaturated runs with enough
  samples; otherwise why no order is called;
* the sweep: each variant's sustainable rate under the p99 target and what happened at the
  next rate up;
* the spike: whether the variant completed what was offered during the burst and whether
  its per-second p99 rose and came back;
* memory: allocations per query, garbage collections and their longest pause, and what K
  replicas of one variant cost together.

Every sentence starts with a capital (never with a variant's name) and ends with a full
stop, so the page and the index read them as sentences.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..loadgen.units import pick_unit
from .trials import summarize_trials
from .verdicts import (
    kept_up,
    ms_text,
    num,
    rate_text,
    saturated,
    separated,
    too_few_samples,
)


def sig(x: float) -> str:
    """A figure as the pages' tables print it: three significant figures, thousands
    separated ("4,050", "55.5", "7.39"), so a sentence and its table agree."""
    if not math.isfinite(x):
        return "?"
    if x == 0:
        return "0"
    digits = 2 - math.floor(math.log10(abs(x)))
    return f"{round(x, digits):,.{max(0, digits)}f}"


# --- one rate -----------------------------------------------------------------------------


def one_rate_summary(frame: pd.DataFrame, results: Iterable[Any] | None = None
                     ) -> list[pd.Series]:
    """One row per variant of ``latency.sweep`` rows at one rate: with ``results`` (the
    sweep's ``LoadResult``s) every figure that of the trials pooled into one histogram
    (``rows.pool``), else the median trial; [lowest, highest trial] in ``<col>_lo/_hi``."""
    from .rows import pool

    cols = ("p50_ms", "p99_ms", "p999_ms")
    summary = summarize_trials(frame, ["variant", "offered_per_s"], list(cols),
                               lows=[c for c in ("p99_ci_low_ms",) if c in frame],
                               highs=[c for c in ("p99_ci_high_ms",) if c in frame])
    by: dict[tuple[str, float], list[Any]] = {}
    for res in results or ():
        by.setdefault((res.variant, float(res.offered_rate)), []).append(res)
    rows = []
    for _, s in summary.iterrows():
        trials = by.get((s["variant"], float(s["offered_per_s"])))
        if trials:
            row = pool(trials)
            for c in (*cols, "n", "p99_ci_low_ms", "p99_ci_high_ms", "p99_enough",
                      "saturated"):
                s[c] = row[c]        # the pooled histogram's own figures and interval
        rows.append(s)
    return rows


def _judgeable(s: pd.Series) -> str:
    """Why a row's p99 cannot be ranked ("" when it can)."""
    if saturated(s):
        return "saturated"
    if not bool(s.get("valid", False)):
        return "INVALID runs"
    if too_few_samples(s):
        return "too few samples above the p99"
    return ""


def one_rate_answer(rows: list[pd.Series]) -> str:
    """Which variant had the lowest p99 at the one rate, how many times lower than the
    next, and the highest; an order is called only between rows whose p99 bands are apart
    in valid runs (``verdicts.separated``).  Figures in the unit the rows' table takes."""
    if not rows:
        return "No variant was measured at one rate."
    rate = rate_text(num(rows[0]["offered_per_s"]))
    unit = pick_unit(*[[num(s.get(c)) for s in rows] for c in ("p50_ms", "p99_ms", "p999_ms")],
                     source="ms", log=True)       # the one-rate table's unit (one for all)

    def ms_text(ms: float) -> str:
        return unit.format(num(ms), "ms")
    fine = sorted((s for s in rows if not _judgeable(s)), key=lambda s: num(s["p99_ms"]))
    left = [f"{s['variant']} ({_judgeable(s)})" for s in rows if _judgeable(s)]
    out = ""
    if len(fine) >= 2:
        low, nxt, high = fine[0], fine[1], fine[-1]
        if separated(low, nxt):
            out = (f"At {rate} requests/s the lowest p99 was {low['variant']}'s "
                   f"({ms_text(low['p99_ms'])}), {num(nxt['p99_ms']) / num(low['p99_ms']):.1f}x "
                   f"lower than the next, {nxt['variant']} ({ms_text(nxt['p99_ms'])})")
        else:
            out = (f"At {rate} requests/s {low['variant']} ({ms_text(low['p99_ms'])}) and "
                   f"{nxt['variant']} ({ms_text(nxt['p99_ms'])}) had the lowest p99, within "
                   f"trial-to-trial noise of each other")
        if high is not nxt:
            out += f"; the highest was {high['variant']}'s ({ms_text(high['p99_ms'])})"
        out += "."
    elif fine:
        out = (f"At {rate} requests/s only {fine[0]['variant']}'s p99 can be judged: "
               f"{ms_text(fine[0]['p99_ms'])}.")
    else:
        out = f"At {rate} requests/s no variant's p99 can be ranked."
    if left:
        out += f" Not ranked: {', '.join(left)}."
    return out


# --- the sweep ----------------------------------------------------------------------------


def sweep_points(rows: pd.DataFrame) -> pd.DataFrame:
    """One point per variant and offered rate (the median of its trials, INVALID when any
    trial was, saturated when any trial was): what the latency-vs-rate chart draws."""
    points = summarize_trials(rows, ["variant", "offered_per_s"],
                              ["p50_ms", "p99_ms", "achieved_per_s"],
                              lows=[c for c in ("p99_ci_low_ms",) if c in rows],
                              highs=[c for c in ("p99_ci_high_ms",) if c in rows])
    if "saturated" in rows:
        points["saturated"] = [bool(g["saturated"].fillna(False).astype(bool).any())
                               for _, g in rows.groupby(["variant", "offered_per_s"],
                                                        sort=False)]
    return points


def _above(points: pd.DataFrame, variant: str, rate: float, target_ms: float) -> str:
    """What happened at the first swept rate above ``rate`` (NaN: the lowest), in words."""
    mine = points[points["variant"] == variant].sort_values("offered_per_s")
    up = mine[mine["offered_per_s"] > rate] if math.isfinite(rate) else mine
    if up.empty:
        return ""
    s = up.iloc[0]
    at = f"at {rate_text(num(s['offered_per_s']))}/s"
    if saturated(s):
        return f"{at} it saturated, completing {rate_text(num(s['achieved_per_s']))}/s"
    if not kept_up(s):
        return f"{at} it completed only {rate_text(num(s['achieved_per_s']))}/s"
    if not bool(s.get("valid", False)):
        return f"{at} its runs were INVALID"
    if num(s["p99_ms"]) > target_ms:
        return f"{at} its p99 was {ms_text(num(s['p99_ms']))}"
    return ""


def sweep_answer(sustainable: pd.DataFrame, points: pd.DataFrame, target_ms: float) -> str:
    """Each variant's sustainable rate under the p99 target (``latency.sustainable``'s
    table), highest first, with what happened at the next swept rate up."""
    if sustainable.empty:
        return "No rate was swept."
    parts = []
    order = sustainable.assign(key=sustainable["sustainable_per_s"].fillna(-1.0))
    for _, s in order.sort_values("key", ascending=False).iterrows():
        rate, note = num(s["sustainable_per_s"]), str(s.get("note") or "")
        if not math.isfinite(rate):
            why = _above(points, s["variant"], math.nan, target_ms)
            parts.append(f"{s['variant']} met it at no swept rate ({why or note})")
        elif note.startswith("met the target at the highest rate"):
            parts.append(f"{s['variant']} at least {rate_text(rate)} requests/s (the "
                         f"highest rate swept)")
        else:
            above = _above(points, s["variant"], rate, target_ms)
            parts.append(f"{s['variant']} {rate_text(rate)} requests/s"
                         + (f" ({above})" if above else ""))
    return f"With p99 at most {ms_text(target_ms)}, the sustainable rates were: " \
        + "; ".join(parts) + "."


# --- the spike ----------------------------------------------------------------------------


def spike_answer(timeline: pd.DataFrame, *, valid: bool = True, why: str = "") -> str:
    """What the spike did, from its per-second rows (``LoadResult.timeline``: second,
    offered, completed, p99_us): whether the burst's requests were completed, and whether
    the per-second p99 rose above its level before the burst and when it came back.
    ``valid``/``why``: the run's health, said first when it was INVALID."""
    if timeline.empty:
        return "No spike was measured."
    t = timeline.sort_values("second").reset_index(drop=True)
    name = str(t["variant"].iloc[0]) if "variant" in t else "the variant"
    base = float(t["offered"].iloc[0])
    burst = t.index[t["offered"] > 1.5 * base]
    if not len(burst):
        return f"The offered rate never rose above 1.5x its start ({base:,.0f}/s): no burst."
    first, last = int(burst[0]), int(burst[-1])
    during, before, after = t.loc[first:last], t.loc[:first - 1], t.loc[last + 1:]
    offered, done = int(during["offered"].sum()), int(during["completed"].sum())
    level = float(before["p99_us"].max()) if len(before) else math.nan
    peak = float(during["p99_us"].max())
    s0, s1 = int(t.loc[first, "second"]), int(t.loc[last, "second"])
    unit = pick_unit(t["p50_us"], t["p99_us"], t["max_us"], log=True)   # the chart's unit
    text = (f"During the burst (seconds {s0}-{s1}, up to {t['offered'].max():,.0f}/s), "
            f"{name} completed {done:,} of the {offered:,} requests offered")
    if not math.isfinite(level) or peak <= 1.5 * level:
        text += (f", and its per-second p99 never rose above 1.5x its level before the burst "
                 f"(at most {unit.format(peak)} during it, {unit.format(level)} before)."
                 if math.isfinite(level) else ".")
    else:
        calm = after[(after["p99_us"] <= 1.5 * level)
                     & (after["completed"] >= 0.97 * after["offered"])]
        back = (f"back within 1.5x of it {int(calm['second'].iloc[0]) - s1} s after the "
                f"burst" if len(calm) else "not back by the end of the run: a queue "
                "outlasted the burst")
        text += (f"; its per-second p99 rose to {unit.format(peak)} (at most "
                 f"{unit.format(level)} before) and was {back}.")
    if not valid:
        text = (f"The spike run was INVALID ({why or 'see its health'}): its figures "
                f"describe the load generator as much as {name}. ") + text
    return text


# --- memory -------------------------------------------------------------------------------


def memory_answer(memory: pd.DataFrame, gc: pd.DataFrame,
                  replicas: pd.DataFrame | None = None) -> str:
    """Allocations per query (fewest against most), garbage collections and the longest
    pause (fewest collections against most), and what the most replicas measured cost in
    PSS together and per replica."""
    said = []
    if len(memory) >= 2:
        m = memory.sort_values("allocs_per_op")
        lo, hi = m.iloc[0], m.iloc[-1]
        ratio = num(hi["allocs_per_op"]) / num(lo["allocs_per_op"]) \
            if num(lo["allocs_per_op"]) > 0 else math.inf
        said.append(f"Per query, {lo['variant']} made {sig(num(lo['allocs_per_op']))} "
                    f"allocations, {ratio:,.0f}x fewer than {hi['variant']} "
                    f"({sig(num(hi['allocs_per_op']))}).")
    if len(gc) >= 2:
        g = gc.sort_values("collections")
        lo, hi = g.iloc[0], g.iloc[-1]
        said.append(f"Over {int(num(hi['ops'])):,} queries the garbage collector ran "
                    f"{int(num(lo['collections'])):,} times for {lo['variant']} against "
                    f"{int(num(hi['collections'])):,} for {hi['variant']}, whose longest "
                    f"pause was {ms_text(num(hi['pause_max_ms']))}.")
    if replicas is not None and len(replicas):
        r = replicas.sort_values("k").iloc[-1]
        text = (f"Together {int(r['k'])} replicas of {r['variant']} took "
                f"{sig(num(r['pss_total_MiB']))} MiB of PSS, "
                f"{sig(num(r['pss_per_replica_MiB']))} MiB each")
        shared, each = num(r.get("index_pss_total_MiB")), num(r.get("index_rss_per_replica_MiB"))
        if shared > 0 and each > 0:
            text += (f"; the index file was {sig(shared)} MiB of that PSS in all while each "
                     f"replica's RSS counted {sig(each)} MiB of it: its pages are shared")
        said.append(text + ".")
    return " ".join(said) or "No memory was measured."


__all__ = ["memory_answer", "one_rate_answer", "one_rate_summary", "sig", "spike_answer",
           "sweep_answer", "sweep_points"]
