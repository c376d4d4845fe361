"""The latency pages' measurements into a run directory and back (notebooks 01, 05, 06).

A notebook measures into its part of a run (``lootlab.experiments.rundir.Part``) with a
``store_*`` function and draws only from what a ``load_*`` function reads back, in a
measuring run and in a replay alike, so both draw the same page.  Every artifact is of the
run directory's common kinds: LoadResults as HdrHistogram logs (one name per variant or per
condition, its trials in the order run), tables as Parquet, facts as JSON.

- 01-story: ``store_story`` / ``load_story`` (a ``StoryRun``: steps and trials rows, each
  variant's trials, the conditions they ran under).
- 05-rebuild: ``store_rebuild`` / ``load_rebuilds`` (``RebuildRun``s, one per source).
- 06-conditions: ``store_sweep`` / ``load_sweep`` (a what-if sweep's rows and results).
- All three: ``store_setup`` / ``load_setup``, the facts a sentence names before anything is
  measured (which server answered, whether this machine can limit CPU).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..loadgen.units import plural
from .rundir import Part, RunDirError

if TYPE_CHECKING:
    from ..loadgen.results import LoadResult
    from .rebuild_under_load import RebuildRun

SETUP = "setup"
STORY = "story"
STEPS_ROWS = "steps"
TRIALS_ROWS = "trials"
REBUILD_PREFIX = "rebuild from "


# --- facts a sentence names -------------------------------------------------------------------

def store_setup(part: Part, **facts: Any) -> None:
    """Keep what the notebook's set-up found out (the server's words, the conditions asked,
    why CPU cannot be limited here...): measured facts, so a replay says what the measuring
    run saw rather than what the replaying machine would."""
    part.put_data(SETUP, facts)


def load_setup(part: Part) -> dict[str, Any]:
    """The facts ``store_setup`` kept."""
    return dict(part.data(SETUP))


# --- 01-story -----------------------------------------------------------------------------

@dataclass
class StoredStory:
    """The story's steps as stored: what the 01 page draws.

    ``steps``: one row per step (trials pooled); ``trials``: one row per trial and step, in
    the order run; ``results``: variant -> its trials' ``LoadResult``s (spectra, health,
    the instrument line); ``conditions``: what the steps ran under, in
    ``LoadResult.conditions``' shape, with whether the CPU limit was applied."""

    rate: float
    duration: float
    steps: pd.DataFrame
    trials: pd.DataFrame
    results: dict[str, list[LoadResult]] = field(default_factory=dict, repr=False)
    conditions: dict[str, Any] = field(default_factory=dict)


def store_story(part: Part, run: Any) -> None:
    """A ``story.StoryRun`` into ``part``: each variant's trials under the variant's name,
    the steps and trials rows, and the run's rate, duration and conditions."""
    for variant, trials in run.results.items():
        part.put_results(variant, list(trials))
    part.put_rows(STEPS_ROWS, run.steps)
    part.put_rows(TRIALS_ROWS, run.trials)
    part.put_data(STORY, {"rate": float(run.rate), "duration": float(run.duration),
                          "variants": list(run.results), "conditions": dict(run.conditions)})


def load_story(part: Part) -> StoredStory:
    """What ``store_story`` kept, variants in the order they were run."""
    doc = part.data(STORY)
    return StoredStory(rate=float(doc["rate"]), duration=float(doc["duration"]),
                       steps=part.rows(STEPS_ROWS), trials=part.rows(TRIALS_ROWS),
                       results={v: part.results(v) for v in doc["variants"]},
                       conditions=dict(doc["conditions"]))


# --- 05-rebuild ---------------------------------------------------------------------------

def store_rebuild(part: Part, run: RebuildRun) -> None:
    """A ``RebuildRun`` into ``part`` under "rebuild from <source>": the readers'
    ``LoadResult`` (its per-second histograms draw the timeline), the generations seen and
    the swaps as rows, and the run's settings and the worker's final status as data."""
    name = REBUILD_PREFIX + run.source
    part.put_results(name, run.load)
    part.put_rows(f"{name}: seen", run.seen)
    part.put_rows(f"{name}: swaps", run.swaps)
    part.put_data(name, {"source": run.source, "rate": float(run.rate),
                         "duration": float(run.duration), "records": int(run.records),
                         "worker": dict(run.worker)})


