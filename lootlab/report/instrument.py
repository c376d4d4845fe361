"""How fine the instrument was: one line per page that shows latency.

The load generator subtracts its own provable lateness from every latency, so what is left
of its error is its resolution: a latency difference smaller than the generator's own send
error p99 is not resolved by the run.  Every page states it once (``resolution_line``),
read from whatever that page draws: ``LoadResult``s, rows of the experiments (story steps,
what-if rows, sweep summaries), or a mapping of names to either.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .cells import as_float, number

#: Where a row keeps the generator's own send error p99, and the factor into us.
ERROR_COLUMNS = {"generator_error_p99_us": 1.0, "generator_lag_p99_us": 1.0,
                 "generator_error_p99_ms": 1e3}


def _is_result(item: Any) -> bool:
    return hasattr(item, "percentile_us") and hasattr(item, "health")


def _row_error_us(row: Mapping[str, Any]) -> float:
    for col, k in ERROR_COLUMNS.items():
        value = as_float(row.get(col))
        if math.isfinite(value):
            return value * k
    return math.nan


def _flatten(items: Any) -> Iterable[tuple[float, str]]:
    """(error us, scheduling text) of every run or row inside ``items``, saturated ones
    left out: their figures are a queue's and not shown, and in a backlog the error adds
    up every pause between calls (measured: 0.15 ms quiet, 100 ms beside CPU hogs for a
    16-sender channel-per-call run), which says nothing of the instrument's resolution."""
    from ..experiments.rows import generator_error_us, saturation, scheduling

    if items is None:
        return
    if isinstance(items, pd.DataFrame):
        for _, row in items.iterrows():
            yield from _flatten(row)
    elif _is_result(items):
        if not saturation(items)[0]:
            yield generator_error_us(items), scheduling(items)
    elif isinstance(items, pd.Series) or (isinstance(items, Mapping) and any(
            c in items for c in ERROR_COLUMNS)):
        if not bool(items.get("saturated", False)):
            yield _row_error_us(items), str(items.get("scheduling") or "")
    elif isinstance(items, Mapping):
        for value in items.values():
            yield from _flatten(value)
    elif isinstance(items, Iterable) and not isinstance(items, (str, bytes)):
        for item in items:
            yield from _flatten(item)
    elif hasattr(items, "results"):          # a StoryRun, a RebuildRun's load...
        yield from _flatten(items.results)


def us_text(us: float) -> str:
    """Microseconds for people, to two significant figures (a resolution is known no
    better): "23 µs" below a millisecond, "1.4 ms" from one up."""
    return f"{number(us / 1e3, 2)} ms" if us >= 1_000 else f"{number(us, 2)} µs"


def policy(scheduling: str) -> str:
    """The policy part of a scheduling text ("SCHED_FIFO 1, sleeping (wake-ups 28 us late at
    p95)" -> "SCHED_FIFO 1, sleeping"): what a reader compares between runs."""
    return scheduling.split(" (")[0].strip()


def resolution(items: Any) -> tuple[float, dict[str, int], int]:
    """(the largest generator send error p99 in us, NaN when none is known; how many runs
    had each scheduling policy, in first-seen order; how many runs said their error) over
    ``items``."""
    errors, policies = [], {}
    for error, sched in _flatten(items):
        if math.isfinite(error):
            errors.append(error)
        if policy(sched):
            policies[policy(sched)] = policies.get(policy(sched), 0) + 1
    return (max(errors) if errors else math.nan), policies, len(errors)


def scheduling_words(policies: dict[str, int]) -> str:
    """"Senders scheduled SCHED_FIFO 1, sleeping." or, when runs differed, how many ran
    each way ("... sleeping in 11 runs; nice -20, spinning in 3"); "" when none said."""
    if not policies:
        return ""
    if len(policies) == 1:
        return f" Senders scheduled {next(iter(policies))}."
    counts = [f"{name} in {k:,}{' runs' if i == 0 else ''}"
              for i, (name, k) in enumerate(policies.items())]
    return f" Senders scheduled {'; '.join(counts)}."


def resolution_line(items: Any) -> str:
    """"Instrument: the load generator's own send error p99 was 23 µs in these runs (the
    worst of 5): latency differences smaller than that are not resolved. Senders scheduled
    SCHED_FIFO 1, sleeping." for the runs or rows a page draws: the largest error, since a
    page is only as fine as its coarsest run."""
    error, policies, runs = resolution(items)
    how = scheduling_words(policies)
    if not runs:
        return ("Instrument: the load generator's own send error was not recorded in these "
                "runs." + how)
    where = f"in these runs (the worst of {runs:,})" if runs > 1 else "in this run"
    return (f"Instrument: the load generator's own send error p99 was {us_text(error)} "
            f"{where}: latency differences smaller than that are not resolved.{how}")


def ms_text(ms: float) -> str:
    """Milliseconds for people, as ``us_text``."""
    return us_text(ms * 1e3)


#: a p99 this many times the p50 is a tail worth a cause
TAIL_RATIO = 3.0


def tail_note(s: Mapping[str, Any], saturated: bool = False) -> str:
    """Where a step's p99 is a tail (``TAIL_RATIO`` x its p50) and the kernel saw something
    during its runs that explains one (TCP timers, CPU starvation: ``loadgen.tails``), the
    sentence that names it beside the figure."""
    causes = str(s.get("tail_causes") or "")
    p50, p99 = as_float(s.get("p50_ms")), as_float(s.get("p99_ms"))
    if not causes or saturated or not p99 > TAIL_RATIO * p50:
        return ""
    return (f"{s['variant']}'s tail (p99 {ms_text(p99)} against a p50 of {ms_text(p50)}) came "
            f"with what the kernel saw during its runs: {causes}.")


__all__ = ["ERROR_COLUMNS", "TAIL_RATIO", "ms_text", "policy", "resolution", "resolution_line",
           "scheduling_words", "tail_note", "us_text"]
