"""Time in the unit that fits the data, for axes: the rules live in
``lootlab.loadgen.units`` (shared with the CLI's tables and ``LoadResult.describe``), named
here for the plotting modules."""

from __future__ import annotations

from ..loadgen.units import MS, UNITS, US, S, TimeUnit, pick_unit, plain_number

__all__ = ["MS", "UNITS", "US", "S", "TimeUnit", "pick_unit", "plain_number"]
