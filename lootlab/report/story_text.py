"""The story's words and report rows: what the measured experiments of ``lootlab.experiments.story``
show, said in plain prose and laid out as rows for ``publish_summary``.

Pure functions of the data the experiments return (the steps DataFrame of
``story.run_steps``, a sweep's rows at one rate): nothing here measures, and nothing in
``lootlab.experiments.story`` writes prose.  The rebuild runs' words are
``lootlab.report.rebuild``'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..experiments.verdicts import (
    FEW_SAMPLES,
    INVALID_STEP,
    SATURATED_STEP,
    WITHIN_SPREAD,
    band,
    kept_up,
    num,
    saturated,
    saturated_at,
    saturated_text,
    separated,
    too_few_samples,
    unnamed_change,
)
from .format import number, round_sig, time_unit
from .instrument import tail_note


def _fmt_ms(ms: float) -> str:
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def spread_cell(median: float, lo: float, hi: float, trials: int, *, n: float | None = None,
                p: float | None = None) -> Any:
    """A table cell: "value [min–max]" over several trials (the value pooled or the median
    trial, the range the lowest and highest trial), the bare number (three significant
    figures) for one, and "too few samples (n=...)" when ``n`` samples leave fewer than 10
    above percentile ``p``."""
    if n is not None and p is not None and too_few_samples({"n": n}, p):
        return f"too few samples (n={int(n):,})"
    if trials <= 1:
        return round_sig(median)
    return f"{number(median)} [{number(lo)}–{number(hi)}]"


def _trials(s: pd.Series) -> int:
    return int(s.get("trials", 1))


def _not_valid(s: pd.Series) -> str:
    """"name (k of R trials INVALID: what to do)" for a step with an invalid run."""
    if saturated(s):
        return f"{_queue(s)[:-1]}: lower the rate)"
    k, r = int(s.get("invalid_trials", 1)), _trials(s)
    what = "lower the rate" if not kept_up(s) else "rerun on a quieter machine"
    return f"{s['variant']} ({k} of {r} trial{'s' if r > 1 else ''} INVALID: {what})"


def bounded(s: Any) -> bool:
    """True for a step INVALID only because the load generator's own lag may make up most
    of its percentiles (every trial either valid or so): its figures are upper bounds."""
    return not s["valid"] and bool(s.get("upper_bound", False))


def _queue(s: Any) -> str:
    """"mmap (saturated at 83/s: offered 100/s)": a saturated step, named without a p99."""
    return f"{s['variant']} ({saturated_text(s)})"


def _headline(first: pd.Series, last: pd.Series, rate: float) -> str:
    queues = [s for s in (first, last) if saturated(s)]
    if queues:
        were, its = ("was", "its") if len(queues) == 1 else ("were", "their")
        return (f"No ratio between {first['variant']} and {last['variant']} is named: "
                f"{' and '.join(_queue(s) for s in queues)} {were} saturated, so {its} "
                f"latency is a queue's, not the variant's; lower the rate to measure it.")
    bad = [s for s in (first, last) if not s["valid"]]
    # a faster last step whose figure is only an upper bound still bounds the ratio
    as_bound = (len(bad) == 1 and bad[0] is last and bounded(last)   # (``is``: rows, not
                and last["p99_ms"] < first["p99_ms"])                   # values, compared)
    if bad and not as_bound:
        return (f"No ratio between {first['variant']} and {last['variant']} is named: the runs "
                f"behind it were not valid for {', '.join(_not_valid(s) for s in bad)}.")
    few = [s for s in (first, last) if too_few_samples(s)]
    if few:
        names = ", ".join(f"{s['variant']} (n={int(s['n']):,})" for s in few)
        return (f"No ratio between {first['variant']} and {last['variant']} is named: the p99 of "
                f"{names} rests on fewer than 10 samples; run the standard or full profile.")
    if not separated(first, last):
        return (f"At {rate:,.0f} requests/s, {last['variant']} ({_fmt_ms(last['p99_ms'])}) and "
                f"{first['variant']} ({_fmt_ms(first['p99_ms'])}) differ by less than the spread "
                f"between trials: no difference at p99 is called.")
    if as_bound:
        ratio = first["p99_ms"] / last["p99_ms"] if last["p99_ms"] > 0 else math.inf
        least = band(first)[0] / band(last)[1] if band(last)[1] > 0 else math.inf
        return (f"At {rate:,.0f} requests/s, p99 went from {_fmt_ms(first['p99_ms'])} "
                f"({first['variant']}) to at most {_fmt_ms(last['p99_ms'])} ({last['variant']}), "
                f"about {ratio:.0f}x lower{_pooled_note(first, last)} and at least "
                f"{least:.0f}x across the trials: {last['variant']}'s p99 is an upper bound, "
                f"since the load generator's own lag may make up most of it (its runs are "
                f"marked INVALID for that), so the real gap is, if anything, larger.")
    if last["p99_ms"] < first["p99_ms"]:
        ratio = first["p99_ms"] / last["p99_ms"] if last["p99_ms"] > 0 else math.inf
        of = _pooled_note(first, last)
        return (f"At {rate:,.0f} requests/s, p99 went from {_fmt_ms(first['p99_ms'])} "
                f"({first['variant']}) to {_fmt_ms(last['p99_ms'])} ({last['variant']}), "
                f"{ratio:.1f}x lower{of}.")
    return (f"At {rate:,.0f} requests/s, {last['variant']} did not beat {first['variant']} at p99 "
            f"({_fmt_ms(last['p99_ms'])} vs {_fmt_ms(first['p99_ms'])}).")


def _pooled_note(*steps: pd.Series) -> str:
    """" (3 trials pooled, n >= 3,600 each)" or " (median of 3 trials)" for a headline."""
    r = min(_trials(s) for s in steps)
    if r <= 1:
        return ""
    if all(bool(s.get("pooled", False)) for s in steps):
        n = min(int(num(s.get("n"))) for s in steps)
        return f" ({r} trials pooled, at least {n:,} samples per step)"
    return f" (median of {r} trials)"


_SIDES = {"server": "the server was saturated", "generator": "the load generator was saturated",
          "machine": "the machine was busy",
          "cpu-limit": "the CPU limit throttled the client side"}


def _behind(s: pd.Series) -> str:
    """Why a step completed fewer requests than offered, blaming the side its health named."""
    sides = [b for b in str(s.get("bottleneck", "none")).split("; ") if b in _SIDES]
    why = ("; ".join(_SIDES[b] for b in sides) if sides
           else "it is saturated at this load")
    return (f"At {s['offered_per_s']:,.0f} requests/s, {s['variant']} could not keep up here "
            f"(it completed {s['achieved_per_s']:,.0f}/s: {why}), so its latency is mostly "
            f"time spent queued; lower the rate to measure it.")


#: What a change not named is, in the words after "is not named:" (``unnamed_change``).
_WHY_UNNAMED = {SATURATED_STEP: "a saturated step's p99 is a queue's",
                INVALID_STEP: "it comes from an INVALID run",
                FEW_SAMPLES: "too few samples above a p99",
                WITHIN_SPREAD: "it is within trial-to-trial noise"}


def _gain(steps: pd.DataFrame) -> str:
    """The sentence on the largest p99 drop between neighbouring steps that stands clear of
    trial-to-trial noise (``verdicts.unnamed_change`` is ""), and, when the chart draws a
    larger drop that is not named, which one and why: the chart draws it hollow."""
    pairs = [(steps.iloc[i - 1], steps.iloc[i]) for i in range(1, len(steps))]
    drops = [(a["p99_ms"] - b["p99_ms"], a, b) for a, b in pairs    # as the chart draws them
             if not (saturated(a) or saturated(b)) and b["p99_ms"] < a["p99_ms"]]
    named = [d for d in drops if not unnamed_change(d[1], d[2])]
    if not named:
        return ("No gain stands clear of trial-to-trial noise: no step's p99 drop is between "
                "valid runs with enough samples and larger than the spread between trials "
                "(the chart draws those drops hollow, with why)." if drops else "")
    gain, _, best = max(named, key=lambda d: d[0])
    text = (f"The largest gain that stands clear of trial-to-trial noise was "
            f"{best['variant']} ({best['change']}): p99 {_fmt_ms(gain)} lower than the step "
            f"before")
    bigger = max((d for d in drops if d[0] > gain), key=lambda d: d[0], default=None)
    if bigger is not None:
        text += (f" (the larger drop drawn at {bigger[2]['variant']}, {_fmt_ms(bigger[0])}, "
                 f"is not named: {_WHY_UNNAMED[unnamed_change(bigger[1], bigger[2])]})")
    return text + "."


def _median_cost(by: pd.DataFrame) -> str:
    """What the best remote client pays at the median over the mapped file, when both are
    valid, unsaturated and their p50 bands apart."""
    if not ("mmap" in by.index and "grpc-tls-packed" in by.index):
        return ""
    remote, local = by.loc["grpc-tls-packed"], by.loc["mmap"]
    ok = (remote["valid"] and local["valid"] and not (saturated(remote) or saturated(local))
          and local["p50_ms"] < remote["p50_ms"] and separated(remote, local, "p50_ms"))
    return (f"Even the best remote client pays {_fmt_ms(remote['p50_ms'] - local['p50_ms'])} "
            f"more at the median than reading the mapped file.") if ok else ""


def _tails(steps: pd.DataFrame) -> str:
    """One short sentence for every step whose p99 is a tail the kernel may explain
    (``instrument.tail_note``'s rule): each such step with what the kernel saw during its
    runs, each kind of event once (its head: "CPU starvation", "9 segments retransmitted")."""
    said = []
    for _, s in steps.iterrows():
        if not tail_note(s, saturated(s)):
            continue
        heads = dict.fromkeys(c.split(":")[0].split(" (")[0].strip()
                              for c in str(s["tail_causes"]).split("; ") if c.strip())
        said.append(f"{s['variant']} (p99 {_fmt_ms(s['p99_ms'])} against a p50 of "
                    f"{_fmt_ms(s['p50_ms'])}): {', '.join(heads)}")
    return ("Tails beside what the kernel saw during the runs: " + "; ".join(said) + "."
            ) if said else ""


def story_verdict(steps: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(answer, details): the 1-3 sentences that answer the story (the ratio from the first
    step to the last, the largest gain clear of trial-to-trial noise, the median the best
    remote client still pays) and the rest, one sentence or short paragraph each.

    A ratio or a gain is named only between steps whose runs were all valid and whose
    bands (min..max of trials, widened by each trial's 95 % interval) do not overlap
    (``verdicts.unnamed_change``, the rule the step chart draws by); otherwise the words say
    which runs were not valid and what to do.  A saturated step is named with the rate it
    saturated at, never with its p99."""
    if steps.empty:
        return ["No step was measured."], []
    steps = steps.reset_index(drop=True)
    first, last = steps.iloc[0], steps.iloc[-1]
    answer = [t for t in (_headline(first, last, first["offered_per_s"]), _gain(steps),
                          _median_cost(steps.set_index("variant"))) if t]
    details = []
    pairs = [(steps.iloc[i - 1], steps.iloc[i]) for i in range(1, len(steps))]
    worse = [b["variant"] for a, b in pairs
             if not unnamed_change(a, b) and b["p99_ms"] > a["p99_ms"]]
    if worse:
        details.append(f"The p99 got worse at: {', '.join(worse)}.")
    queued = steps.apply(saturated, axis=1).astype(bool)
    inner = [s for _, s in steps.iloc[1:-1][queued.iloc[1:-1]].iterrows()]  # the ends: above
    if inner:
        details.append(f"Saturated: {', '.join(_queue(s) for s in inner)}. The offered rate "
                       f"was above what {'that step' if len(inner) == 1 else 'those steps'} "
                       f"sustained, so the latency measured is a queue's, not the "
                       f"variant's, and no figure or gain is drawn from it; lower the rate "
                       f"to measure it.")
    behind = steps[~steps.apply(kept_up, axis=1).astype(bool) & ~queued]
    details.extend(_behind(s) for _, s in behind.iterrows())
    invalid = steps[~steps["valid"].astype(bool) & ~queued]
    lagged = [s for _, s in invalid.iterrows() if bounded(s)]
    late = [s for _, s in invalid.iterrows() if not bounded(s)]
    if late:
        details.append(f"The load generator could not keep the schedule for "
                       f"{', '.join(_not_valid(s) for s in late)}: those numbers describe "
                       f"the generator's limit as much as the variant.")
    if lagged:
        details.append(f"For {', '.join(_not_valid(s) for s in lagged)} the load generator "
                       f"sent at the offered rate, but its own lateness may make up most of "
                       f"the p99, so those figures are upper bounds of the variant's.")
    errors = int(steps["errors"].sum())
    if errors:
        details.append(f"In all, {errors:,} requests failed.")
    if int(steps.get("trials", pd.Series([1])).max()) <= 1:
        details.append("Each step ran once: a single trial has no spread between trials, so "
                       "run more trials before trusting a small difference.")
    details.extend(t for t in (_tails(steps), largest_parts(steps), _writeup_note(steps)) if t)
    return answer, details


def verdict(steps: pd.DataFrame) -> str:
    """The story's verdict as one text: its answer (``story_verdict``) as the first
    paragraph, then each detail on a line of its own, so the index page can lead with the
    answer and list the rest (``front_page.lead``)."""
    answer, details = story_verdict(steps)
    return " ".join(answer) + ("\n\n" + "\n".join(details) if details else "")


def _writeup_note(steps: pd.DataFrame) -> str:
    """The closing reference to the write-up, saying what network the steps crossed here."""
    rtt = num(steps["rtt_ms"].max()) if "rtt_ms" in steps else math.nan
    if math.isnan(rtt) or rtt <= 0:
        return ("The write-up reported 95 -> 78 -> 34 ms p99 on production hardware with a "
                "real network; a loopback server here has no network latency, so compare "
                "the ratios, not the milliseconds.")
    return (f"The write-up reported 95 -> 78 -> 34 ms p99 on production hardware with a "
            f"real network; here a delaying proxy added {rtt:g} ms per round trip to the "
            f"remote steps (mmap crosses none), so compare the ratios, not the milliseconds.")


def largest_parts(steps: pd.DataFrame) -> str:
    """"Largest part of each step's mean latency: ..." from the steps' split columns, or ""
    when no step has them."""
    from ..experiments.story import part_label
    from ..loadgen.split import split_means

    frame = split_means(steps)
    said = []
    for step, row in frame.iterrows():
        total = float(row.sum())
        if total > 0:
            part = str(row.idxmax())
            said.append(f"{step}: {part_label(part, str(step))} ({row[part] / total:.0%} of "
                        f"{_fmt_ms(total)})")
    return ("Largest part of each step's mean latency: " + "; ".join(said) + ".") if said else ""


def run_cell(s: Any) -> str:
    """"valid", or "INVALID (k of R trials)" for a row with invalid trials ("INVALID
    (saturated)" for a saturated one); a valid row whose instrument error (the generator's
    own send error p99; the lag bound in runs from before it) is over a tenth of its p99
    says so, and a saturated side is named ("valid; server saturated")."""
    if saturated(s):
        return "INVALID (saturated)"
    if not s["valid"]:
        r = int(s.get("trials", 1))
        return ("INVALID (see health)" if r <= 1
                else f"INVALID ({int(s['invalid_trials'])} of {r})")
    words = {"machine": "machine busy", "cpu-limit": "throttled by its CPU limit"}
    notes = [words.get(b, f"{b} saturated")
             for b in str(s.get("bottleneck", "none")).split("; ") if b in _SIDES]
    error, lag, p99 = (num(s.get(c)) for c in ("generator_error_p99_ms",
                                                   "p99_lag_bound_ms", "p99_ms"))
    if error > 0.1 * p99:
        notes.append(f"instrument error {_fmt_ms(error)}")
    elif math.isnan(error) and lag > 0.1 * p99:     # a run from before the correction
        notes.append(f"generator lag up to {_fmt_ms(lag)}")
    return "; ".join(["valid", *notes])


def summary_rows(steps: pd.DataFrame) -> list[dict[str, Any]]:
    """The step chart's numbers as rows for ``lootlab.report.publish_summary``: the pooled
    (or median) figure [lowest–highest trial] in the unit that fits the column, the samples
    behind it, valid or how many INVALID, and a saturated side or a coarse instrument where
    there was one.  A saturated step shows "saturated at N/s" instead of its percentiles
    (a queue's, not the variant's), and its queue does not choose the unit."""
    kept = steps[~steps.apply(saturated, axis=1).astype(bool)] if len(steps) else steps
    one = time_unit([kept[c] for c in ("p50_ms", "p99_ms") if c in kept], "ms")
    units = {col: one for col in ("p50_ms", "p99_ms")}     # one unit for the whole table
    rows = []
    for _, s in steps.iterrows():
        r = _trials(s)
        n = num(s.get("n"))
        cells = {}
        for name, col, p in (("p50", "p50_ms", 50.0), ("p99", "p99_ms", 99.0)):
            unit, k = units[col]
            cells[f"{name} ({unit})"] = saturated_at(s) if saturated(s) \
                else spread_cell(s[col] * k, num(s.get(f"{col}_lo", s[col])) * k,
                                 num(s.get(f"{col}_hi", s[col])) * k, r,
                                 n=None if math.isnan(n) else n, p=p)
        rows.append({"step": s["variant"], **cells, "trials": r,
                     "samples": int(s["n"]) if not math.isnan(n) else int(s["requests"]),
                     "achieved (req/s)": round_sig(s["achieved_per_s"]),
                     "write-up p99 (ms)": round_sig(s["writeup_p99_ms"]) if math.isfinite(
                         num(s["writeup_p99_ms"])) else "n/a: the write-up gave none",
                     "server CPU (cores)": round(cores, 2) if math.isfinite(
                         cores := num(s.get("server_cores"))) else "n/a: no server"
                     if s["variant"] == "mmap" else "n/a: not measured",
                     "run": run_cell(s)})
    return rows


def one_rate_rows(frame: pd.DataFrame, results: Iterable[Any] | None = None
                  ) -> list[dict[str, Any]]:
    """Rows of ``experiments.latency.sweep`` at one rate (any number of trials) as report
    rows per variant, in the time unit that fits each column: with ``results`` (the sweep's
    ``LoadResult``s) each figure is that of the trials pooled into one histogram
    (``page_verdicts.one_rate_summary``, which the page's answer reads too), else the
    median trial; [lowest-highest trial] beside it, and "too few samples" where the tail is
    too thin."""
    from ..experiments.page_verdicts import one_rate_summary

    cols = ("p50_ms", "p99_ms", "p999_ms")
    pools = one_rate_summary(frame, results)
    one = time_unit([[s[c] for s in pools] for c in cols], "ms")   # one unit for the table
    units = {c: one for c in cols}
    return [{"variant": s["variant"], "rate (req/s)": round_sig(s["offered_per_s"]),
             "trials": int(s["trials"]), "samples": int(s["n"]),
             **dict(_ms_cell(s, col, p, name, units[col]) for col, p, name in
                    (("p50_ms", 50, "p50"), ("p99_ms", 99, "p99"), ("p999_ms", 99.9, "p99.9"))),
             "run": run_cell(s)} for s in pools]


def _ms_cell(s: pd.Series, col: str, p: float, name: str,
             unit: tuple[str, float]) -> tuple[str, Any]:
    """("p99 (ms)", "2 [1–3]"): one percentile of a one-rate row, named with its unit."""
    k = unit[1]
    return f"{name} ({unit[0]})", spread_cell(s[col] * k, s[f"{col}_lo"] * k,
                                              s[f"{col}_hi"] * k, int(s["trials"]),
                                              n=s["n"], p=p)


def one_rate_verdict(frame: pd.DataFrame) -> str:
    """What the one-rate runs can say: which variants had INVALID runs and what to do, or
    that all were valid (and whether there was a spread to judge by)."""
    from ..experiments.trials import summarize_trials

    summary = summarize_trials(frame, ["variant", "offered_per_s"], ["p99_ms"])
    if summary.empty:
        return "No variant was measured."
    bad = summary[~summary["valid"].astype(bool)]
    r = int(summary["trials"].min())
    if len(bad):
        names = ", ".join(f"{v} ({k} of {t})" for v, k, t in
                          zip(bad["variant"], bad["invalid_trials"], bad["trials"]))
        return (f"Of {len(summary)} variants, {len(bad)} had INVALID runs: {names}. Their "
                f"percentiles describe the load generator as much as the variant: rerun on a "
                f"quieter machine or lower the rate before comparing them.")
    if r <= 1:
        return ("All runs valid; one trial per variant, so there is no spread between trials "
                "to judge a difference by.")
    return f"All runs valid; {r} trials per variant, [lowest-highest trial] beside each figure."
