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


# Every error class lootlab raises, reachable from this one module.  The ones that live
# beside the code that raises them are imported on first access, so ``lootlab.errors``
# stays as light as the core.
_ELSEWHERE = {
    "PublishError": "lootlab.build", "BuildOptionError": "lootlab.build",
    "UnknownVariantError": "lootlab.variants", "ResolveError": "lootlab.variants",
    "RemoteError": "lootlab.remote.errors", "ServerUnavailable": "lootlab.remote.errors",
    "TLSError": "lootlab.remote.errors", "DeadlineExceeded": "lootlab.remote.errors",
    "ServerBusy": "lootlab.remote.errors", "ServerError": "lootlab.remote.server",
    "LoopbackError": "lootlab.remote.loopback", "LoopbackTimeout": "lootlab.remote.loopback",
    "SourceError": "lootlab.sources", "SourceUnavailableError": "lootlab.sources",
    "CorruptSourceError": "lootlab.sources", "RebuildError": "lootlab.rebuild",
    "UpdateQueueFull": "lootlab.updates", "LoadgenError": "lootlab.loadgen",
    "ScheduleError": "lootlab.loadgen.schedules", "ProfilerError": "lootlab.profiling",
    "ReportError": "lootlab.report", "RunDirError": "lootlab.experiments.rundir",
    "SizeError": "lootlab.experiments.sizes",
    "KernelsError": "lootlab.index",
    "ConditionsError": "lootlab.conditions.errors", "ProxyTimeout": "lootlab.conditions.proxies",
}

__all__ = ["LootlabError", "LootlabTimeout", "InvalidIndexError", "InvalidRecordsError",
           "QueryError", *_ELSEWHERE]


def __getattr__(name: str) -> type[LootlabError]:
    module = _ELSEWHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lootlab.errors' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ELSEWHERE))
