"""What-if runs: the story's variants under production conditions, measured on this machine.

``rtt_sweep`` runs each variant at one offered rate through a delaying TCP proxy per
round-trip time (one loopback server for the whole sweep; ``lootlab.conditions.proxies``
starts one proxy per RTT in front of it); ``cpu_sweep`` runs them with the client side
(generator + client) in a cgroup with a CPU quota.  Both return one row per (variant,
condition) with the trials pooled into one histogram: cells of ``experiments.grid``, rows
``experiments.rows.Measurement`` (``pool``).
``decision_table`` turns those rows into the answer a reader brings: at this RTT or this
CPU limit, which variants fit my p99 budget, and what does each step of the story buy.

Measuring only: rows are plain DataFrames; ``lootlab.plots.conditions`` draws them and the
notebook (06-conditions) renders the table for people.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from ..errors import LootlabError
from ..loadgen.units import plural
from .decision import decision_table
from .grid import Cell, GridRun, run_grid
from .rows import Measurement, pool


def _steps() -> list[str]:
    """The story's steps in order (``experiments.story.STEPS``): what "each step buys"
    compares."""
    from .story import STEPS
    return list(STEPS)


#: The write-up's fixed figures drawn as reference lines (``lootlab.experiments.story.WRITEUP``).
PAINT_BUDGET_MS = 120.0   # players complained past it
TARGET_CUT_MS = 50.0      # what the team needed off p99


def _remote(variant: str) -> bool:
    from ..variants import UnknownVariantError, get
    try:
        return bool(get(variant).remote)
    except UnknownVariantError:
        return False


def _cell(name: str, target: Any, concurrency: int, key: Any,
          **conditions: Any) -> Cell:
    """One (variant, condition) of a what-if grid.  ``concurrency`` senders serve a remote
    variant; a local one (``mmap``) gets one: its reads hold the GIL, so more sender
    threads in the process only queue behind each other and its p99 would measure the
    generator, not the read."""
    return Cell(name, target, key=key, title=f"{name} ({_label(conditions)})",
                options={**conditions, "concurrency": concurrency if _remote(name) else 1})


def _run(cells: list[Cell], *, rate: float, duration: float, trials: int, warmup: float,
         seed: int, on_run: Callable[[str], None] | None, results: list | None,
         run_options: Mapping[str, Any]) -> GridRun:
    """Every cell ``trials`` times, interleaved (``experiments.grid``); ``results`` (a
    list) collects each ``LoadResult`` as it comes (a progress bar counts them)."""
    def keep(cell: Cell, trial: int, res: Any) -> None:
        if results is not None:
            results.append(res)
    return run_grid(cells, duration=duration, trials=trials, rate=rate, seed=seed,
                    on_run=on_run, after=keep, warmup=warmup, **run_options)


def _label(conditions: Mapping[str, Any]) -> str:
    net, cpu = conditions.get("network"), conditions.get("cpu_limit")
    words = [net.label if net is not None else "loopback"]
    words.append("no CPU limit" if cpu is None else f"CPU limit {plural(cpu, 'core')}")
    return ", ".join(words)


def cpu_limit_unavailable() -> str | None:
    """Why this machine (or this lootlab) cannot run the client side under a CPU quota, in
    one line; None when it can (``cgroup.cgroup_unavailable``)."""
    import inspect

    from .. import loadgen

    if "cpu_limit" not in inspect.signature(loadgen.run).parameters:
        return "this lootlab's loadgen.run takes no cpu_limit"
    from ..conditions.cgroup import cgroup_unavailable
    return cgroup_unavailable()


def _server(server: Any, server_kind: str) -> tuple[Any, bool]:
    if server is not None:
        return server, False
    from ..targets import start_server
    return start_server(server_kind)[0], True


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
    from ..targets import client_factory, network_of

    names = list(variants) if variants is not None else _steps()
    rtts = [float(r) for r in rtts_ms]
    if not rtts:
        raise LootlabError("rtt_sweep needs at least one RTT")
    srv, started = _server(server, server_kind) if any(map(_remote, names)) else (None, False)
    try:
        cells = []
        for name in names:
            if not _remote(name):
                at = rtts[:1] if local_once else rtts
                cells += [_cell(name, client_factory(name), concurrency, rtt) for rtt in at]
                continue
            factory = client_factory(name, srv)
            for rtt in rtts:
                cells.append(_cell(name, factory, concurrency, rtt, network=network_of(rtt)))
        grid = _run(cells, rate=rate, duration=duration, trials=trials, warmup=warmup,
                    seed=seed, on_run=on_run, results=results, run_options=run_options)
    finally:
        if started:
            srv.stop()
    rows = [pool(runs, rtt_ms=cell.key) for cell, runs in zip(grid.cells, grid.results)]
    for name in names:            # a local variant once measured stands at every RTT
        if not _remote(name) and local_once:
            base = next(r for r in rows if r.variant == name)
            rows += [base.with_context(rtt_ms=rtt, measured_once=True) for rtt in rtts[1:]]
    frame = Measurement.to_frame(rows)
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
    from ..targets import client_factory, network_of

    names = list(variants) if variants is not None else _steps()
    caps = [None if c is None else float(c) for c in limits]
    if not caps:
        raise LootlabError("cpu_sweep needs at least one CPU limit")
    net = network_of(network)
    srv, started = _server(server, server_kind) if any(map(_remote, names)) else (None, False)
    try:
        cells = []
        for name in names:
            remote = _remote(name)
            target = client_factory(name, srv)
            cells += [_cell(name, target, concurrency, cap, network=net if remote else None,
                            cpu_limit=cap) for cap in caps]
        grid = _run(cells, rate=rate, duration=duration, trials=trials, warmup=warmup,
                    seed=seed, on_run=on_run, results=results, run_options=run_options)
    finally:
        if started:
            srv.stop()
    return Measurement.to_frame(
        pool(runs, cpu_limit=math.nan if cell.key is None else cell.key)
        for cell, runs in zip(grid.cells, grid.results))


def with_unlimited(cpu_rows: pd.DataFrame, rtt_rows: pd.DataFrame | None) -> pd.DataFrame:
    """The CPU sweep's rows and its "no limit" point (``cpu_limit`` NaN), taken from the RTT
    sweep: a variant's loopback row there (RTT 0, no cgroup) is the run a CPU sweep without
    a quota would make at the same offered rate, so the chart draws "none" without measuring
    it twice.  Only where the CPU sweep has no unlimited row of its own, the RTT sweep has a
    loopback row of the variant, and both sweeps offered the same rate; nothing else added."""
    if rtt_rows is None or not len(rtt_rows) or cpu_rows["cpu_limit"].isna().any():
        return cpu_rows
    rates = set(cpu_rows["offered_per_s"].round(6)) if "offered_per_s" in cpu_rows else set()
    loop = rtt_rows[(rtt_rows["rtt_ms"].fillna(0.0) == 0.0)
                    & rtt_rows["variant"].isin(set(cpu_rows["variant"]))]
    if "offered_per_s" in loop:
        loop = loop[loop["offered_per_s"].round(6).isin(rates)]
    if not len(loop):
        return cpu_rows
    free = loop.assign(cpu_limit=math.nan, throttled_share=0.0)
    return pd.concat([cpu_rows, free], ignore_index=True)


__all__ = ["PAINT_BUDGET_MS", "TARGET_CUT_MS", "cpu_limit_unavailable", "cpu_sweep",
           "decision_table", "rtt_sweep", "with_unlimited"]
