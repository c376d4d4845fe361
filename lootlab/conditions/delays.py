"""The proxy's delay model, as pure functions (property-tested apart from any socket).

Per direction, every chunk of bytes the proxy reads is due at the destination at::

    start = max(arrival, link_free)          # the link sends one chunk at a time
    done  = start + n * 8 / bandwidth        # serialisation (0 without a bandwidth cap)
    due   = max(previous_due, done + delay)  # never before an earlier chunk: byte order kept

``delay`` is one direction's half of the round trip plus jitter, drawn per chunk from a
uniform distribution: ``Uniform(rtt/2 - jitter/2, rtt/2 + jitter/2)``, truncated at 0.  A
round trip (one chunk each way) is then ``rtt`` plus the sum of two such draws: a triangle
on ``[rtt - jitter, rtt + jitter]`` (when ``jitter <= rtt``), so ``jitter_ms`` is the
half-width of the RTT's spread, as the label "RTT 5 ms ± 1 ms" reads.
"""

from __future__ import annotations

import random


class OneWay:
    """Draws one direction's delay in seconds (``rtt_s / 2`` plus uniform jitter)."""

    __slots__ = ("_uniform", "half", "spread")

    def __init__(self, rtt_s: float, jitter_s: float, seed: int | None = 0):
        self.half = rtt_s / 2
        self.spread = jitter_s / 2
        self._uniform = random.Random(seed).uniform

    def __call__(self) -> float:
        if not self.spread:
            return self.half
        d = self.half + self._uniform(-self.spread, self.spread)
        return d if d > 0 else 0.0


def due_time(arrival: float, nbytes: int, delay: float, previous_due: float,
             link_free: float, seconds_per_byte: float) -> tuple[float, float]:
    """(when the chunk is due at the destination, when the link is free again)."""
    start = max(link_free, arrival)
    done = start + nbytes * seconds_per_byte
    due = done + delay
    return max(previous_due, due), done


def rtt_cdf(x: float, rtt: float, jitter: float) -> float:
    """P(round trip <= x) under the model (no truncation: valid when ``jitter <= rtt``):
    the triangle distribution of ``rtt + U1 + U2`` with ``U ~ Uniform(-jitter/2, jitter/2)``."""
    if jitter <= 0:
        return 1.0 if x >= rtt else 0.0
    u = (x - rtt + jitter) / jitter          # 0..2 over the support
    if u <= 0:
        return 0.0
    if u >= 2:
        return 1.0
    return u * u / 2 if u <= 1 else 1 - (2 - u) ** 2 / 2


def rtt_quantile(q: float, rtt: float, jitter: float) -> float:
    """The inverse of ``rtt_cdf``."""
    u = (2 * q) ** 0.5 if q <= 0.5 else 2 - (2 * (1 - q)) ** 0.5
    return rtt - jitter + u * jitter
