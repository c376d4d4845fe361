"""The health verdict: is a run a measurement of the system, or of the generator's limits?

Kept apart from ``results`` (which merges and stores) because the thresholds are policy:
what counts as a saturated generator, a late sender or a histogram that lost values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

SEND_LAG_WARN_US = 1_000.0
# the generator's own lag may be at most this share of the latency p99 it reports (so the
# reported p99 is overstated by at most ~10 %), with a floor for very fast clients
GENERATOR_LAG_SHARE = 0.10
GENERATOR_LAG_FLOOR_US = 100.0


@dataclass(frozen=True)
class Health:
    """Whether the numbers describe the system, or the generator's own limits.

    ``valid`` is False when any ``reasons`` exist: values fell out of the histogram, the
    generator could not send the schedule, or a sender never had idle time (so requests
    went out late because of the generator).  ``warnings`` do not invalidate the run.
    """

    valid: bool
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        head = "VALID" if self.valid else "INVALID"
        lines = [head] + [f"  - {r}" for r in self.reasons] + \
            [f"  ~ {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "reasons": list(self.reasons),
                "warnings": list(self.warnings)}


def judge(*, open_loop: bool, counts: dict[str, int], scheduled: int, busy: list[float],
          max_busy: float, offered_rate: float, achieved_rate: float, cpu_cores: float,
          send_lag_p99_us: float, generator_lag_p99_us: float, latency_p99_us: float,
          warmup: float, first_error: str) -> Health:
    """The health verdict: is this a measurement of the system, or of the generator?"""
    reasons, warnings = [], []
    if counts["dropped"]:
        reasons.append(f"{counts['dropped']:,} value(s) fell outside the histogram's range "
                       f"and were not recorded")
    if open_loop:
        sent_ratio = counts["measured"] / scheduled if scheduled else 1.0
        if sent_ratio < 0.99:
            reasons.append(f"the generator sent only {counts['measured']:,} of {scheduled:,} "
                           f"scheduled requests ({sent_ratio:.1%}) before giving up: it could "
                           f"not offer this rate")
            if counts["measured"] == 0 and counts.get("warmup_requests"):
                reasons.append(f"all {counts['warmup_requests']:,} requests it did send were "
                               f"scheduled inside the warm-up window, so none was measured")
        worst = max(busy, default=0.0)
        if worst > max_busy:
            reasons.append(f"a sender was busy {worst:.1%} of the run (never waiting for a send "
                           f"time): the generator was the bottleneck; add processes or "
                           f"concurrency, or lower the rate")
        allowed = max(GENERATOR_LAG_FLOOR_US, GENERATOR_LAG_SHARE * latency_p99_us)
        if generator_lag_p99_us > allowed:
            reasons.append(f"the generator itself sent late: its own delay (beyond the queueing "
                           f"its answers' service times explain) has p99 "
                           f"{generator_lag_p99_us:,.0f} us, more than "
                           f"{GENERATOR_LAG_SHARE:.0%} of the latency p99 "
                           f"({latency_p99_us:,.0f} us) it would inflate (CPU starvation, GC "
                           f"or an overloaded machine)")
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
        warnings.append(f"{counts['failed']:,} error(s), {counts['timeouts']:,} timeout(s) "
                        f"(kept in the errors histogram, not in latency); first: "
                        f"{first_error or 'timeout'}")
    cores = os.cpu_count() or 1
    if cpu_cores > 0.9 * cores:
        warnings.append(f"the generator used {cpu_cores:.2f} of {cores} CPU cores: the "
                        f"machine itself was saturated")
    return Health(not reasons, tuple(reasons), tuple(warnings))


__all__ = ["Health", "judge", "SEND_LAG_WARN_US", "GENERATOR_LAG_SHARE",
           "GENERATOR_LAG_FLOOR_US"]
