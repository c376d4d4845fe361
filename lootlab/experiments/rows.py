"""One measurement row, with one set of names and units, whatever experiment made it.

Every experiment (the story's steps, the latency sweep, the what-if sweeps, rebuild under
load) turns its ``LoadResult``s into ``Measurement``s: latency in milliseconds
(``p50_ms``, ``p99_ms``, ``p99_ci_low_ms``...), rates per second (``offered_per_s``,
``achieved_per_s``), the variant as ``variant``.  So the plots, the pages and the verdict
rules (``experiments.verdicts``) read one vocabulary, and a column never means two things.

A row is built from one result (``measure``: one trial) or from several trials of one
cell pooled into one histogram (``pool``: the figure a page shows, with the lowest and
highest trial beside it).  ``Measurement.to_frame(rows)`` is the DataFrame plots and pages
read; the mean latency split (``split_ms``) becomes ``split_<part>_ms`` columns there.
A row is also a read-only mapping (``row["p99_ms"]``, ``row.get("n")``), so a verdict rule
takes it as it takes a dict or a ``pandas.Series``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import LootlabError
from ..loadgen.uncertainty import enough_samples

NAN = math.nan
#: The percentiles every row carries, as column stems.
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
#: The ones with a 95 % interval (and ``<stem>_enough``) beside them.
WITH_INTERVAL = ("p50", "p99", "p999")


@dataclass(frozen=True, eq=False)
class Measurement(Mapping[str, Any]):
    """One (variant, setting): one trial, or several pooled.  NaN where unknown."""

    variant: str
    trial: int = 0                    # which trial (0-based); a pooled row: its first
    trials: int = 1                   # how many trials the row stands for
    pooled: bool = False              # percentiles of the trials pooled into one histogram
    schedule: str = ""                # the schedule's kind (constant, poisson...)
    processes: int = 1
    concurrency: int = 1
    offered_per_s: float = NAN
    achieved_per_s: float = NAN       # pooled: the lowest trial's
    requests: int = 0
    n: int = 0                        # samples behind the percentiles
    errors: int = 0
    timeouts: int = 0
    p50_ms: float = NAN
    p90_ms: float = NAN
    p99_ms: float = NAN
    p999_ms: float = NAN
    max_ms: float = NAN
    p50_ci_low_ms: float = NAN
    p50_ci_high_ms: float = NAN
    p50_enough: bool = False          # 10 or more samples above the percentile
    p99_ci_low_ms: float = NAN
    p99_ci_high_ms: float = NAN
    p99_enough: bool = False
    p999_ci_low_ms: float = NAN
    p999_ci_high_ms: float = NAN
    p999_enough: bool = False
    p50_ms_lo: float = NAN            # the lowest and highest trial's figure
    p50_ms_hi: float = NAN
    p99_ms_lo: float = NAN
    p99_ms_hi: float = NAN
    service_p99_ms: float = NAN
    send_lag_p99_ms: float = NAN
    generator_error_p99_ms: float = NAN   # the instrument's resolution (pooled: the worst)
    generator_cpu: float = NAN        # cores
    valid: bool = False
    health: str = "ok"                # the reasons a run was INVALID, or "ok"
    upper_bound: bool = False         # INVALID only because the generator's lag may make it up
    bottleneck: str = "none"
    saturated: bool = False           # offered more than the variant sustains: a queue
    capacity_per_s: float = NAN
    scheduling: str = ""
    tail_causes: str = ""
    rtt_ms: float = NAN               # conditions: NaN where none was set
    jitter_ms: float = NAN
    cpu_limit: float = NAN
    cpu_limit_applied: bool = False
    cpu_limit_note: str = ""
    periods: float = NAN              # CFS periods and throttling (NaN: nothing limited)
    throttled_periods: float = NAN
    throttled_ms: float = NAN
    throttled_share: float = NAN
    measured_once: bool = False       # a local variant's row repeated at every RTT
    server_cores: float = NAN
    server_cpu_per_request_ms: float = NAN
    change: str = ""                  # the story's words for what the step changed
    writeup_p99_ms: float = NAN       # the write-up's figure for the step, for reference
    p99_target_ms: float = NAN        # a sweep's target, and whether the row met it
    meets_target: bool | None = None
    split_ms: dict[str, float] = field(default_factory=dict)  # mean ms per part of latency

    def as_dict(self) -> dict[str, Any]:
        """The row's columns: the fields, with ``split_ms`` as ``split_<part>_ms``."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "split_ms"}
        out.update({f"split_{part}_ms": ms for part, ms in self.split_ms.items()})
        return out

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    def with_context(self, **values: Any) -> Measurement:
        """The same row with some fields set (an experiment's own context: change,
        writeup_p99_ms, rtt_ms of a row repeated at another RTT...)."""
        return dataclasses.replace(self, **values)

    @staticmethod
    def to_frame(rows: Iterable[Measurement]) -> pd.DataFrame:
        """The rows as a DataFrame: ``COLUMNS`` in order, then ``split_<part>_ms`` for every
        part any row has (NaN in the rows without it)."""
        dicts = [r.as_dict() for r in rows]
        splits = list(dict.fromkeys(k for d in dicts for k in d if k.startswith("split_")))
        return pd.DataFrame(dicts, columns=[*COLUMNS, *splits])


