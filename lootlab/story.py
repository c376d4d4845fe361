"""The experiments behind the notebooks that no other module owns: the story's steps here,
the rebuild-under-load run in ``lootlab.rebuildload`` (re-exported).  They return plain data (DataFrames, dataclasses); the
notebooks and ``lootlab.plots.story`` only draw it.

The story: the overlay search called a remote gRPC service over TLS and fixed it in steps,
``grpc-tls-fresh`` -> ``grpc-tls-resumed`` -> ``grpc-tls-pooled`` -> ``grpc-tls-packed``,
then replaced it with the memory-mapped file (``mmap``).  ``run_steps`` measures each step
at the same offered load on this machine; ``lootlab.report.story`` says in words what the
data shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd

from .errors import LootlabError

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
    """Each step at one offered rate, ``trials`` times: ``steps`` (per step: p50/p99/p99.9 of
    its trials pooled into one histogram, with that histogram's 95 % interval and ``n``;
    ``<col>_lo``/``<col>_hi`` the lowest and highest trial), ``trials`` (per trial and step,
    in the order run) and the ``LoadResult``s per variant, one per trial (spectra, health)."""

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


def step_row(variant: str, result: Any, trial: int = 0) -> dict[str, Any]:
    """One trial of one step from a ``LoadResult``: percentiles in ms, the p99's sample
    count and 95 % interval, rates, health, which side, if any, was the bottleneck, and the
    instrument's resolution (the generator's own send error p99) and whether the step was
    saturated (its latency then a queue's, not the variant's)."""
    from .loadgen.sweep import ci_us

    lo, hi = ci_us(result, 99)
    saturated, capacity = saturation(result)
    return {
        "step": variant, "change": STEPS.get(variant, ""), "trial": trial,
        "p50_ms": result.latency_us(50) / 1e3, "p99_ms": result.latency_us(99) / 1e3,
        "p999_ms": result.latency_us(99.9) / 1e3,
        "service_p99_ms": result.service_us(99) / 1e3, "n": int(result.samples()),
        "p99_ci_low_ms": max(0.0, lo) / 1e3, "p99_ci_high_ms": hi / 1e3,
        "generator_error_p99_ms": generator_error_us(result) / 1e3,
        "requests": int(result.requests),
        "offered_per_s": float(result.offered_rate), "achieved_per_s": float(result.achieved_rate),
        "errors": int(result.counts.get("failed", 0)),
        "valid": bool(result.health.valid), "health": "; ".join(result.health.reasons) or "ok",
        "upper_bound": bool(getattr(result.health, "upper_bound", False)),
        "saturated": saturated, "capacity_per_s": capacity,
        "scheduling": scheduling(result),
        # what the kernel saw during the run that explains a tail (loadgen.tails)
        "tail_causes": "; ".join(getattr(result, "tail_causes", lambda: [])()),
        "bottleneck": result.health.bottleneck,
        "writeup_p99_ms": WRITEUP["p99_ms_by_step"].get(variant, math.nan),
        # the conditions it ran under (loadgen: result.conditions / result.throttle)
        **conditions_cells(result),
        # the server's CPU over the run (loadgen.serverload; NaN for a local step)
        "server_cores": float(result.server.get("cores", math.nan)),
        "server_cpu_per_request_us": float(result.server.get("cpu_per_request_us", math.nan)),
        # where the mean latency went (LoadResult.split_us): split_send_wait_ms, ...
        **{f"split_{part}_ms": us / 1e3 for part, us in result.split_us().items()},
    }


def generator_error_us(result: Any) -> float:
    """The load generator's own send error p99 of a ``LoadResult`` (us): how late it sent
    when it was free to send, which is the instrument's resolution (NaN when unknown)."""
    try:
        value = float(result.percentile_us(99, "generator_lag"))
    except (AttributeError, KeyError, TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def saturation(result: Any) -> tuple[bool, float]:
    """(saturated?, capacity per s) of a ``LoadResult``: a saturated run offered more than
    the variant sustains, so its latency is a queue's; capacity is what the variant sustains
    under that condition (NaN unknown).  Results from before saturation was judged: False."""
    health = getattr(result, "health", None)
    saturated = bool(getattr(health, "saturated", False))
    try:
        capacity = float(getattr(health, "capacity_per_s", math.nan))
    except (TypeError, ValueError):
        capacity = math.nan
    return saturated, capacity


def scheduling(result: Any) -> str:
    """How a ``LoadResult``'s senders were scheduled ("SCHED_FIFO 1"), "" when not said."""
    env = getattr(result, "env", None) or {}
    return str(env.get("scheduling") or "") if isinstance(env, Mapping) else ""


def conditions_cells(result: Any) -> dict[str, float]:
    """A result's RTT and CPU limit (NaN: none) and how much its client side was throttled
    (NaN when nothing was limited or the counters could not be read)."""
    cond = getattr(result, "conditions", None) or {}
    throttle = getattr(result, "throttle", None) or {}

    def num(x: Any) -> float:
        return math.nan if x is None else float(x)
    return {"rtt_ms": num(cond.get("rtt_ms", 0.0)), "cpu_limit": num(cond.get("cpu_limit")),
            "throttled_periods": num(throttle.get("throttled_periods")),
            "throttled_ms": num(throttle.get("throttled_ms"))}


def summarize_steps(trials: pd.DataFrame,
                    results: Mapping[str, list[Any]] | None = None) -> pd.DataFrame:
    """Per step (in the order run): the trials' min..max, requests and errors summed, every
    distinct health reason and bottleneck.  With ``results`` (step -> its trials'
    ``LoadResult``s) p50/p99/p99.9, ``n`` and the p99 interval are those of the trials pooled
    into one histogram (``loadgen.pooling``); without, the median trial's and the widest
    per-trial interval.  ``generator_error_p99_ms`` is the largest trial's, ``saturated``
    True when any trial was, ``capacity_per_s`` the smallest known."""
    from .loadgen.pooling import pooled
    from .loadgen.sweep import summarize_trials

    splits = [c for c in trials if c.startswith("split_")]
    steps = summarize_trials(
        trials, ["step"],
        ["p50_ms", "p99_ms", "p999_ms", "service_p99_ms", "achieved_per_s",
         *[c for c in ("server_cores", "server_cpu_per_request_us") if c in trials], *splits],
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
    if "upper_bound" in trials:   # INVALID only by the lag bound, in every invalid trial
        ok = trials["valid"].astype(bool) | trials["upper_bound"].astype(bool)
        steps["upper_bound"] = steps["step"].map(ok.groupby(trials["step"]).all()) \
            & ~steps["valid"].astype(bool)
    if "saturated" in trials:    # a queue's latency in any trial: the step was saturated
        steps["saturated"] = steps["step"].map(
            trials["saturated"].fillna(False).astype(bool).groupby(trials["step"]).any())
    for col in ("scheduling", "tail_causes"):
        if col in trials:
            steps[col] = steps["step"].map(trials.groupby("step", sort=False)[col].agg(
                lambda t: "; ".join(dict.fromkeys(v for v in t if v))))
    if "bottleneck" in trials:
        sides = trials.groupby("step", sort=False)["bottleneck"].agg(
            lambda b: "; ".join(dict.fromkeys(v for v in b if v != "none")) or "none")
        steps["bottleneck"] = steps["step"].map(sides)
    steps["pooled"] = False
    for i, step in steps["step"].items():
        if results and results.get(step):
            pool = pooled(results[step])
            steps.loc[i, ["p50_ms", "p99_ms", "p999_ms"]] = [
                pool[f"{k}_us"] / 1e3 for k in ("p50", "p99", "p999")]
            steps.loc[i, ["p99_ci_low_ms", "p99_ci_high_ms"]] = [
                pool["p99_ci_low_us"] / 1e3, pool["p99_ci_high_us"] / 1e3]
            steps.loc[i, "n"] = pool["n"]
            steps.loc[i, "pooled"] = True
    steps["p99_change_ms"] = steps["p99_ms"].diff()
    if "saturated" in steps:      # a queue's p99 is no step's: no change is drawn from it
        sat = steps["saturated"].astype(bool)
        steps.loc[sat | sat.shift(1, fill_value=False), "p99_change_ms"] = math.nan
    return steps


#: The parts of a step's mean latency (``LoadResult.split_us``), in stacking order.
SPLIT_PARTS: dict[str, str] = {
    "send_wait": "wait to be sent (queued in the client)",
    "client_serialize": "client serialize",
    "transport": "transport + TLS (+ connect and handshake per call)",
    "server_queue": "server queue",
    "server_compute": "server compute (query + encode)",
    "client_deserialize": "client deserialize (protobuf parse + rows)",
    "call": "local query (the mapped file)",
}


def part_label(part: str, step: str) -> str:
    """How ``part`` of ``step``'s latency reads in a sentence: a channel-per-call step's
    transport holds its connection and TLS handshake, and is called so."""
    if part == "transport":
        from .variants import UnknownVariantError, get

        try:
            variant = get(step)
        except UnknownVariantError:      # a step named by the caller, not a variant
            return "transport"
        if variant.channel_per_call:
            return "connect + TLS handshake + transport" if variant.tls else "connect + transport"
        return "transport + TLS" if variant.tls else "transport"
    return SPLIT_PARTS[part].split(" (")[0]


def split_means(steps: pd.DataFrame) -> pd.DataFrame:
    """Mean ms of each part (columns in ``SPLIT_PARTS`` order) by step, from the steps'
    ``split_<part>_ms`` columns; a part a step does not have is 0."""
    cols = {part: f"split_{part}_ms" for part in SPLIT_PARTS if f"split_{part}_ms" in steps}
    out = pd.DataFrame({part: steps[col].astype(float) for part, col in cols.items()})
    out.index = pd.Index(steps["step"].to_numpy(), name="step")
    return out.fillna(0.0)


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


#: The servers the story's remote steps can talk to (``story_server``).
SERVER_KINDS = ("auto", "cpp", "python")


def story_server(kind: str = "auto", **options: Any) -> tuple[Any, str]:
    """A started loopback server for the remote steps, and words saying which it is.

    ``cpp``: the C++ gRPC server (``make cpp-server``; a competent server, so the remote
    side is not made to look slower than it need be); ``python``: the lab's own
    grpcio server; ``auto`` (default): C++ when it is built, else Python.  ``options``
    (``tls``, ``index``...) go to the server."""
    if kind not in SERVER_KINDS:
        raise LootlabError(f"server kind must be one of {', '.join(SERVER_KINDS)}, "
                           f"not {kind!r}")
    from .remote.cppserver import CppServer, find_binary
    from .remote.loopback import LoopbackError, LoopbackServer

    if kind in ("auto", "cpp"):
        try:
            find_binary()
        except LoopbackError:
            if kind == "cpp":
                raise
        else:
            return CppServer(**options).start(), "the C++ gRPC server (grpc++, build/lootlab-server)"
    server = LoopbackServer(**options).start()
    why = " (the C++ server is not built: `make cpp-server`)" if kind == "auto" else ""
    return server, f"the lab's Python gRPC server (grpcio){why}"


def variant_target(variant: str, server: Any = None) -> Any:
    """What ``loadgen.run`` drives: a factory from the variant registry, reaching remote
    variants at ``server`` (a ``LoopbackServer``) or, without one, the embedded default."""
    from .variants import get, resolve
    return resolve(variant, server if server is not None and get(variant).remote else None)


def run_steps(rate: float, duration: float, *, variants: Any = None, trials: int = 1,
              warmup: float = 1.0, processes: int = 1, concurrency: int = 1, seed: int = 0,
              server: Any = None, on_step: Callable[[str], None] | None = None,
              network: Any = None, cpu_limit: float | None = None,
              **run_options: Any) -> StoryRun:
    """Run every step's variant at the same constant ``rate`` for ``duration`` seconds,
    ``trials`` times, interleaved (trial 1 of every step, then trial 2...) so slow drift on
    the machine hits every step alike.  Same schedule, workload and generator settings for
    every step, so differences are the variants'.  ``variants``: names (remote ones talk to
    ``server``, a ``LoopbackServer``, or the embedded shared one) or {step: client factory}.

    ``network`` (a ``lootlab.Network``, a number = RTT in ms, or None) puts a delaying proxy
    between every remote step and its server; ``cpu_limit`` (cores) runs every step's client
    side in a cgroup with that quota (``loadgen.run(network=, cpu_limit=)``).  The rows then
    carry ``rtt_ms``, ``cpu_limit``, ``throttled_periods`` and ``throttled_ms``.
    """
    from . import loadgen

    if trials < 1:
        raise LootlabError(f"trials must be at least 1, not {trials!r}")
    named = variants if isinstance(variants, Mapping) else {
        v: variant_target(v, server) for v in (variants or STEPS)}
    conditions = _conditions(network, cpu_limit)
    results: dict[str, list[Any]] = {v: [] for v in named}
    rows = []
    for trial in range(trials):
        for variant, target in named.items():
            if on_step:
                on_step(variant)
            res = loadgen.run(target, loadgen.constant(rate, duration, seed=seed + trial),
                              processes=processes, concurrency=concurrency, warmup=warmup,
                              label=variant, **conditions, **run_options)
            results[variant].append(res)
            rows.append(step_row(variant, res, trial))
    frame = pd.DataFrame(rows)
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
    from .conditions.network import Network

    out: dict[str, Any] = {}
    net = Network.coerce(network)
    if net is not None and not net.is_null:
        out["network"] = net
    if cpu_limit is not None:
        limit = float(cpu_limit)
        if not limit > 0:
            raise LootlabError(f"cpu_limit must be a positive number of cores, not "
                               f"{cpu_limit!r}")
        out["cpu_limit"] = limit
    return out


# The rebuild-under-load experiment lives in its own module; it is part of the story.
from .rebuildload import RebuildRun, rebuild_under_load  # noqa: E402,F401
