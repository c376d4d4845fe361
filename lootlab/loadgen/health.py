"""The health verdict: is a run a measurement of the system, or of the generator's limits?

Kept apart from ``results`` (which merges and stores) because the thresholds are policy.
Validity is graded by the error a fault can cause: the generator's own lag bounds how much it
can have inflated each percentile, and only a bound large enough to change a conclusion (or
a schedule that was not kept) makes a run INVALID; a smaller one is a warning that says the
bound.  The verdict also says which side was the bottleneck, with its evidence.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from . import serverload
from .units import plural

SEND_LAG_WARN_US = 1_000.0
# The generator's own lag (a sender free to send, and late) is taken out of the latency
# (``summary``): it is the instrument's resolution, and above GENERATOR_LAG_SHARE of the
# figure a warning says how coarse.  Under a CPU limit it stays in (the generator is part
# of the throttled replica) and bounds how much it inflated the latency at p: above
# GENERATOR_LAG_INVALID_SHARE of the figure (overstated 2x: the size of the differences a
# report calls) the run is INVALID, unless under the floor.
GENERATOR_LAG_SHARE = 0.10
GENERATOR_LAG_INVALID_SHARE = 0.50
GENERATOR_LAG_FLOOR_US = 100.0
JUDGED_PERCENTILES = (50.0, 99.0)
BOUND_PERCENTILES = (50.0, 90.0, 99.0, 99.9)
# a worker process at or above this share of one core is CPU-bound (its threads share a GIL)
CPU_BOUND_CORES = 0.5
# a busy sender whose calls take at least this share of its busy time was waiting on answers
BLOCKED_SHARE = 0.5
BOTTLENECKS = ("none", "server", "generator", "machine", "cpu-limit")
# a CPU-limit cgroup throttled in at least this share of its periods ran at its quota
THROTTLE_BINDING_SHARE = 0.5
# A queue, not a variant: a sender busy with answers this share of the offered time is
# saturated (an open-loop queue at utilization 1 grows without end, and close to it does
# not settle within a run); and where most requests waited longer to be sent than they
# took to answer (the median of the system's queue above the median service time, and
# above QUEUE_FLOOR_US), the figures describe the queue, not the variant.
SATURATED_UTILIZATION = 0.95
QUEUE_FLOOR_US = 100.0


@dataclass(frozen=True)
class Health:
    """Whether the numbers describe the system, or the generator's own limits.

    ``valid`` is False when any ``reasons`` exist; ``warnings`` do not invalidate the run.
    ``lag_bounds`` pairs each percentile with the most the generator's own lag can have
    added to it (us); ``bottleneck`` is one of ``BOTTLENECKS`` and ``evidence`` says why.
    ``upper_bound``: INVALID only because the generator's own lag may make up most of a
    percentile (the schedule was kept): the figures are then upper bounds of the system's,
    so a comparison in which this run is the faster side still holds, as a bound.
    """

    valid: bool
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    bottleneck: str = "none"
    evidence: tuple[str, ...] = ()
    lag_bounds: tuple[tuple[float, float], ...] = ()
    upper_bound: bool = False
    saturated: bool = False
    capacity_per_s: float = math.nan

    @property
    def lag_bound_us(self) -> float:
        """The p99 bound: how much of the latency p99 may be the generator's own delay."""
        return dict(self.lag_bounds).get(99.0, math.nan)

    def __str__(self) -> str:
        head = "VALID" if self.valid else "INVALID"
        if self.bottleneck != "none":
            head += f" (bottleneck: {self.bottleneck})"
        lines = [head] + [f"  - {r}" for r in self.reasons] + \
            [f"  ~ {w}" for w in self.warnings] + [f"  > {e}" for e in self.evidence]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "reasons": list(self.reasons),
                "warnings": list(self.warnings), "bottleneck": self.bottleneck,
                "evidence": list(self.evidence),
                "lag_bound_us": {f"{p:g}": b for p, b in self.lag_bounds},
                "upper_bound": self.upper_bound, "saturated": self.saturated,
                "capacity_per_s": None if math.isnan(self.capacity_per_s)
                else self.capacity_per_s}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Health":
        """The inverse of ``to_dict`` (results saved before the bounds existed load too)."""
        bounds = tuple((float(p), float(b) if b is not None else math.nan)
                       for p, b in d.get("lag_bound_us", {}).items())
        capacity = d.get("capacity_per_s")
        return cls(d["valid"], tuple(d["reasons"]), tuple(d["warnings"]),
                   d.get("bottleneck", "none"), tuple(d.get("evidence", ())), bounds,
                   bool(d.get("upper_bound", False)), bool(d.get("saturated", False)),
                   math.nan if capacity is None else float(capacity))