#: The columns every row has, in order (``split_<part>_ms`` follow them in a frame).
COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Measurement)
                                 if f.name != "split_ms")


# --- what a result says (read through its methods, so any result-like object works) -------

def generator_error_us(result: Any) -> float:
    """The load generator's own send error p99 of a result (us): how late it sent when it
    was free to send, which is the instrument's resolution (NaN when unknown)."""
    try:
        value = float(result.percentile_us(99, "generator_lag"))
    except (AttributeError, KeyError, TypeError, ValueError):
        return NAN
    return value if math.isfinite(value) else NAN


def saturation(result: Any) -> tuple[bool, float]:
    """(saturated?, capacity per s) of a result: a saturated run offered more than the
    variant sustains, so its latency is a queue's; capacity is what the variant sustains
    under that condition (NaN unknown).  Results from before saturation was judged: False."""
    health = getattr(result, "health", None)
    saturated = bool(getattr(health, "saturated", False))
    try:
        capacity = float(getattr(health, "capacity_per_s", NAN))
    except (TypeError, ValueError):
        capacity = NAN
    return saturated, capacity


def scheduling(result: Any) -> str:
    """How a result's senders were scheduled ("SCHED_FIFO 1"), "" when not said."""
    env = getattr(result, "env", None) or {}
    return str(env.get("scheduling") or "") if isinstance(env, Mapping) else ""


def _num(x: Any) -> float:
    try:
        return NAN if x is None else float(x)
    except (TypeError, ValueError):
        return NAN


def condition_cells(conditions: Mapping[str, Any] | None,
                    throttle: Mapping[str, Any] | None) -> dict[str, Any]:
    """The condition fields of a row: RTT and CPU limit (NaN: none), whether the limit was
    applied, and the throttling counters (NaN when nothing was limited or they could not
    be read).  A result that records no conditions at all ran on loopback (RTT 0)."""
    cond = conditions or {}
    t = throttle or {}
    periods, throttled = _num(t.get("periods")), _num(t.get("throttled_periods"))
    return {"rtt_ms": _num(cond.get("rtt_ms", 0.0)), "jitter_ms": _num(cond.get("jitter_ms", 0.0)),
            "cpu_limit": _num(cond.get("cpu_limit")),
            "cpu_limit_applied": bool(cond.get("cpu_limit_applied") or False),
            "cpu_limit_note": str(cond.get("cpu_limit_note") or ""),
            "periods": periods, "throttled_periods": throttled,
            "throttled_ms": _num(t.get("throttled_ms")),
            "throttled_share": throttled / periods if periods > 0 else NAN}


