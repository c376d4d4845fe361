"""Notebooks 03 (flamegraphs) and 04 (memory): their measurements into a run directory, and
back out of it.

A profiler's objects (``FlameProfile``, ``CopyShare``, ``Counters``, ``MemoryProfile``,
``GcStats``) die with the kernel that measured them.  ``store_*`` turns each into artifacts of
the run directory's kinds (collapsed stacks + speedscope for profiles, Parquet for tables, JSON
for facts); ``load_*`` builds the same objects back, so a page draws from the stored run
whether it has just measured it or replays it (``lootlab report --from RUN``).

The names are stable, so two runs can be compared (``lootlab compare RUN_A RUN_B``):

- stacks ``"py-spy: <variant>"``, ``"perf: <variant>"`` and, for the memcpy question,
  ``"perf <build> build: <variant>"``; each with its options and the workload's summary as meta
- results ``"timed: <variant>"``; data ``"timed calls"`` (which server answered, what was left out)
- data ``"perf"`` (why perf could not run here, or null), ``"copy share"``
- rows ``"counters"`` (raw counts per variant; per-op figures are derived)
- rows ``"memory"`` (one ``MemoryProfile.summary()`` row per variant: ``allocs_per_op``,
  ``bytes_per_op``, ``peak_heap_MiB``, ``RssAnon_MiB``, ``ops``...), data ``"memory: measured"``
  (every /proc and memray figure), rows ``"replicas"``, ``"gc runs"`` and ``"gc events"``
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..profiling import (
    CopyShare,
    Counters,
    FlameProfile,
    GcEvent,
    GcStats,
    MemoryProfile,
    PerfProfile,
)
from .rundir import Part

PYSPY = "py-spy: "
PERF = "perf: "
TIMED = "timed: "
PERF_FACTS = "perf"
TIMED_FACTS = "timed calls"
COPY_SHARE = "copy share"
COUNTERS = "counters"
COUNTER_SUMMARIES = "counters: workload summaries"
MEMORY = "memory"
MEMORY_MEASURED = "memory: measured"
REPLICAS = "replicas"
GC_RUNS = "gc runs"
GC_EVENTS = "gc events"
GC_EVENT_COLUMNS = ["variant", *(f.name for f in dataclasses.fields(GcEvent))]
_COUNTER_FIELDS = ("variant", "ops", "seconds", "source")


# -- profiles as stacks ------------------------------------------------------------------------

def _put_profile(part: Part, name: str, profile: FlameProfile) -> None:
    part.put_stacks(name, profile.stacks, meta={"variant": profile.variant,
                                                "options": profile.options,
                                                "summary": profile.summary})


def _profile(part: Part, name: str, cls: type[FlameProfile] = FlameProfile) -> FlameProfile:
    stacks, meta = part.stacks(name)
    return cls(meta["variant"], stacks, dict(meta.get("options") or {}),
               dict(meta.get("summary") or {}))


def _by_prefix(part: Part, kind: str, prefix: str) -> list[str]:
    """The variants stored under ``prefix``, in the order they were measured."""
    return [n.removeprefix(prefix) for n in part.names(kind) if n.startswith(prefix)]


def store_flames(part: Part, profiles: Mapping[str, FlameProfile]) -> None:
    """Each variant's py-spy samples as ``"py-spy: <variant>"`` (collapsed stacks and
    speedscope, which inferno and speedscope.app open), py-spy's options and the workload's
    summary as meta.  The SVG, frame table and shares are derived from the stacks on drawing."""
    for variant, profile in profiles.items():
        _put_profile(part, PYSPY + variant, profile)


def load_flames(part: Part) -> dict[str, FlameProfile]:
    """The py-spy profiles of ``store_flames``, by variant, in the order measured."""
    return {v: _profile(part, PYSPY + v) for v in _by_prefix(part, "stacks", PYSPY)}


def store_perf(part: Part, unavailable: str | None,
               profiles: Mapping[str, PerfProfile]) -> None:
    """Whether perf could run on the measuring machine (``perf_unavailable()``'s line, or
    None: a fact of that machine, not of the one drawing) and the perf profiles taken."""
    part.put_data(PERF_FACTS, {"unavailable": unavailable, "variants": list(profiles)})
    for variant, profile in profiles.items():
        _put_profile(part, PERF + variant, profile)


def load_perf(part: Part) -> tuple[str | None, dict[str, PerfProfile]]:
    """(why perf could not run, or None; the perf profiles by variant)."""
    facts = part.data(PERF_FACTS)
    profiles = {v: _profile(part, PERF + v, PerfProfile) for v in facts["variants"]}
    return facts["unavailable"], profiles  # type: ignore[return-value]


# -- the timed split ---------------------------------------------------------------------------

def store_timed(part: Part, timed: Mapping[str, Any], *, server: str,
                left_out: Sequence[str]) -> None:
    """Each timed variant's ``LoadResult`` as ``"timed: <variant>"`` (its call split comes
    along), and the facts the page's sentence states: which server answered, which variants
    it could not time."""
    for variant, result in timed.items():
        part.put_results(TIMED + variant, result)
    part.put_data(TIMED_FACTS, {"server": server, "timed": list(timed),
                                "left_out": list(left_out)})


def load_timed(part: Part) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``LoadResult`` by variant, the facts of ``store_timed``)."""
    facts = part.data(TIMED_FACTS)
    timed = {v: part.results(TIMED + v)[0] for v in facts["timed"]}
    return timed, facts


