"""The load generator's own error, in a module of its own so every part can raise it
without importing the others."""

from __future__ import annotations

from ..errors import LootlabError


class LoadgenError(LootlabError):
    """A load run could not start or a worker failed (names the worker and the cause)."""


__all__ = ["LoadgenError"]