def _load_cells(result: Any) -> dict[str, Any]:
    """What one result says beyond its latency percentiles: rates, counts, health, the
    instrument, the server's CPU; the fields ``measure`` and ``pool`` share."""
    health = result.health
    sat, capacity = saturation(result)
    server = getattr(result, "server", None) or {}
    schedule = getattr(result, "schedule", None) or {}
    causes = getattr(result, "tail_causes", None)
    return {"schedule": str(schedule.get("kind") or ""),
            "processes": int(getattr(result, "processes", 1)),
            "concurrency": int(getattr(result, "concurrency", 1)),
            "offered_per_s": float(result.offered_rate),
            "achieved_per_s": float(result.achieved_rate), "requests": int(result.requests),
            "errors": int(result.counts.get("failed", 0)),
            "timeouts": int(result.counts.get("timeouts", 0)),
            "generator_error_p99_ms": generator_error_us(result) / 1e3,
            "generator_cpu": _num(getattr(result, "generator_cpu", NAN)),
            "valid": bool(health.valid), "health": "; ".join(health.reasons) or "ok",
            "upper_bound": bool(getattr(health, "upper_bound", False)),
            "bottleneck": str(health.bottleneck), "saturated": sat, "capacity_per_s": capacity,
            "scheduling": scheduling(result),
            "tail_causes": "; ".join(causes()) if callable(causes) else "",
            "server_cores": _num(server.get("cores")),
            "server_cpu_per_request_ms": _num(server.get("cpu_per_request_us")) / 1e3}


def _send_lag_ms(result: Any) -> float:
    fn = getattr(result, "send_lag_us", None)
    return float(fn(99)) / 1e3 if callable(fn) else NAN


def measure(result: Any, *, variant: str | None = None, trial: int = 0,
            **context: Any) -> Measurement:
    """One trial's row from its ``LoadResult``: percentiles with the latency's own 95 %
    intervals (widened down by the generator's lag bound where that lag stayed in the
    latency: under a CPU limit, or in results saved before it was taken out), rates,
    health, conditions, the server's CPU and the mean latency split.  ``context`` sets
    an experiment's own fields (``change``, ``writeup_p99_ms``...)."""
    n = int(result.samples())
    cells: dict[str, Any] = {}
    lag_stays = not getattr(result, "lag_subtracted", True)
    for stem, p in PERCENTILES.items():
        cells[f"{stem}_ms"] = float(result.latency_us(p)) / 1e3
        if stem not in WITH_INTERVAL:
            continue
        lo, hi = (float(v) for v in result.latency_ci_us(p))
        lag = _num(result.lag_bound_us(p)) if lag_stays else NAN
        if math.isfinite(lag) and not math.isnan(lo):
            lo -= lag
        cells[f"{stem}_ci_low_ms"] = max(0.0, lo) / 1e3 if not math.isnan(lo) else NAN
        cells[f"{stem}_ci_high_ms"] = hi / 1e3
        cells[f"{stem}_enough"] = bool(enough_samples(n, p))
    cells["max_ms"] = float(result.latency_us(100)) / 1e3
    for stem in ("p50", "p99"):
        cells[f"{stem}_ms_lo"] = cells[f"{stem}_ms_hi"] = cells[f"{stem}_ms"]
    split = result.split_us() if hasattr(result, "split_us") else {}
    row = {"variant": variant or result.variant, "trial": trial, "trials": 1, "pooled": False,
           "n": n, **cells, **_load_cells(result),
           "service_p99_ms": float(result.service_us(99)) / 1e3,
           "send_lag_p99_ms": _send_lag_ms(result),
           **condition_cells(getattr(result, "conditions", None),
                             getattr(result, "throttle", None)),
           "split_ms": {part: us / 1e3 for part, us in split.items()}, **context}
    return Measurement(**row)