def _us(v: float, like: float | None = None) -> str:
    """Microseconds as text, in ms from 1 ms up (or in the unit of ``like``)."""
    return f"{v / 1e3:,.1f} ms" if (v if like is None else like) >= 1_000 else f"{v:,.0f} us"


def throttle_text(throttle: dict[str, Any]) -> str:
    """"CPU limit: throttled N of M periods (X ms)", the cause a verdict names."""
    return (f"CPU limit: throttled {int(throttle['throttled_periods']):,} of "
            f"{int(throttle['periods']):,} periods ({float(throttle['throttled_ms']):,.0f} ms)")


def limit_explains(throttle: dict[str, Any] | None, window_s: float) -> set[float]:
    """The judged percentiles whose lateness the cgroup's throttling accounts for.  A
    throttled group stalls everything it runs until its next period, so the stalls hold
    back at least the share of requests they cover: when that share reaches the tail above
    p (1 % for p99), the lag at p follows from the limit.  When the quota ran out in at
    least ``THROTTLE_BINDING_SHARE`` of the periods, the group ran at its limit: the queue
    that builds behind the stalls is the limit's too, at every percentile."""
    if not throttle or not throttle.get("throttled_periods") or window_s <= 0:
        return set()
    if float(throttle.get("throttled_share", 0.0)) >= THROTTLE_BINDING_SHARE:
        return set(JUDGED_PERCENTILES)
    stalled = min(1.0, float(throttle["throttled_ms"]) / 1e3 / window_s)
    return {p for p in JUDGED_PERCENTILES if stalled >= 1.0 - p / 100.0}


def _grade_resolution(latency_us: dict[float, float], bounds: dict[float, float],
                      warnings: list[str]) -> None:
    """A warning where the generator's own error, already taken out of the latency, is a
    large share of the p99 (the instrument is coarse for this figure): never a reason,
    since a late generator no longer inflates what is reported."""
    lat, bound = latency_us.get(99.0, math.nan), bounds.get(99.0, math.nan)
    if lat > 0 and bound > GENERATOR_LAG_FLOOR_US and bound > GENERATOR_LAG_SHARE * lat:
        warnings.append(f"the generator's own send error reached {_us(bound, lat)} at p99 "
                        f"({bound / lat:.0%} of the p99 {_us(lat)}): taken out of the "
                        f"latency, but the instrument is coarse here (other work held the "
                        f"cores: run the senders real-time, or on a quieter machine)")


def saturation(utilization: float, queue_p50_us: float,
               service_p50_us: float) -> str:
    """Why the offered rate is beyond what the variant serves (a queue, not the variant's
    latency), or "" when it is not."""
    if utilization >= SATURATED_UTILIZATION:
        return f"its busiest sender was busy with answers {utilization:.0%} of the time"
    if queue_p50_us > max(service_p50_us, QUEUE_FLOOR_US):
        return (f"most requests waited longer to be sent (median {_us(queue_p50_us)}) than "
                f"they took to answer (median {_us(service_p50_us)})")
    return ""


def _grade_lag(latency_us: dict[float, float], bounds: dict[float, float],
               reasons: list[str], warnings: list[str], excused: set[float] = frozenset(),
               cause: str = "") -> bool:
    """Reasons/warnings from the lag bound at the judged percentiles; True when the bound
    can change a conclusion (it invalidates the run).  At the ``excused`` percentiles the
    lateness is the CPU limit's (``cause``): a warning, the run stays valid."""
    material = False
    for p in JUDGED_PERCENTILES:
        lat, bound = latency_us.get(p, math.nan), bounds.get(p, math.nan)
        if not (lat > 0 and bound > 0):
            continue
        share = bound / lat
        text = (f"p{p:g} {_us(lat)} may include up to {_us(bound, lat)} ({share:.0%}) of the "
                f"generator's own delay")
        if p in excused and share > GENERATOR_LAG_SHARE:
            warnings.append(f"{cause}: p{p:g} {_us(lat)} includes up to {_us(bound, lat)} "
                            f"({share:.0%}) of senders held back by the quota, which is what "
                            f"a throttled replica's users see")
        elif share > GENERATOR_LAG_INVALID_SHARE and bound > GENERATOR_LAG_FLOOR_US:
            material = True
            reasons.append(f"the generator itself sent late: {text}, more than "
                           f"{GENERATOR_LAG_INVALID_SHARE:.0%} of the figure (CPU starvation, "
                           f"GC or an overloaded machine)")
        elif share > GENERATOR_LAG_SHARE:
            warnings.append(text + (" (below the floor of what a generator can time)"
                                    if bound <= GENERATOR_LAG_FLOOR_US else ""))
    return material


