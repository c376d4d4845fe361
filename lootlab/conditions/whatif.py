"""What-if runs: the story's variants under production conditions, measured on this machine.

``rtt_sweep`` runs each variant at one offered rate through a delaying TCP proxy per
round-trip time (one loopback server for the whole sweep; ``lootlab.conditions.proxies``
starts one proxy per RTT in front of it); ``cpu_sweep`` runs them with the client side
(generator + client) in a cgroup with a CPU quota.  Both return one row per (variant,
condition) with the trials pooled into one histogram (``loadgen.pooling``).
``decision_table`` turns those rows into the answer a reader brings: at this RTT or this
CPU limit, which variants fit my p99 budget, and what does each step of the story buy.

Measuring only: rows are plain DataFrames; ``lootlab.plots.conditions`` draws them and the
notebook (06-conditions) renders the table for people.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from ..errors import LootlabError
from .decision import decision_table, fit, p99_band, saturated_text, step_change


def _steps() -> list[str]:
    """The story's steps in order (``lootlab.story.STEPS``): what "each step buys" compares."""
    from ..story import STEPS
    return list(STEPS)


#: The write-up's fixed figures drawn as reference lines (``lootlab.story.WRITEUP``).
PAINT_BUDGET_MS = 120.0   # players complained past it
TARGET_CUT_MS = 50.0      # what the team needed off p99


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def pooled_row(results: Sequence[Any]) -> dict[str, Any]:
    """One (variant, condition) from its trials' ``LoadResult``s: p50/p99 of the trials
    pooled into one histogram with each one's 95 % interval, the lowest and highest trial's
    p99, rates, health, and the conditions and throttling counters the results carry
    (``result.conditions`` / ``result.throttle``; NaN where a result has none).

    ``saturated`` (any trial offered more than the variant sustains: the row's latency is a
    queue's), ``capacity_per_s`` (the smallest capacity a trial measured, NaN unknown),
    ``generator_error_p99_ms`` (the largest trial's own send error p99: the instrument's
    resolution) and ``scheduling`` (how the senders were scheduled) travel with it."""
    from ..loadgen.pooling import pooled

    if not results:
        raise LootlabError("pooled_row needs at least one result")
    pool = pooled(results)
    first = results[0]
    p99s = [r.latency_us(99) / 1e3 for r in results]
    ok = [bool(r.health.valid) or bool(getattr(r.health, "upper_bound", False))
          for r in results]
    valid = all(bool(r.health.valid) for r in results)
    reasons = list(dict.fromkeys(x for r in results for x in r.health.reasons))
    sides = list(dict.fromkeys(r.health.bottleneck for r in results
                               if r.health.bottleneck != "none"))
    cond = dict(getattr(first, "conditions", None) or {})
    row: dict[str, Any] = {
        "variant": first.variant, "trials": len(results), "n": int(pool["n"]),
        "offered_per_s": float(first.offered_rate),
        "achieved_per_s": min(float(r.achieved_rate) for r in results),
        "requests": sum(int(r.requests) for r in results),
        "errors": sum(int(r.counts.get("failed", 0)) for r in results),
        "valid": valid, "upper_bound": (not valid) and all(ok),
        "health": "; ".join(reasons) or "ok", "bottleneck": "; ".join(sides) or "none",
        "p99_ms_lo": min(p99s), "p99_ms_hi": max(p99s),
        "rtt_ms": _num(cond.get("rtt_ms", 0.0) if cond else 0.0),
        "jitter_ms": _num(cond.get("jitter_ms", 0.0) if cond else 0.0),
        "cpu_limit": _num(cond.get("cpu_limit")),
        "cpu_limit_applied": bool(cond.get("cpu_limit_applied", False)),
        "cpu_limit_note": str(cond.get("cpu_limit_note") or ""),
    }
    for key in ("p50", "p99"):
        row[f"{key}_ms"] = pool[f"{key}_us"] / 1e3
        row[f"{key}_ci_low_ms"] = pool[f"{key}_ci_low_us"] / 1e3
        row[f"{key}_ci_high_ms"] = pool[f"{key}_ci_high_us"] / 1e3
        row[f"{key}_enough"] = bool(pool[f"{key}_enough"])
    row.update(_instrument(results))
    throttles = [getattr(r, "throttle", None) for r in results]
    if all(t for t in throttles):
        for key in ("periods", "throttled_periods", "throttled_ms"):
            row[key] = float(sum(_num(t.get(key)) for t in throttles))
        row["throttled_share"] = (row["throttled_periods"] / row["periods"]
                                  if row["periods"] > 0 else math.nan)
    else:
        row.update(periods=math.nan, throttled_periods=math.nan, throttled_ms=math.nan,
                   throttled_share=math.nan)
    return row


