"""Errors raised for production conditions (network, CPU limits) a user asked for."""

from __future__ import annotations

from ..errors import LootlabError


class ConditionsError(LootlabError, ValueError):
    """A condition cannot be applied as asked: a negative or NaN round-trip time, jitter or
    bandwidth, a proxy that did not start, a cgroup that cannot be written (the message says
    which and why)."""