def pool(results: Sequence[Any], *, variant: str | None = None, trial: int = 0,
         **context: Any) -> Measurement:
    """One cell's trials as one row: percentiles of the trials pooled into one histogram
    (``loadgen.pooling``) with that histogram's intervals, the lowest and highest trial's
    p50 and p99 beside them; requests and errors summed; valid only when every trial was,
    an upper bound when every INVALID trial was one; saturated when any trial was, the
    smallest capacity, the largest instrument error; the conditions the trials share with
    their throttling counters summed; the server's CPU and the split, the trials' means."""
    from ..loadgen.limits import merge_conditions, merge_throttle
    from ..loadgen.pooling import pooled

    if not results:
        raise LootlabError("a pooled row needs at least one result")
    got = pooled(results)
    trials = [measure(r, trial=trial) for r in results]
    cells: dict[str, Any] = {}
    for stem in PERCENTILES:
        cells[f"{stem}_ms"] = got[f"{stem}_us"] / 1e3
    for stem in WITH_INTERVAL:
        cells[f"{stem}_ci_low_ms"] = got[f"{stem}_ci_low_us"] / 1e3
        cells[f"{stem}_ci_high_ms"] = got[f"{stem}_ci_high_us"] / 1e3
        cells[f"{stem}_enough"] = bool(got[f"{stem}_enough"])
    for stem in ("p50", "p99"):
        values = [t[f"{stem}_ms"] for t in trials]
        cells[f"{stem}_ms_lo"], cells[f"{stem}_ms_hi"] = min(values), max(values)
    ok = [t.valid or t.upper_bound for t in trials]
    valid = all(t.valid for t in trials)
    capacities = [t.capacity_per_s for t in trials if math.isfinite(t.capacity_per_s)]
    errors = [t.generator_error_p99_ms for t in trials
              if math.isfinite(t.generator_error_p99_ms)]
    conds = [getattr(r, "conditions", None) for r in results]
    shared = merge_conditions(conds) if any(conds) else {}
    throttle = merge_throttle([getattr(r, "throttle", None) for r in results])
    first = trials[0]
    row = {**_fields(first), **cells, "variant": variant or first.variant, "trial": trial,
           "trials": len(trials), "pooled": True, "n": int(got["n"]),
           "max_ms": got["max_us"] / 1e3,
           "achieved_per_s": min(t.achieved_per_s for t in trials),
           "requests": sum(t.requests for t in trials),
           "errors": sum(t.errors for t in trials),
           "timeouts": sum(t.timeouts for t in trials),
           "valid": valid, "upper_bound": (not valid) and all(ok),
           "health": _joined(t.health for t in trials if t.health != "ok") or "ok",
           "bottleneck": _joined(t.bottleneck for t in trials if t.bottleneck != "none")
           or "none",
           "saturated": any(t.saturated for t in trials),
           "capacity_per_s": min(capacities) if capacities else NAN,
           "generator_error_p99_ms": max(errors) if errors else NAN,
           "scheduling": _joined(t.scheduling for t in trials),
           "tail_causes": _joined(t.tail_causes for t in trials),
           **{k: _typical(t[k] for t in trials) for k in (
               "service_p99_ms", "send_lag_p99_ms", "generator_cpu", "server_cores",
               "server_cpu_per_request_ms")},
           **condition_cells(shared, throttle),
           "split_ms": _mean_split(trials), **context}
    return Measurement(**row)


def _fields(row: Measurement) -> dict[str, Any]:
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}


def _joined(texts: Iterable[str]) -> str:
    """Distinct non-empty texts (each may itself be "a; b"), in first-seen order."""
    parts = (p for t in texts for p in str(t).split("; ") if p)
    return "; ".join(dict.fromkeys(parts))


def _typical(values: Iterable[float]) -> float:
    """The median of the known values (NaN when none): the typical trial."""
    known = [v for v in values if math.isfinite(v)]
    return statistics.median(known) if known else NAN


def _mean_split(trials: Sequence[Measurement]) -> dict[str, float]:
    """Each part's mean over the trials, weighted by their samples (a part a trial lacks
    counts as 0 there)."""
    parts = list(dict.fromkeys(p for t in trials for p in t.split_ms))
    total = sum(t.n for t in trials)
    if not parts or total <= 0:
        return {}
    return {p: sum(t.split_ms.get(p, 0.0) * t.n for t in trials) / total for p in parts}


__all__ = ["COLUMNS", "Measurement", "PERCENTILES", "condition_cells", "generator_error_us",
           "measure", "pool", "saturation", "scheduling"]
