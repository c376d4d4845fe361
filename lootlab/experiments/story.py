"""The story's steps, as one grid of the experiment engine (``experiments.grid``): plain data
back (DataFrames, dataclasses), which the notebooks and ``lootlab.plots.steps`` only draw.

The story: the overlay search called a remote gRPC service over TLS and fixed it in steps,
``grpc-tls-fresh`` -> ``grpc-tls-resumed`` -> ``grpc-tls-pooled`` -> ``grpc-tls-packed``,
then replaced it with the memory-mapped file (``mmap``).  ``run_steps`` measures each step
at the same offered load on this machine; ``lootlab.report.story_text`` says in words what the
data shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd

from ..errors import LootlabError
from ..loadgen.split import SPLIT_PARTS
from .grid import Cell, run_grid
from .rows import Measurement, measure, pool
from .trials import summarize_trials

#: The steps of the story, in order, with what each change was.
STEPS: dict[str, str] = {
    "grpc-tls-fresh": "remote service, new TLS connection per request",
    "grpc-tls-resumed": "TLS session resumption",
    "grpc-tls-pooled": "one pooled long-lived channel",
    "grpc-tls-packed": "packed records decoded with numpy",
    "mmap": "local memory-mapped index file",
}

#: What the original write-up reported (for reference beside our numbers, never mixed in).
WRITEUP = {
    "p99_ms": {"before (remote, TLS)": 95.0, "after TLS + decoder fixes": 78.0,
               "mmap file": 34.0},
    # which of our steps each of the write-up's figures corresponds to
    "p99_ms_by_step": {"grpc-tls-fresh": 95.0, "grpc-tls-packed": 78.0, "mmap": 34.0},
    "gc_pause_ms": {"before": 8.0, "after": 0.6},
    "rss_mb_max": 92.0,
    "allocs_per_op": {"before": 2.1, "after": 0.4},
    "memcpy_cpu_share": 0.68,
    "spike": {"rate_per_s": 130_000, "p99_ms_max": 42.0},
    # production conditions: the remote call's fixed network tax, the paint budget players
    # complained past, and how much p99 the team needed to cut
    "network_tax_ms": 40.0,
    "paint_budget_ms": 120.0,
    "p99_cut_needed_ms": 50.0,
}


# --- the story's steps --------------------------------------------------------------------

@dataclass
class StoryRun:
    """Each step at one offered rate, ``trials`` times: ``steps`` (per step, named by
    ``variant``: p50/p99/p99.9 of its trials pooled into one histogram, with that
    histogram's 95 % interval and ``n``; ``<col>_lo``/``<col>_hi`` the lowest and highest
    trial), ``trials`` (``experiments.rows.Measurement`` columns, per trial and step, in the
    order run) and the ``LoadResult``s per variant, one per trial (spectra, health)."""

    rate: float
    duration: float
    steps: pd.DataFrame
    results: dict[str, list[Any]] = field(default_factory=dict, repr=False)
    trials: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    network: Any = None          # the ``Network`` the remote steps crossed (None: loopback)
    cpu_limit: float | None = None   # cores the client side was limited to (None: none)

    @property
    def valid(self) -> bool:
        return bool(self.steps["valid"].all())

    @property
    def conditions(self) -> dict[str, Any]:
        """What the steps ran under, in ``LoadResult.conditions``' shape: what was asked
        (``conditions_asked``), with whether the CPU limit was applied (and why not) as the
        results record it."""
        out = conditions_asked(self.network, self.cpu_limit)
        for trials in self.results.values():
            for res in trials:
                got = getattr(res, "conditions", None) or {}
                if got.get("cpu_limit_applied") is not None:
                    out["cpu_limit_applied"] = bool(got["cpu_limit_applied"])
                    out["cpu_limit_note"] = str(got.get("cpu_limit_note") or "")
                    return out
        return out


def step_row(variant: str, result: Any, trial: int = 0) -> Measurement:
    """One trial of one step from its ``LoadResult`` (``experiments.rows.measure``), with
    the story's own context: what the step changed and the write-up's figure for it."""
    return measure(result, variant=variant, trial=trial, change=STEPS.get(variant, ""),
                   writeup_p99_ms=WRITEUP["p99_ms_by_step"].get(variant, math.nan))


def summarize_steps(trials: pd.DataFrame,
                    results: Mapping[str, list[Any]] | None = None) -> pd.DataFrame:
    """Per step (``variant``, in the order run): the trials' min..max, requests and errors
    summed, every distinct health reason and bottleneck.  With ``results`` (variant -> its
    trials' ``LoadResult``s) p50/p99/p99.9, ``n`` and the p99 interval are those of the
    trials pooled into one histogram (``experiments.rows.pool``); without, the median
    trial's and the widest per-trial interval.  ``generator_error_p99_ms`` is the largest
    trial's, ``saturated`` True when any trial was, ``capacity_per_s`` the smallest known."""
    splits = [c for c in trials if c.startswith("split_")]
    steps = summarize_trials(
        trials, ["variant"],
        ["p50_ms", "p99_ms", "p999_ms", "service_p99_ms", "achieved_per_s",
         *[c for c in ("server_cores", "server_cpu_per_request_ms") if c in trials], *splits],
        lows=["p99_ci_low_ms", *[c for c in ("capacity_per_s",) if c in trials]],
        highs=[c for c in ("p99_ci_high_ms", "p99_lag_bound_ms", "generator_error_p99_ms")
               if c in trials],
        sums=["requests", "errors", *[c for c in ("throttled_periods", "throttled_ms")
                                      if c in trials]],
        firsts=["change", "offered_per_s", "writeup_p99_ms",
                *[c for c in ("rtt_ms", "cpu_limit") if c in trials]],
        joins=["health"])
    if steps.empty:
        return steps
    by = trials.groupby("variant", sort=False)
    if "upper_bound" in trials:   # INVALID only by the lag bound, in every invalid trial
        ok = trials["valid"].astype(bool) | trials["upper_bound"].astype(bool)
        steps["upper_bound"] = steps["variant"].map(ok.groupby(trials["variant"]).all()) \
            & ~steps["valid"].astype(bool)
    if "saturated" in trials:    # a queue's latency in any trial: the step was saturated
        steps["saturated"] = steps["variant"].map(
            trials["saturated"].fillna(False).astype(bool).groupby(trials["variant"]).any())
    for col in ("scheduling", "tail_causes"):
        if col in trials:
            steps[col] = steps["variant"].map(by[col].agg(
                lambda t: "; ".join(dict.fromkeys(v for v in t if v))))
    if "bottleneck" in trials:
        sides = by["bottleneck"].agg(
            lambda b: "; ".join(dict.fromkeys(v for v in b if v != "none")) or "none")
        steps["bottleneck"] = steps["variant"].map(sides)
    steps["pooled"] = False
    for i, variant in steps["variant"].items():
        if results and results.get(variant):
            row = pool(results[variant])
            cols = ["p50_ms", "p99_ms", "p999_ms", "p99_ci_low_ms", "p99_ci_high_ms", "n"]
            steps.loc[i, cols] = [row[c] for c in cols]
            steps.loc[i, "pooled"] = True
    steps["p99_change_ms"] = steps["p99_ms"].diff()
    if "saturated" in steps:      # a queue's p99 is no step's: no change is drawn from it
        sat = steps["saturated"].astype(bool)
        steps.loc[sat | sat.shift(1, fill_value=False), "p99_change_ms"] = math.nan
    return steps


def part_label(part: str, step: str) -> str:
    """How ``part`` of ``step``'s latency reads in a sentence: a channel-per-call step's
    transport holds its connection and TLS handshake, and is called so."""
    if part == "transport":
        from ..variants import UnknownVariantError, get

        try:
            variant = get(step)
        except UnknownVariantError:      # a step named by the caller, not a variant
            return "transport"
        if variant.channel_per_call:
            return "connect + TLS handshake + transport" if variant.tls else "connect + transport"
        return "transport + TLS" if variant.tls else "transport"
    return SPLIT_PARTS[part].split(" (")[0]


def split_table(results: Mapping[str, Any]) -> pd.DataFrame:
    """Mean microseconds of each part of the latency (``LoadResult.split_us``), one row per
    variant, columns as ``SPLIT_PARTS`` reads them, plus the mean latency they add up to."""
    rows = {}
    for name, res in results.items():
        split = res.split_us()
        rows[name] = {SPLIT_PARTS[p]: round(split.get(p, 0.0), 1) for p in SPLIT_PARTS
                      if any(p in r.split_us() for r in results.values())}
        rows[name]["mean latency"] = round(sum(split.values()), 1)
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "variant (us per call)"
    return frame


def run_steps(rate: float, duration: float, *, variants: Any = None, trials: int = 1,
              warmup: float = 1.0, processes: int = 1, concurrency: int = 1, seed: int = 0,
              server: Any = None, on_step: Callable[[str], None] | None = None,
              network: Any = None, cpu_limit: float | None = None,
              **run_options: Any) -> StoryRun:
    """Run every step's variant at the same constant ``rate`` for ``duration`` seconds,
    ``trials`` times, interleaved (trial 1 of every step, then trial 2...: one cell per step
    of ``experiments.grid``) so slow drift on the machine hits every step alike.  Same
    schedule, workload and generator settings for
    every step, so differences are the variants'.  ``variants``: names (remote ones talk to
    ``server``, a ``LoopbackServer``, or the embedded shared one) or {step: client factory}.

    ``network`` (a ``lootlab.Network``, a number = RTT in ms, or None) puts a delaying proxy
    between every remote step and its server; ``cpu_limit`` (cores) runs every step's client
    side in a cgroup with that quota (``loadgen.run(network=, cpu_limit=)``).  The rows then
    carry ``rtt_ms``, ``cpu_limit``, ``throttled_periods`` and ``throttled_ms``.
    """
    from ..targets import client_factory

    if trials < 1:
        raise LootlabError(f"trials must be at least 1, not {trials!r}")
    named = variants if isinstance(variants, Mapping) else {
        v: client_factory(v, server) for v in (variants or STEPS)}
    conditions = _conditions(network, cpu_limit)
    grid = run_grid([Cell(variant, target) for variant, target in named.items()],
                    duration=duration, trials=trials, rate=rate, seed=seed, on_run=on_step,
                    processes=processes, concurrency=concurrency, warmup=warmup,
                    **conditions, **run_options)
    results = {cell.label: runs for cell, runs in zip(grid.cells, grid.results)}
    frame = Measurement.to_frame(step_row(grid.cells[i].label, res, trial)
                                 for (trial, i), res in zip(grid.order, grid.runs))
    return StoryRun(rate=float(rate), duration=float(duration),
                    steps=summarize_steps(frame, results),
                    results=results, trials=frame, network=conditions.get("network"),
                    cpu_limit=conditions.get("cpu_limit"))


def conditions_asked(network: Any = None, cpu_limit: float | None = None) -> dict[str, Any]:
    """What ``run_steps(network=, cpu_limit=)`` asks for, in ``LoadResult.conditions``'
    shape (``cpu_limit_applied`` None: not known before a run); checked as ``run_steps``
    checks it, so a notebook can fail on a wrong parameter before it runs anything."""
    asked = _conditions(network, cpu_limit)
    net = asked.get("network")
    return {"rtt_ms": net.rtt_ms if net else 0.0, "jitter_ms": net.jitter_ms if net else 0.0,
            "bandwidth_mbit": net.bandwidth_mbit if net else None,
            "cpu_limit": asked.get("cpu_limit"), "cpu_limit_applied": None,
            "cpu_limit_note": ""}


def _conditions(network: Any, cpu_limit: float | None) -> dict[str, Any]:
    """The ``loadgen.run`` keywords for the conditions asked (none for loopback and no
    limit, so a plain story passes nothing new)."""
    from ..targets import network_of

    out: dict[str, Any] = {}
    net = network_of(network)
    if net is not None:
        out["network"] = net
    if cpu_limit is not None:
        limit = float(cpu_limit)
        if not limit > 0:
            raise LootlabError(f"cpu_limit must be a positive number of cores, not "
                               f"{cpu_limit!r}")
        out["cpu_limit"] = limit
    return out

