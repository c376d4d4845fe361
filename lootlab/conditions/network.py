"""``Network``: the round-trip time, jitter and bandwidth between a client and its server.

A plain, frozen, picklable value (it crosses process boundaries to load-generator workers
and names the conditions of a run in its results).  ``lootlab.targets`` is where a loose
value (a dict, an RTT in ms) is made one (``Network.coerce``) and where a non-null one
routes a client through a delaying TCP proxy (``lootlab.conditions.proxies``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConditionsError

_FIELDS = ("rtt_ms", "jitter_ms", "bandwidth_mbit")


def _number(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool):
        raise ConditionsError(f"network {name} must be a number, got {value!r}")
    if not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConditionsError(f"network {name} must be a number, got {value!r}") from None
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise ConditionsError(f"network {name} must be finite, got {value!r}")
    if value < 0 or (positive and value == 0):
        need = "positive" if positive else "zero or positive"
        raise ConditionsError(f"network {name} must be {need}, got {value!r}")
    return value


def _fmt(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Network:
    """Conditions between client and server: ``rtt_ms`` is the added round trip (half each
    way), ``jitter_ms`` its spread (see ``lootlab.conditions.proxy`` for the distribution),
    ``bandwidth_mbit`` a per-direction link rate (None: unlimited)."""

    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth_mbit: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rtt_ms", _number("rtt_ms", self.rtt_ms))
        object.__setattr__(self, "jitter_ms", _number("jitter_ms", self.jitter_ms))
        if self.bandwidth_mbit is not None:
            object.__setattr__(self, "bandwidth_mbit",
                               _number("bandwidth_mbit", self.bandwidth_mbit, positive=True))

    @property
    def is_null(self) -> bool:
        """True when nothing would be delayed or metered: no proxy is needed."""
        return self.rtt_ms == 0 and self.jitter_ms == 0 and self.bandwidth_mbit is None

    @property
    def label(self) -> str:
        """Short human text for titles and banners, e.g. ``RTT 5 ms ± 1 ms, 100 Mbit/s``."""
        if self.is_null:
            return "loopback"
        parts = [f"RTT {_fmt(self.rtt_ms)} ms"
                 + (f" ± {_fmt(self.jitter_ms)} ms" if self.jitter_ms else "")]
        if self.bandwidth_mbit is not None:
            parts.append(f"{_fmt(self.bandwidth_mbit)} Mbit/s")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, float | None]:
        """The fields as plain data (JSON, result rows)."""
        return {"rtt_ms": self.rtt_ms, "jitter_ms": self.jitter_ms,
                "bandwidth_mbit": self.bandwidth_mbit}

    @classmethod
    def coerce(cls, value: Any) -> Network | None:
        """A Network from what a caller may pass: a Network, a mapping of its fields, a
        number (the RTT in ms) or None (no conditions: None)."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(_FIELDS))
            if unknown:
                raise ConditionsError(f"unknown network field(s) {', '.join(map(str, unknown))}"
                                      f" (known: {', '.join(_FIELDS)})")
            return cls(**dict(value))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(rtt_ms=value)
        raise ConditionsError(f"cannot make a network from {value!r}: pass a Network, a dict of"
                              f" {', '.join(_FIELDS)}, a number (RTT in ms) or None")