def _instrument(results: Sequence[Any]) -> dict[str, Any]:
    """Saturation and the generator's resolution over a row's trials (see ``pooled_row``)."""
    from ..story import generator_error_us, saturation, scheduling

    sat = [saturation(r) for r in results]
    capacities = [c for _, c in sat if math.isfinite(c)]
    errors = [e for e in map(generator_error_us, results) if math.isfinite(e)]
    return {"saturated": any(s for s, _ in sat),
            "capacity_per_s": min(capacities) if capacities else math.nan,
            "generator_error_p99_ms": max(errors) / 1e3 if errors else math.nan,
            "scheduling": "; ".join(dict.fromkeys(t for t in map(scheduling, results) if t))}


def _remote(variant: str) -> bool:
    from ..variants import UnknownVariantError, get
    try:
        return bool(get(variant).remote)
    except UnknownVariantError:
        return False


def _measure(plan: list[tuple[str, Any, dict[str, Any]]], *, rate: float, duration: float,
             trials: int, warmup: float, concurrency: int, seed: int,
             on_run: Callable[[str], None] | None, results: list | None,
             run_options: Mapping[str, Any]) -> dict[int, list[Any]]:
    """Run every (label, target, conditions) of ``plan`` ``trials`` times, interleaved
    (trial 1 of every cell, then trial 2...), so drift on the machine hits every cell alike.
    ``concurrency`` senders serve remote variants; a local one (``mmap``) gets one: its
    reads hold the GIL, so more sender threads in the process only queue behind each other
    and its p99 would measure the generator, not the read."""
    from .. import loadgen

    if trials < 1:
        raise LootlabError(f"trials must be at least 1, not {trials!r}")
    if not rate > 0 or not duration > 0:
        raise LootlabError(f"rate and duration must be positive, not {rate!r}, {duration!r}")
    out: dict[int, list[Any]] = {i: [] for i in range(len(plan))}
    for trial in range(trials):
        for i, (label, target, conditions) in enumerate(plan):
            if on_run:
                on_run(f"{label} ({_label(conditions)})")
            res = loadgen.run(target, loadgen.constant(rate, duration, seed=seed + trial),
                              concurrency=concurrency if _remote(label) else 1,
                              warmup=warmup, label=label,
                              **{k: v for k, v in conditions.items() if v is not None},
                              **run_options)
            out[i].append(res)
            if results is not None:
                results.append(res)
    return out


def _label(conditions: Mapping[str, Any]) -> str:
    net, cpu = conditions.get("network"), conditions.get("cpu_limit")
    words = [net.label if net is not None else "loopback"]
    words.append("no CPU limit" if cpu is None else f"CPU limit {cpu:g} cores")
    return ", ".join(words)


def cpu_limit_unavailable() -> str | None:
    """Why this machine (or this lootlab) cannot run the client side under a CPU quota, in
    one line; None when it can (``cgroup.cgroup_unavailable``)."""
    import inspect

    from .. import loadgen

    if "cpu_limit" not in inspect.signature(loadgen.run).parameters:
        return "this lootlab's loadgen.run takes no cpu_limit"
    from .cgroup import cgroup_unavailable
    return cgroup_unavailable()


def _server(server: Any, server_kind: str) -> tuple[Any, bool]:
    if server is not None:
        return server, False
    from ..story import story_server
    return story_server(server_kind)[0], True


