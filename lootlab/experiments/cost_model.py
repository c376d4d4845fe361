"""Cost per million queries, and where the two architectures cross: a pure model over
measured inputs (``cost`` measures them).  Nothing here measures or draws.

Per hour, for a fleet of ``fleet_size`` replicas sending ``qps`` queries per second in
all over an index of ``data_bytes``, rebuilt by a check every ``interval_s`` seconds:

* local (the file on every replica): CPU = qps x client CPU per query, plus on every
  replica the rebuild (a conditional GET per check; a download and a build per change);
  memory = every replica holds ``copies`` x the index (the old and the new generation
  side by side during a swap, by default) plus its own process; S3 GETs = every replica
  checks.
* remote: CPU = qps x (client + server CPU per query) plus each of ``servers`` servers'
  idle CPU and rebuild; memory = every replica's client process plus each server's
  ``copies`` x index; S3 GETs = every server checks; bytes between replica and server
  (``response_bytes_per_query``) at ``Prices.between_zones_per_gb``.

CPU is charged by the core-second used (perfectly packed; an engineer sizing whole
instances rounds up, which the model leaves to them).  Figures measured at one index size
(``RebuildCost.index_bytes``) scale linearly with ``data_bytes``: build CPU, bytes
downloaded, and the index's share of memory (labelled extrapolated when the sizes differ).

Every hourly total is affine in each of fleet size, query rate and data size (holding the
others), so ``crossover`` solves for the point where two variants cost the same exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import pandas as pd

GIB = float(2 ** 30)
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Prices:
    """What the reader pays, in US dollars; set your own.

    Defaults: AWS list prices, us-east-1, on-demand, as published in 2024 (check current
    ones): Fargate Linux/x86 ``vcpu_hour`` $0.04048 per vCPU-hour and ``gb_hour``
    $0.004445 per GB-hour (memory is counted here in GiB, as Fargate sizes it); S3
    Standard ``get_per_1000`` $0.0004 per 1,000 GET requests; ``s3_transfer_per_gb`` $0
    (S3 to compute in the same region is free; $0.09 to the internet);
    ``between_zones_per_gb`` $0 (replica and server in one zone; AWS charges $0.01 per GB
    each way across zones, so $0.02 for a remote answer that crosses one).
    """

    vcpu_hour: float = 0.04048
    gb_hour: float = 0.004445
    get_per_1000: float = 0.0004
    s3_transfer_per_gb: float = 0.0
    between_zones_per_gb: float = 0.0


@dataclass(frozen=True)
class VariantCost:
    """One variant's measured inputs.  ``client_bytes``: memory per replica (for the
    local variant: its process with the index mapped; for a remote one: its client
    process); ``server_bytes``: per server (remote only), both at the measured index size
    and with one copy of the index; ``index_share``: the part of those bytes that is the
    index (scaled with data size and ``copies``); ``memory_source`` says where the memory
    figures came from."""

    variant: str
    remote: bool
    client_cpu_s_per_query: float
    server_cpu_s_per_query: float = 0.0
    server_idle_cores: float = 0.0
    client_bytes: float = 0.0
    server_bytes: float = 0.0
    memory_source: str = "measured"
    response_bytes_per_query: float = 0.0


@dataclass(frozen=True)
class RebuildCost:
    """One rebuild worker's cost, measured at an index of ``index_bytes``: CPU seconds per
    changed check (download, parse, build, publish), per unchanged check (a conditional
    GET answered 304), bytes downloaded per change, GET requests per check."""

    build_cpu_s: float
    check_cpu_s: float
    object_bytes: float
    index_bytes: float
    requests_per_check: float = 1.0


@dataclass(frozen=True)
class CostInputs:
    variants: tuple[VariantCost, ...]
    rebuild: RebuildCost

    def variant(self, name: str) -> VariantCost:
        for v in self.variants:
            if v.variant == name:
                return v
        raise KeyError(f"no cost inputs for variant {name!r} (have: "
                       f"{', '.join(v.variant for v in self.variants)})")


@dataclass(frozen=True)
class Scenario:
    """The fleet the reader asks about (``crossover`` varies one field)."""

    fleet_size: float
    qps: float
    data_bytes: float
    interval_s: float = 60.0
    changes_per_hour: float | None = None    # None: the source changes at every check
    servers: float = 2.0
    copies: float = 2.0


def _rebuild_hour(rb: RebuildCost, s: Scenario) -> tuple[float, float, float]:
    """(CPU seconds, GET requests, bytes downloaded) per hour for one rebuild worker."""
    checks = SECONDS_PER_HOUR / s.interval_s
    builds = checks if s.changes_per_hour is None else min(s.changes_per_hour, checks)
    scale = s.data_bytes / rb.index_bytes
    cpu = builds * rb.build_cpu_s * scale + (checks - builds) * rb.check_cpu_s
    return cpu, checks * rb.requests_per_check, builds * rb.object_bytes * scale


def _memory(base: float, index_bytes: float, s: Scenario) -> float:
    """A node's bytes at the scenario's data size: its process (``base`` less the one
    measured copy of the index) plus ``copies`` copies of the index."""
    return max(0.0, base - index_bytes) + s.copies * s.data_bytes


def hourly(v: VariantCost, rb: RebuildCost, s: Scenario) -> dict[str, float]:
    """Resources and dollars per hour for variant ``v`` in scenario ``s`` (not priced
    here: see ``price``)."""
    cpu_h, gets_h, bytes_h = _rebuild_hour(rb, s)
    queries_h = s.qps * SECONDS_PER_HOUR
    if not v.remote:
        core_s = queries_h * v.client_cpu_s_per_query + s.fleet_size * cpu_h
        mem = s.fleet_size * _memory(v.client_bytes, rb.index_bytes, s)
        gets, s3_bytes, wire = s.fleet_size * gets_h, s.fleet_size * bytes_h, 0.0
    else:
        core_s = (queries_h * (v.client_cpu_s_per_query + v.server_cpu_s_per_query)
                  + s.servers * (v.server_idle_cores * SECONDS_PER_HOUR + cpu_h))
        mem = s.fleet_size * v.client_bytes + s.servers * _memory(v.server_bytes,
                                                                   rb.index_bytes, s)
        gets, s3_bytes = s.servers * gets_h, s.servers * bytes_h
        wire = queries_h * v.response_bytes_per_query
    return {"core_hours": core_s / SECONDS_PER_HOUR, "gb_hours": mem / GIB,
            "requests": gets, "s3_gb": s3_bytes / GIB, "between_zones_gb": wire / GIB}


def price(resources: dict[str, float], p: Prices) -> dict[str, float]:
    parts = {"dollars_cpu": resources["core_hours"] * p.vcpu_hour,
             "dollars_memory": resources["gb_hours"] * p.gb_hour,
             "dollars_requests": resources["requests"] / 1000 * p.get_per_1000,
             "dollars_transfer": (resources["s3_gb"] * p.s3_transfer_per_gb
                                  + resources["between_zones_gb"] * p.between_zones_per_gb)}
    return {**parts, "dollars": sum(parts.values())}


def cost_per_million(inputs: CostInputs, fleet_size: float, qps: float, data_bytes: float,
                     prices: Prices = Prices(), *, interval_s: float = 60.0,
                     changes_per_hour: float | None = None, servers: float = 2.0,
                     copies: float = 2.0) -> pd.DataFrame:
    """One row per variant: core-hours, GB-hours, S3 GET requests, GB moved and dollars
    per million queries (and per hour), with what the figures rest on."""
    s = Scenario(fleet_size, qps, data_bytes, interval_s, changes_per_hour, servers, copies)
    if not (qps > 0 and fleet_size > 0 and data_bytes > 0 and interval_s > 0):
        raise ValueError("fleet_size, qps, data_bytes and interval_s must be positive")
    per_million = 1e6 / (qps * SECONDS_PER_HOUR)
    rows = []
    extrapolated = not math.isclose(data_bytes, inputs.rebuild.index_bytes, rel_tol=1e-6)
    for v in inputs.variants:
        res = hourly(v, inputs.rebuild, s)
        money = price(res, prices)
        rows.append({"variant": v.variant, "remote": v.remote,
                     **{f"{k}_per_million": val * per_million for k, val in res.items()},
                     **{f"{k}_per_million": val * per_million for k, val in money.items()},
                     "dollars_per_hour": money["dollars"],
                     "fleet_size": fleet_size, "qps": qps, "data_bytes": data_bytes,
                     "interval_s": interval_s, "servers": servers if v.remote else 0,
                     "copies": copies, "memory_source": v.memory_source,
                     "extrapolated": ("data size scaled linearly from the measured "
                                      f"{inputs.rebuild.index_bytes / 2**20:.1f} MiB index")
                     if extrapolated else ""})
    return pd.DataFrame(rows)


VARIABLES = ("fleet_size", "qps", "data_bytes")


def _diff(inputs: CostInputs, a: str, b: str, s: Scenario, p: Prices) -> float:
    """Dollars per hour of ``a`` less ``b`` (same sign as per million: same qps)."""
    return (price(hourly(inputs.variant(a), inputs.rebuild, s), p)["dollars"]
            - price(hourly(inputs.variant(b), inputs.rebuild, s), p)["dollars"])


def crossover(inputs: CostInputs, fleet_size: float, qps: float, data_bytes: float,
              prices: Prices = Prices(), *, a: str = "mmap",
              b: Iterable[str] | str | None = None, variables: Iterable[str] = VARIABLES,
              interval_s: float = 60.0, changes_per_hour: float | None = None,
              servers: float = 2.0, copies: float = 2.0) -> pd.DataFrame:
    """Where ``a`` and each of ``b`` cost the same, varying one of fleet size, query rate
    or data size while the others stay as given: one row per (other variant, variable)
    with ``at`` (NaN when the lines never cross at a positive value), which is cheaper
    below and above it, and which is cheaper at the given point.  Exact: the hourly cost
    difference is affine in each variable, so two evaluations fix its line."""
    base = Scenario(fleet_size, qps, data_bytes, interval_s, changes_per_hour, servers, copies)
    others = [b] if isinstance(b, str) else list(b) if b is not None else \
        [v.variant for v in inputs.variants if v.variant != a]
    rows = []
    for other in others:
        here = _diff(inputs, a, other, base, prices)
        for var in variables:
            x1 = getattr(base, var)
            d0 = _diff(inputs, a, other, replace(base, **{var: 0.0}), prices)
            slope = (here - d0) / x1
            at = -d0 / slope if slope != 0 else math.nan
            crosses = math.isfinite(at) and at > 0
            below = a if (d0 < 0 or (d0 == 0 and slope < 0)) else other
            above = a if slope < 0 or (slope == 0 and d0 < 0) else other
            rows.append({"a": a, "b": other, "variable": var, "at": at if crosses else math.nan,
                         "given": x1, "cheaper_below": below if crosses else
                         (a if here < 0 else other),
                         "cheaper_above": above if crosses else (a if here < 0 else other),
                         "cheaper_at_given": a if here < 0 else other if here > 0 else "equal",
                         "dollars_per_hour_difference": here})
    return pd.DataFrame(rows)


__all__ = [
    "GIB",
    "VARIABLES",
    "CostInputs",
    "Prices",
    "RebuildCost",
    "Scenario",
    "VariantCost",
    "cost_per_million",
    "crossover",
    "hourly",
    "price",
]