def judge(*, open_loop: bool, counts: dict[str, int], scheduled: int, busy: list[float],
          max_busy: float, offered_rate: float, achieved_rate: float, cpu_cores: float,
          send_lag_p99_us: float, generator_lag_p99_us: float, latency_p99_us: float,
          warmup: float, first_error: str, latency_us: dict[float, float] | None = None,
          lag_bound_us: dict[float, float] | None = None, blocked: list[float] | None = None,
          process_cpu: list[float] | None = None, offcpu: list[bool] | None = None,
          processes: int = 1, concurrency: int = 1,
          local_server: str = "", warmup_only: bool = False,
          cores: int | None = None, server: dict[str, Any] | None = None,
          throttle: dict[str, Any] | None = None, window_s: float = 0.0,
          subtracted: bool = False, utilization: float = 0.0,
          capacity_per_s: float = math.nan, queue_p50_us: float = 0.0,
          service_p50_us: float = math.inf) -> Health:
    """The health verdict, with the lag bound per percentile and the bottleneck.

    ``blocked`` is each sender's share of the run spent inside calls (same order as
    ``busy``), ``offcpu`` whether it spent that time off the CPU (waiting, not computing),
    ``process_cpu`` each worker's CPU in cores, ``local_server`` the loopback address of a
    server on this machine ("" if none), ``server`` its CPU over the run
    (``serverload.finish``: a saturated server is the system's limit, not a bad run),
    ``throttle`` the CPU-limit cgroup's counters over the measured ``window_s`` seconds
    (``loadgen.limits``): lateness they account for is the limit's, not the generator's.
    ``subtracted``: the generator's own lag was taken out of the latency (it then grades the
    instrument's resolution, not the run).  ``utilization`` (the busiest sender's share of
    the offered time spent on answers), ``capacity_per_s`` (what the senders' service
    times allow), ``queue_p50_us`` and ``service_p50_us`` say whether the run measured a
    queue (``saturation``): then it is INVALID as a latency of the variant, and
    ``saturated`` with the capacity."""
    reasons: list[str] = []
    warnings: list[str] = []
    evidence: list[str] = []
    lag_only, after_lag = False, 0    # INVALID by the lag bound alone (upper_bound)
    saturated = False
    latency_us = latency_us or {99.0: latency_p99_us}
    bounds = lag_bound_us or {99.0: generator_lag_p99_us}
    blocked = blocked if blocked is not None else [0.0] * len(busy)
    cores = cores or os.cpu_count() or 1
    cpu_bound = max(process_cpu or [0.0], default=0.0) >= CPU_BOUND_CORES
    blame = {"generator": False, "server": False, "machine": False, "cpu-limit": False}
    excused = limit_explains(throttle, window_s) if open_loop else set()
    cause = throttle_text(throttle) if excused and throttle else ""
    if counts["dropped"]:
        reasons.append(f"{plural(counts['dropped'], 'value')} fell outside the histogram's "
                       f"range and were not recorded")
    if open_loop:
        worst = max(range(len(busy)), key=busy.__getitem__, default=None)
        w_busy = busy[worst] if worst is not None else 0.0
        w_blocked = blocked[worst] if worst is not None else 0.0
        off = offcpu[worst] if offcpu and worst is not None else True
        inside = w_busy > 0 and w_blocked >= BLOCKED_SHARE * w_busy
        waiting = inside and off
        sent_ratio = counts["measured"] / scheduled if scheduled else 1.0
        not_kept = sent_ratio < 0.99 or w_busy > max_busy
        if not_kept:
            evidence.append(f"busiest sender {w_busy:.1%} busy, {w_blocked:.1%} of the run "
                            f"inside calls ({'waiting off' if off else 'computing on'} the "
                            f"CPU); worker CPU up to "
                            f"{max(process_cpu or [0.0], default=0.0):.2f} cores")
            if excused:
                blame["cpu-limit"] = True
                who = (f"the {cause}: the replica's quota, not the generator, held the "
                       f"senders back; lower the rate or raise the limit")
            elif waiting and not cpu_bound:
                blame["server"] = True
                who = (f"the server: the senders were blocked waiting on answers (all "
                       f"{processes * concurrency} in flight, the concurrency exhausted, "
                       f"like a closed loop); raise concurrency, or lower the rate")
            elif inside:
                blame["generator"] = True
                who = ("the generator: its calls burned its own CPU (an in-process client, "
                       "or client-side cost); add processes, or lower the rate")
            else:
                blame["generator"] = True
                who = ("the generator: its senders were late outside any call (CPU-bound "
                       "sending); add processes or concurrency, or lower the rate")
        if sent_ratio < 0.99:
            reasons.append(f"the generator sent only {counts['measured']:,} of {scheduled:,} "
                           f"scheduled requests ({sent_ratio:.1%}) before giving up: this "
                           f"rate was not offered; the bottleneck was {who}")
            if counts["measured"] == 0 and counts.get("warmup_requests"):
                reasons.append(f"all {counts['warmup_requests']:,} requests it did send were "
                               f"scheduled inside the warm-up window, so none was measured"
                               + ("; the figures shown are theirs (warm-up only)"
                                  if warmup_only else ""))
        elif w_busy > max_busy and excused:
            warnings.append(f"a sender was busy {w_busy:.1%} of the run: {who}; requests "
                            f"went out late and are charged from their intended times")
        elif w_busy > max_busy:
            reasons.append(f"a sender was busy {w_busy:.1%} of the run (never waiting for a "
                           f"send time): the schedule was not kept; the bottleneck was {who}")
        before_lag = len(reasons)
        if excused:
            evidence.append(f"{cause} over the measured window; the lag it accounts for at "
                            + ", ".join(f"p{p:g}" for p in sorted(excused)))
            blame["cpu-limit"] = True
        queued = saturation(utilization, queue_p50_us, service_p50_us)
        if queued:
            saturated = True
            blame["cpu-limit" if excused else "server"] = True
            served = (f"about {capacity_per_s:,.0f}/s" if capacity_per_s > 0
                      else "less")
            reasons.append(f"saturated at {served}: offered {offered_rate:,.0f}/s, but "
                           f"{queued}; the latency is a growing queue's, not the "
                           f"variant's (lower the rate, or add senders if the server has "
                           f"room)")
        if subtracted:
            _grade_resolution(latency_us, bounds, warnings)
        elif _grade_lag(latency_us, bounds, reasons, warnings, excused, cause):
            lag_only, after_lag = before_lag == 0, len(reasons)
            b99 = bounds.get(99.0, math.nan)
            evidence.append(f"generator's own lag p99 {_us(b99)} with worker CPU up to "
                            f"{max(process_cpu or [0.0], default=0.0):.2f} cores")
            blame["generator" if cpu_bound else "machine"] = True
            if not cpu_bound:
                evidence.append("the generator was late while using little CPU: it was "
                                "descheduled (other processes held the cores)")
        if offered_rate and achieved_rate < 0.99 * offered_rate and not reasons:
            warnings.append(f"achieved {achieved_rate:,.0f}/s is below 99 % of offered "
                            f"{offered_rate:,.0f}/s (the run finished late)")
        if send_lag_p99_us > SEND_LAG_WARN_US:
            warnings.append(f"send lag p99 {send_lag_p99_us:,.0f} us: requests waited in the "
                            f"generator (counted in latency, as in wrk2)")
    else:
        warnings.append("closed loop: latency is measured from the actual send, so stalls "
                        "hide the requests they held back (coordinated omission)")
    if counts["measured"] and counts["ok"] == 0:
        reasons.append(f"no request succeeded; first error: {first_error or '?'}")
    elif counts["failed"] or counts["timeouts"]:
        said = f"{plural(counts['failed'], 'error')}, {plural(counts['timeouts'], 'timeout')}"
        warnings.append(f"{said} (kept in the errors histogram, not in latency); first: "
                        f"{first_error or 'timeout'}")
    if cpu_cores > 0.9 * cores:
        blame["machine"] = True
        warnings.append(f"the generator used {cpu_cores:.2f} of {cores} CPU cores: the "
                        f"machine itself was saturated")
    if local_server and (processes * concurrency + 1 > cores or cpu_cores > cores - 1):
        blame["machine"] = blame["machine"] or cpu_cores > cores - 1
        warnings.append(f"co-location: the generator ({plural(processes, 'process')} x "
                        f"{plural(concurrency, 'sender')}, {cpu_cores:.2f} cores of CPU) shares "
                        f"this machine's {cores} cores with the server at {local_server}: "
                        f"its CPU competes with the server's and can slow it; use fewer "
                        f"senders or run the generator elsewhere")
    if server and serverload.saturated(server):
        blame["server"] = True
        warnings.append(f"the server used {server['cores']:.2f} cores over the run with "
                        f"{plural(server['processes'], 'process')}: it was saturated, so its "
                        f"queue and not the network or the client set the latency (the system's "
                        f"limit, not a fault of the run); lower the rate or give it processes")
    bottleneck = next((k for k in ("cpu-limit", "generator", "machine", "server")
                       if blame[k]), "none")
    return Health(not reasons, tuple(reasons), tuple(warnings), bottleneck, tuple(evidence),
                  tuple((float(p), float(b)) for p, b in sorted(bounds.items())),
                  upper_bound=lag_only and len(reasons) == after_lag, saturated=saturated,
                  capacity_per_s=float(capacity_per_s))


