"""Numbers as a reader reads them, one rule each for every printout, page and plot: time
in the unit that fits the data (one choice of us / ms / s per axis or table, so a reader
never converts ``10^6 us`` in their head), figures to three significant digits without
exponents, and "1 core" / "2 cores".

They live in the load generator's layer so ``LoadResult.describe`` and the CLI can use
them as well as ``lootlab.plots`` and ``lootlab.report``, which sit above it.

Data comes in microseconds (``LoadResult``) or milliseconds (the story's frames); say
which with ``source``.  A linear axis takes the unit in which its largest value is at
least 1 (so 0..1,500 ms reads 0..1.5 s); a log axis, or a table spanning decades, the unit
of the geometric middle of its range (so 0.1 ms .. 1.2 s stays in ms instead of
0.0001 .. 1.2 s).
"""


from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TimeUnit:
    """A unit of time: its symbol and how many microseconds one of it is."""

    name: str
    us: float

    def scale(self, values, source: str = "us"):
        """``values`` (in ``source``: "us", "ms" or "s") expressed in this unit."""
        factor = _per_us(source) / self.us
        if np.isscalar(values):
            return float(values) * factor
        return np.asarray(values, dtype=float) * factor

    def format(self, value, source: str = "us") -> str:
        """``value`` (in ``source``) in this unit with its symbol: ``"1.23 ms"``."""
        return f"{plain_number(self.scale(value, source))} {self.name}"


US, MS, S = TimeUnit("us", 1.0), TimeUnit("ms", 1e3), TimeUnit("s", 1e6)
UNITS = (US, MS, S)


def _per_us(source: str) -> float:
    for unit in UNITS:
        if unit.name == source:
            return unit.us
    raise ValueError(f"unknown time unit {source!r}: expected one of "
                     f"{', '.join(u.name for u in UNITS)}")


def pick_unit(*values: Iterable[float] | float, source: str = "us",
              log: bool = False) -> TimeUnit:
    """The unit for an axis showing ``values`` (any number of arrays or scalars, in
    ``source``); NaN, infinities and (on a log axis) non-positive values are ignored, and
    no data at all gives ``source``'s own unit."""
    flat = np.concatenate([np.atleast_1d(np.asarray(v, dtype=float)).ravel() for v in values]) \
        if values else np.array([])
    flat = np.abs(flat[np.isfinite(flat)]) * _per_us(source)
    if log:
        flat = flat[flat > 0]
    if not len(flat) or not flat.max() > 0:
        return next(u for u in UNITS if u.name == source)
    ref = math.sqrt(flat.min() * flat.max()) if log else flat.max()
    chosen = US
    for unit in UNITS:
        if ref >= unit.us * (1 - 1e-9):
            chosen = unit
    return chosen


def plain_number(x: float, digits: int = 3) -> str:
    """``x`` rounded to ``digits`` significant digits, thousands separated, never in
    scientific notation: 0.0123, 1.5, 20, 1,180, 25,000."""
    if x is None or not math.isfinite(x):
        return "n/a" if x is None or math.isnan(x) else ("inf" if x > 0 else "-inf")
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    decimals = digits - 1 - magnitude
    rounded = round(x, decimals)
    if decimals <= 0:
        return f"{rounded:,.0f}"
    return f"{rounded:,.{decimals}f}".rstrip("0").rstrip(".")


def plural(n: float, word: str, many: str | None = None) -> str:
    """``n`` with its word, plural only when ``n`` is not 1: "1 core", "0.5 cores",
    "2 processes" (a word ending in s, x, ch or sh takes "es"; ``many`` for any other
    plural that is not ``word + "s"``)."""
    count = f"{int(n):,}" if float(n).is_integer() else f"{n:,g}"
    if n == 1:
        return f"{count} {word}"
    return f"{count} {many or word + ('es' if word.endswith(_ES) else 's')}"


_ES = ("s", "x", "ch", "sh")


__all__ = ["MS", "UNITS", "US", "S", "TimeUnit", "pick_unit", "plain_number", "plural"]
