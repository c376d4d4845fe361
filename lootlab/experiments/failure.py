"""Failure: what each side does when its dependency breaks, measured under open-loop load.

* The file variant (``failure_file``) while S3 is down (``s3-down``: the server stopped),
  answers 5xx (``s3-500``) or holds a corrupt upload (``corrupt-upload``): the readers keep
  answering from the published index (errors stay 0) while staleness grows one second per
  second, and recovers once S3 does; a corrupt upload never reaches the index (the worker
  reports failed cycles, the generation stays).
* The remote variant (``failure_remote``) with its server killed (SIGKILL) and restarted
  mid-run (``server-killed``): the queries that fail, the time from the kill to the first
  answer after the restart, and p99 before, during and after.

``failure()`` returns a ``FailureRun``: ``rows`` one per (scenario, one-second window)
with ``ok_count``, ``error_count``, ``staleness_s`` (end to end: the age of the oldest
change the readers do not serve yet), ``unconfirmed_s`` (what the replica can know: time
since a rebuild check last confirmed its index) and ``p99_ms``; ``summary`` one per
scenario with availability and staleness side by side; ``events`` when each fault began
and ended.  The derivations are ``failure_windows`` (pure).

Suggested sizes (per scenario: ``duration`` + 5-8 s of set-up on a busy 2-core machine):
quick ``scenarios=("s3-down", "server-killed"), duration=5, rate=100, interval=0.5,
records=20_000`` (~25 s; all four ~50 s); standard ``duration=12, rate=200,
interval=1.0`` (~70 s); full ``duration=40, rate=500, interval=2.0, records=350_000``.
The rate must be one the remote client sustains on the machine (one sender): a sender
that falls behind sends queries meant for before the kill after it.
The fault starts a quarter of the way in and lasts a third of the run, leaving the rest
to show the recovery.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import failure_windows as fw
from .failure_file import FILE_SCENARIOS, frames_of, run_file_scenario

SCENARIOS = (*FILE_SCENARIOS, "server-killed")
NO_STALENESS = "n/a: the server answers from a fixed index in this scenario"


@dataclass(frozen=True)
class FailureRun:
    """What the failure experiment measured (see the module docstring)."""

    rows: pd.DataFrame
    summary: pd.DataFrame
    events: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


def failure(scenarios: tuple[str, ...] = SCENARIOS, *, duration: float = 12.0,
            rate: float = 200.0, interval: float = 1.0, fault_at: float | None = None,
            fault_for: float | None = None, warmup: float = 0.5, records: int = 50_000,
            remote_variant: str = "grpc-tls-pooled", server: str = "auto",
            seed: int = 0, progress: Callable[[str], None] | None = None) -> FailureRun:
    """Run each scenario and derive the rows: readers at ``rate`` queries/s for
    ``duration`` seconds; for the file, a fresh ``records``-row world rebuilt from S3 by
    a check every ``interval`` seconds (and changed as often); for the remote variant, its
    server on the default index.  The fault starts ``fault_at`` seconds into the measured
    run and lasts ``fault_for`` (default: from a quarter of the way in, for a third)."""
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    fault_at = duration / 4 if fault_at is None else fault_at
    fault_for = duration / 3 if fault_for is None else fault_for
    if not 0 < fault_at < fault_at + fault_for < duration:
        raise ValueError(f"the fault ({fault_at:g} s + {fault_for:g} s) must lie inside the "
                         f"{duration:g} s run")
    say = progress or (lambda _: None)
    load_before = os.getloadavg()
    rows, summaries, events = [], [], []
    for scenario in scenarios:
        say(f"failure: {scenario} ({duration:g} s at {rate:g}/s, fault at {fault_at:g} s "
            f"for {fault_for:g} s)")
        if scenario == "server-killed":
            from .failure_remote import run_server_killed
            got = run_server_killed(variant=remote_variant, duration=duration, rate=rate,
                                    fault_at=fault_at, fault_for=fault_for, warmup=warmup,
                                    server=server, seed=seed)
            r, s, e = derive_remote(got, duration)
        else:
            got = run_file_scenario(scenario, duration=duration, rate=rate, interval=interval,
                                    fault_at=fault_at, fault_for=fault_for, warmup=warmup,
                                    records=records, seed=seed)
            r, s, e = derive_file(got, duration)
        rows.append(r)
        summaries.append(s)
        events.append(e)
    meta = {"scenarios": list(scenarios), "duration_s": duration, "rate_per_s": rate,
            "interval_s": interval, "fault_at_s": fault_at, "fault_for_s": fault_for,
            "warmup_s": warmup, "records": records, "remote_variant": remote_variant,
            "file_index": f"a fresh {records:,}-row world per scenario",
            "remote_index": "the default index",
            "server": server, "seed": seed, "window_s": 1.0,
            "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg())}
    return FailureRun(pd.concat(rows, ignore_index=True),
                      pd.DataFrame(summaries), pd.concat(events, ignore_index=True), meta)


def _base(got: dict[str, Any], duration: float) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The windows every scenario has: counts and p99 per second of the measured run.

    One sender sends the schedule in order and never skips, so the i-th measured query
    is the schedule's i-th: each is put in the window of its intended send time (as
    ``loadgen``'s per-second histograms are), and the run's wall-clock start is the
    earliest ``start - intended`` (a sender is never early).  ``got["origin"]`` becomes
    that start."""
    from .grid import schedule_of

    load = got["load"]
    offsets = schedule_of("constant", got["rate"], duration, got["seed"]).offsets / 1e9
    calls = got["calls"]
    n_warm = int(load.counts.get("warmup_requests", 0))
    measured = calls.iloc[n_warm:n_warm + len(offsets)]
    intended = offsets[:len(measured)]
    if len(measured):
        got["origin"] = float(np.min(measured["start"].to_numpy(float) - intended))
    win = fw.count_windows(intended, measured["ok"].to_numpy(bool), 0.0, duration)
    win["p99_ms"] = fw.p99_windows(load.intervals, len(win))
    offered = int(load.counts.get("scheduled", len(offsets)))
    ok = int(win["ok_count"].sum())
    head = {"scenario": got["scenario"], "variant": got["variant"], "kind": got["kind"]}
    summary = {**head, "fault": got["fault"], "offered_count": offered, "ok_count": ok,
               "error_count": int(win["error_count"].sum()),
               "availability": fw.availability(ok, offered)}
    return win.assign(**head), summary