def rtt_sweep(variants: Iterable[str] | None = None,
              rtts_ms: Iterable[float] = (0, 0.5, 1, 2, 5, 10, 20), rate: float = 50.0,
              duration: float = 5.0, trials: int = 1, *, warmup: float = 0.5,
              concurrency: int = 8, server: Any = None, server_kind: str = "auto",
              seed: int = 0, local_once: bool = True,
              on_run: Callable[[str], None] | None = None, results: list | None = None,
              **run_options: Any) -> pd.DataFrame:
    """p50/p99 (each with its 95 % interval), valid/health, per variant and RTT at one
    offered ``rate``: one row per (variant, RTT), trials pooled.

    Remote variants talk to one loopback ``server`` (started here, and stopped, when none is
    given) through a delaying proxy per RTT (``loadgen.run(network=)``).  A local variant
    (``mmap``) crosses no network: with ``local_once`` it is measured once and its row
    repeated at each RTT (``measured_once`` True), which saves a run per RTT.
    ``concurrency`` senders per run let a channel-per-call variant, which pays several
    round trips per request, keep the offered rate at a large RTT (each sender waits for
    its answer).  ``results`` (a list) collects every ``LoadResult``."""
    from ..variants import resolve
    from .network import Network

    names = list(variants) if variants is not None else _steps()
    rtts = [float(r) for r in rtts_ms]
    if not rtts:
        raise LootlabError("rtt_sweep needs at least one RTT")
    srv, started = _server(server, server_kind) if any(map(_remote, names)) else (None, False)
    try:
        plan, where = [], []
        for name in names:
            if not _remote(name):
                at = rtts[:1] if local_once else rtts
                for rtt in at:
                    plan.append((name, name, {}))
                    where.append((name, rtt))
                continue
            factory = resolve(name, srv)
            for rtt in rtts:
                net = Network(rtt_ms=rtt)
                plan.append((name, factory, {"network": None if net.is_null else net}))
                where.append((name, rtt))
        measured = _measure(plan, rate=rate, duration=duration, trials=trials, warmup=warmup,
                            concurrency=concurrency, seed=seed, on_run=on_run,
                            results=results, run_options=run_options)
    finally:
        if started:
            srv.stop()
    rows = []
    for i, (name, rtt) in enumerate(where):
        row = pooled_row(measured[i])
        row["rtt_ms"], row["measured_once"] = rtt, False
        rows.append(row)
    for name in names:            # a local variant once measured stands at every RTT
        if not _remote(name) and local_once:
            base = next(r for r in rows if r["variant"] == name)
            rows += [{**base, "rtt_ms": rtt, "measured_once": True} for rtt in rtts[1:]]
    frame = pd.DataFrame(rows)
    order = {n: i for i, n in enumerate(names)}
    return frame.sort_values(["rtt_ms", "variant"], key=lambda c: c.map(order)
                             if c.name == "variant" else c, kind="stable").reset_index(drop=True)


def cpu_sweep(variants: Iterable[str] | None = None,
              limits: Iterable[float | None] = (0.25, 0.5, 1, 2), rate: float = 50.0,
              duration: float = 5.0, trials: int = 1, *, warmup: float = 0.5,
              concurrency: int = 8, network: Any = None, server: Any = None,
              server_kind: str = "auto", seed: int = 0,
              on_run: Callable[[str], None] | None = None, results: list | None = None,
              **run_options: Any) -> pd.DataFrame:
    """p99 (with its interval) and the throttling counters (periods, throttled periods,
    throttled ms, their share) per variant and CPU limit (cores; None: no limit) at one
    offered ``rate``, the client side (generator + client) in a cgroup with that quota
    (``loadgen.run(cpu_limit=)``).  ``network`` (a ``Network``, a number = RTT ms, or None)
    applies to every remote run.  Where the machine cannot limit CPU, each row says so in
    ``cpu_limit_applied`` / ``cpu_limit_note`` (the runs went unlimited)."""
    from ..variants import resolve
    from .network import Network

    names = list(variants) if variants is not None else _steps()
    caps = [None if c is None else float(c) for c in limits]
    if not caps:
        raise LootlabError("cpu_sweep needs at least one CPU limit")
    net = Network.coerce(network)
    net = None if net is None or net.is_null else net
    srv, started = _server(server, server_kind) if any(map(_remote, names)) else (None, False)
    try:
        plan, where = [], []
        for name in names:
            remote = _remote(name)
            target = resolve(name, srv) if remote else name
            for cap in caps:
                plan.append((name, target, {"network": net if remote else None,
                                            "cpu_limit": cap}))
                where.append((name, cap))
        measured = _measure(plan, rate=rate, duration=duration, trials=trials, warmup=warmup,
                            concurrency=concurrency, seed=seed, on_run=on_run,
                            results=results, run_options=run_options)
    finally:
        if started:
            srv.stop()
    rows = []
    for i, (name, cap) in enumerate(where):
        row = pooled_row(measured[i])
        row["cpu_limit"] = math.nan if cap is None else cap
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["PAINT_BUDGET_MS", "TARGET_CUT_MS", "cpu_limit_unavailable", "cpu_sweep", "decision_table", "fit",
           "p99_band", "pooled_row", "rtt_sweep", "saturated_text", "step_change"]