def load_rebuilds(part: Part) -> list[RebuildRun]:
    """Every ``RebuildRun`` ``store_rebuild`` kept, in the order stored (a one-line
    ``RunDirError`` when there is none: a page of no runs would say nothing true)."""
    from .rebuild_under_load import RebuildRun

    runs = []
    for name in part.names("data"):
        if not name.startswith(REBUILD_PREFIX):
            continue
        doc = part.data(name)
        (load,) = part.results(name)
        runs.append(RebuildRun(source=str(doc["source"]), rate=float(doc["rate"]),
                               duration=float(doc["duration"]), records=int(doc["records"]),
                               load=load, seen=part.rows(f"{name}: seen"),
                               swaps=part.rows(f"{name}: swaps"), worker=dict(doc["worker"])))
    if not runs:
        raise RunDirError(f"{part.path}: no rebuild run stored (was it measured?)")
    return runs


# --- 06-conditions ------------------------------------------------------------------------

@dataclass
class StoredSweep:
    """A what-if sweep as stored: its rows (one per variant and condition, trials pooled)
    and every ``LoadResult`` behind them (grouped by variant and condition, each group's
    trials in the order run)."""

    rows: pd.DataFrame
    results: list[LoadResult] = field(default_factory=list, repr=False)


def condition_words(result: Any) -> str:
    """"RTT 5 ms, CPU limit 0.5 cores" / "loopback, no CPU limit": the conditions a
    ``LoadResult`` ran under, as its run-directory name says them."""
    cond = getattr(result, "conditions", None) or {}
    rtt = _number(cond.get("rtt_ms"))
    cpu = _number(cond.get("cpu_limit"))
    net = f"RTT {rtt:g} ms" if rtt > 0 else "loopback"
    limit = f"CPU limit {plural(cpu, 'core')}" if math.isfinite(cpu) else "no CPU limit"
    return f"{net}, {limit}"


def _number(value: Any) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def by_condition(sweep: str, results: Iterable[Any]) -> dict[str, list[Any]]:
    """``results`` named "<sweep>: <variant>, <conditions>", the repeats of a name being its
    trials (in the order run): one name per cell of the sweep, as ``lootlab compare``
    pairs them across runs."""
    named: dict[str, list[Any]] = {}
    for res in results:
        named.setdefault(f"{sweep}: {res.variant}, {condition_words(res)}", []).append(res)
    return named


def store_sweep(part: Part, sweep: str, rows: pd.DataFrame, results: Iterable[Any]) -> None:
    """A what-if sweep into ``part``: its rows under ``sweep`` ("rtt sweep") and its
    ``LoadResult``s one name per variant and condition (``by_condition``)."""
    part.put_rows(sweep, rows)
    for name, trials in by_condition(sweep, results).items():
        part.put_results(name, trials)


def load_sweep(part: Part, sweep: str) -> StoredSweep:
    """What ``store_sweep`` kept for ``sweep`` (a one-line ``RunDirError`` when the run
    holds no such sweep)."""
    rows = part.rows(sweep)
    prefix = f"{sweep}: "
    results = [res for name in part.names("results") if name.startswith(prefix)
               for res in part.results(name)]
    return StoredSweep(rows=rows, results=results)


def sweep_results(*sweeps: StoredSweep | None) -> list[Any]:
    """The ``LoadResult``s of the sweeps given, in that order (None: a sweep not measured,
    such as the CPU sweep on a machine that cannot limit CPU)."""
    return [res for sweep in sweeps if sweep is not None for res in sweep.results]


__all__ = ["StoredStory", "StoredSweep", "by_condition", "condition_words", "load_rebuilds",
           "load_setup", "load_story", "load_sweep", "store_rebuild",
           "store_setup", "store_story", "store_sweep", "sweep_results"]