def judge_run(parts: list, merged: dict[str, Any], counts: dict[str, int], *, open_loop: bool,
              scheduled: int, max_busy: float, offered_rate: float, achieved_rate: float,
              processes: int, concurrency: int, warmup: float, first_error: str,
              server: dict[str, Any] | None = None, throttle: dict[str, Any] | None = None,
              cpu_limit: float | None = None, subtracted: bool = False) -> Health:
    """``judge`` fed from merged worker parts: the per-percentile lag bounds, each sender's
    time inside calls, each worker's CPU and a loopback server's address (and, under a CPU
    limit, the cgroup's counters)."""
    from . import hist
    from .summary import loads

    def pct(metric: str, ps) -> list[float]:
        return [float(v) / 1e3 for v in hist.percentiles(merged[metric], list(ps))]

    cpu_s = float(sum(p.cpu_s for p in parts))
    wall_s = float(max(p.wall_s for p in parts))
    lat = dict(zip(BOUND_PERCENTILES, pct("latency", BOUND_PERCENTILES)))
    bounds = dict(zip(BOUND_PERCENTILES, pct("generator_lag", BOUND_PERCENTILES))) \
        if open_loop else {}
    return judge(open_loop=open_loop, counts=counts, scheduled=scheduled,
                 busy=[b for p in parts for b in p.busy], max_busy=max_busy,
                 offered_rate=offered_rate, achieved_rate=achieved_rate,
                 cpu_cores=cpu_s / wall_s if wall_s else 0.0,
                 send_lag_p99_us=pct("send_lag", [99])[0] if open_loop else 0.0,
                 generator_lag_p99_us=bounds.get(99.0, 0.0), latency_p99_us=lat[99.0],
                 warmup=warmup, first_error=first_error, latency_us=lat,
                 lag_bound_us=bounds or {99.0: 0.0},
                 blocked=[b for p in parts for b in p.blocked],
                 offcpu=[b for p in parts for b in p.offcpu] or None,
                 process_cpu=[p.cpu_s / p.wall_s for p in parts if p.wall_s],
                 processes=processes, concurrency=concurrency,
                 local_server=next((p.local_server for p in parts if p.local_server), ""),
                 warmup_only=counts["measured"] == 0 and any(p.warmup_only for p in parts),
                 server=server, throttle=throttle if cpu_limit is not None else None,
                 window_s=max(0.0, wall_s - warmup), subtracted=subtracted,
                 **_limited(loads(parts, merged, open_loop), merged, counts, cpu_s,
                            cpu_limit if not subtracted else None))