def _finish(win: pd.DataFrame, summary: dict[str, Any], start_s: float, end_s: float,
            load: Any) -> None:
    win["phase"] = fw.phase_of(win, start_s, end_s)
    summary.update(fw.p99_phases(load.intervals, list(win["phase"])))
    summary["p99_ms"] = fw.p99_of(list(load.intervals))


def derive_file(got: dict[str, Any], duration: float) -> tuple[pd.DataFrame, dict[str, Any],
                                                              pd.DataFrame]:
    """Rows, summary and events of a file scenario from its logs."""
    win, summary = _base(got, duration)
    origin = got["origin"]
    f = frames_of(got["log"], got["versions"])
    ev = f["events"]
    start = float(ev["t"].iloc[0]) if len(ev) else math.nan
    end = float(ev["t"].iloc[-1]) if len(ev) > 1 else math.nan
    uploads = f["uploads"]
    bad = uploads[uploads["kind"] == "corrupt"]["t"]
    if got["scenario"] == "corrupt-upload":
        # the writer's switch is not the fault: the first corrupt object in S3 is
        start = float(bad.min()) if len(bad) else math.nan
    win["staleness_s"] = fw.window_max(lambda t: fw.staleness_at(t, f["changes"], f["served"]),
                                       origin, win, extra=f["served"]["t"].to_numpy())
    cycles = f["cycles"]
    good_cycles = cycles[cycles["outcome"] != "failed"]["t"].to_numpy()
    win["unconfirmed_s"] = fw.window_max(lambda t: fw.unconfirmed_at(t, cycles), origin,
                                         win, extra=good_cycles)
    win["staleness_note"] = ""
    fresh = fw.fresh_again(f["changes"], f["served"], end) if math.isfinite(end) else math.nan
    _finish(win, summary, start - origin, (fresh if math.isfinite(fresh) else end) - origin,
            got["load"])
    # cycles that began once the fault was in place and ended before it was mended
    during = cycles[(cycles["t_start"] >= start) & (cycles["t"] <= end)]
    served = f["served"]
    at_start = fw.served_at(np.array([start]), served)
    gen_start = served[served["t"] <= start]["generation"]
    gen_end = served[served["t"] <= end]["generation"]
    summary.update({
        "staleness_note": "",
        "max_staleness_s": float(win["staleness_s"].max()),
        "staleness_before_s": float(win[win["phase"] == "before"]["staleness_s"].max()),
        "max_unconfirmed_s": float(win["unconfirmed_s"].max()),
        "time_to_recover_s": fresh - end,
        "recover_means": "from the fault's end until readers served every change made "
                         "before it",
        "fault_start_s": start - origin, "fault_end_s": end - origin,
        "cycles_during_fault": len(during),
        "failed_cycles": int((during["outcome"] == "failed").sum()),
        "builds_during_fault": int((during["outcome"] == "built").sum()),
        "generation_at_fault_start": int(gen_start.iloc[-1]) if len(gen_start) else None,
        "generation_at_fault_end": int(gen_end.iloc[-1]) if len(gen_end) else None,
        "change_served_at_fault_start": float(at_start[0]),
        "uploads_failed": int((uploads["kind"] == "failed").sum()),
        "uploads_corrupt": len(bad),
        "first_cycle_error": next((e for e in during["error"] if e), ""),
    })
    events = pd.DataFrame({"scenario": got["scenario"], "event": ev["event"],
                           "t_s": ev["t"] - origin})
    if len(bad):
        events = pd.concat([events, pd.DataFrame({"scenario": [got["scenario"]],
                                                  "event": ["first corrupt object in S3"],
                                                  "t_s": [float(bad.min()) - origin]})],
                           ignore_index=True).sort_values("t_s", ignore_index=True)
    return win, summary, events


