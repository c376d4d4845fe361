"""The exceptions lootlab raises: one base class so callers and the CLI can catch ours apart."""

from __future__ import annotations

from pathlib import Path


class LootlabError(Exception):
    """Base of every error lootlab raises on purpose."""


class InvalidIndexError(LootlabError):
    """A file is not a usable lootlab index (wrong magic, version, size, checksum...)."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class InvalidRecordsError(LootlabError, ValueError):
    """Input rows cannot be stored: names the first bad row and field, and how many are bad."""

    def __init__(self, message: str, *, row: int | None = None, field: str | None = None,
                 bad_rows: int = 0):
        self.row = row
        self.field = field
        self.bad_rows = bad_rows
        super().__init__(message)


class QueryError(LootlabError, ValueError):
    """A query's arguments are out of range (coordinates, radius, k)."""


class LootlabTimeout(LootlabError, TimeoutError):
    """Something did not finish within its time limit.  A ``TimeoutError`` as well, so a
    caller (the load generator, for one) can tell a timeout from a failure by type."""