# -- the memcpy question -----------------------------------------------------------------------

def _copy_profile_name(build: str, variant: str) -> str:
    return f"perf {build} build: {variant}"


def store_copy_share(part: Part, copy: CopyShare) -> None:
    """Every figure of ``copy_share_measured`` (parts, samples, ops, records, the
    interleaved timing, options) as ``"copy share"``, and each build's first perf profile
    as ``"perf <build> build: <variant>"``."""
    fields = {f.name: getattr(copy, f.name) for f in dataclasses.fields(copy)
              if f.name != "profiles"}
    part.put_data(COPY_SHARE, {**fields, "builds": list(copy.profiles)})
    for build, profile in copy.profiles.items():
        _put_profile(part, _copy_profile_name(build, copy.variant), profile)


def load_copy_share(part: Part) -> CopyShare | None:
    """The ``CopyShare`` of ``store_copy_share``; None when none was measured (no perf, or
    no mmap perf profile to compare with)."""
    if not part.has("data", COPY_SHARE):
        return None
    doc = dict(part.data(COPY_SHARE))
    builds = doc.pop("builds")
    profiles = {b: _profile(part, _copy_profile_name(b, doc["variant"]), PerfProfile)
                for b in builds}
    return CopyShare(**doc, profiles=profiles)  # type: ignore[arg-type]


# -- counters --------------------------------------------------------------------------------

def store_counters(part: Part, results: Sequence[Counters]) -> None:
    """One row per variant in ``"counters"``: ops, seconds, source and each raw count (NaN
    where the source could not count it); the workload summaries beside them."""
    part.put_rows(COUNTERS, pd.DataFrame(
        [{"variant": c.variant, "ops": c.ops, "seconds": c.seconds, "source": c.source,
          **c.counts} for c in results]))
    part.put_data(COUNTER_SUMMARIES, {c.variant: c.summary for c in results})


def load_counters(part: Part) -> list[Counters]:
    """The ``Counters`` of ``store_counters``, in the order measured (``counters_table``
    makes the per-op table from them)."""
    summaries = part.data(COUNTER_SUMMARIES)
    out = []
    for row in part.rows(COUNTERS).to_dict("records"):
        counts = {k: float(v) for k, v in row.items()
                  if k not in _COUNTER_FIELDS and not math.isnan(v)}
        out.append(Counters(str(row["variant"]), int(row["ops"]), float(row["seconds"]),
                            str(row["source"]), counts, summaries.get(row["variant"], {})))
    return out


# -- memory ----------------------------------------------------------------------------------

def store_memory(part: Part, profiles: Mapping[str, MemoryProfile]) -> None:
    """``"memory"``: one ``summary()`` row per variant (what the tables, the chart and
    ``lootlab compare`` read); ``"memory: measured"``: each profile whole (every /proc field
    of the workload and its baseline, memray's totals), for whoever asks more of the run."""
    part.put_rows(MEMORY, [m.summary() for m in profiles.values()])
    part.put_data(MEMORY_MEASURED, {v: m.to_dict() for v, m in profiles.items()})


def load_memory(part: Part) -> pd.DataFrame:
    """The ``"memory"`` rows, one per variant, in the order measured."""
    return part.rows(MEMORY)


def load_memory_profiles(part: Part) -> dict[str, MemoryProfile]:
    """The ``MemoryProfile``s of ``store_memory`` by variant (without memray's flame graph,
    which is not stored)."""
    return {v: MemoryProfile(**d) for v, d in part.data(MEMORY_MEASURED).items()}


def store_replicas(part: Part, frame: pd.DataFrame) -> None:
    """``profiling.replicas``' rows (one per replica per K, and per server) as ``"replicas"``;
    ``replicas.totals`` sums them on drawing."""
    part.put_rows(REPLICAS, frame)


def load_replicas(part: Part) -> pd.DataFrame:
    return part.rows(REPLICAS)


def store_gc(part: Part, stats: Mapping[str, GcStats]) -> None:
    """``"gc runs"``: each variant's op count (a run without a single collection stays a
    row); ``"gc events"``: one row per collection, so the pause chart draws from them."""
    part.put_rows(GC_RUNS, [{"variant": v, "stats_variant": s.variant, "ops": s.ops}
                            for v, s in stats.items()])
    events = [{"variant": v, **dataclasses.asdict(e)} for v, s in stats.items() for e in s.events]
    part.put_rows(GC_EVENTS, pd.DataFrame(events, columns=GC_EVENT_COLUMNS))


def load_gc(part: Part) -> dict[str, GcStats]:
    """The ``GcStats`` of ``store_gc`` by variant, in the order measured."""
    runs = part.rows(GC_RUNS).to_dict("records")
    events = part.rows(GC_EVENTS)
    out = {}
    for run in runs:
        mine = events[events["variant"] == run["variant"]]
        out[str(run["variant"])] = GcStats(str(run["stats_variant"]), int(run["ops"]), [
            GcEvent(**{k: int(v) for k, v in e.items() if k != "variant"})
            for e in mine.to_dict("records")])
    return out


__all__ = ["load_copy_share", "load_counters", "load_flames", "load_gc", "load_memory",
           "load_memory_profiles", "load_perf", "load_replicas", "load_timed",
           "store_copy_share", "store_counters", "store_flames", "store_gc", "store_memory",
           "store_perf", "store_replicas", "store_timed"]