def derive_remote(got: dict[str, Any], duration: float) -> tuple[pd.DataFrame, dict[str, Any],
                                                                pd.DataFrame]:
    """Rows, summary and events of the server-killed scenario from its logs."""
    win, summary = _base(got, duration)
    origin = got["origin"]
    killed = got["killed_at"] if got["killed_at"] is not None else math.nan
    ready = got["ready_at"] if got["ready_at"] is not None else math.nan
    back = fw.first_ok_after(got["calls"], killed) if math.isfinite(killed) else math.nan
    win["staleness_s"] = np.nan
    win["unconfirmed_s"] = np.nan
    win["staleness_note"] = NO_STALENESS
    _finish(win, summary, killed - origin, (back if math.isfinite(back) else ready) - origin,
            got["load"])
    summary.update({
        "max_staleness_s": math.nan, "staleness_before_s": math.nan,
        "max_unconfirmed_s": math.nan,
        "staleness_note": NO_STALENESS,
        "time_to_recover_s": back - killed,
        "recover_means": "from the kill until the first answer after the restart",
        "restart_s": ready - killed, "reconnect_s": back - ready,
        **_outside_outage(got["calls"], killed, got.get("dead_at"), ready, back),
        "fault_start_s": killed - origin, "fault_end_s": ready - origin,
        "server": got.get("server", ""),
    })
    events = pd.DataFrame({"scenario": got["scenario"], "event": ["kill", "restarted",
                                                                  "first answer"],
                           "t_s": [killed - origin, ready - origin, back - origin]})
    return win, summary, events


def _outside_outage(calls: pd.DataFrame, killed: float, dead: float | None, ready: float,
                    back: float) -> dict[str, int]:
    """What the windows cannot show when the sender runs late (a query intended before
    the kill may be sent after it): by send time, the queries that failed before the kill,
    that failed once answers were back, and that were answered while the server was down
    (all three should be 0)."""
    ok = calls["ok"].astype(bool)
    dead = killed if dead is None else dead
    return {"errors_before_fault": int((~ok & (calls["end"] < killed)).sum()),
            "errors_after_recovery": int((~ok & (calls["start"] >= back)).sum())
            if math.isfinite(back) else 0,
            "answered_while_down": int((ok & (calls["start"] >= dead)
                                        & (calls["start"] < ready)).sum())}


def availability_table(run: FailureRun) -> pd.DataFrame:
    """The one table with availability and staleness side by side (one row per
    scenario): what the decision page shows."""
    cols = ["scenario", "variant", "availability", "error_count", "staleness_before_s",
            "max_staleness_s", "time_to_recover_s", "recover_means", "p99_before_ms",
            "p99_during_ms", "p99_after_ms"]
    return run.summary[[c for c in cols if c in run.summary]].copy()


__all__ = ["SCENARIOS", "FailureRun", "availability_table", "derive_file", "derive_remote",
           "failure"]