def _limited(found: dict[str, float], merged: dict[str, Any], counts: dict[str, int],
             cpu_s: float, cpu_limit: float | None) -> dict[str, float]:
    """Under a CPU limit the quota, not the senders' service times, bounds the rate, and
    its stalls fall between calls (send lag, kept in the latency), not inside them: the
    capacity is the quota over the CPU a request costs, and the wait that shows a queue
    is the whole send lag."""
    if cpu_limit is None or not found:
        return found
    from . import hist
    sent = counts.get("sent", 0)
    if sent and cpu_s > 0:
        found["capacity_per_s"] = min(found["capacity_per_s"], cpu_limit * sent / cpu_s)
    lag = merged.get("send_lag")
    if lag is not None and lag.get_total_count():
        found["queue_p50_us"] = float(hist.percentiles(lag, [50])[0]) / 1e3
    return found


__all__ = ["Health", "judge", "judge_run", "limit_explains", "throttle_text", "SEND_LAG_WARN_US", "GENERATOR_LAG_SHARE",
           "GENERATOR_LAG_INVALID_SHARE", "GENERATOR_LAG_FLOOR_US", "BOTTLENECKS",
           "THROTTLE_BINDING_SHARE", "SATURATED_UTILIZATION", "QUEUE_FLOOR_US", "saturation"]
