"""lootlab: remote gRPC service or local memory-mapped index? Measure it.

The core (world, build, index) is imported eagerly; the heavier parts (gRPC clients, the
rebuild worker, load generation, profiling) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .build import BuildOptionError, BuildReport, PublishError, build_index
from .errors import InvalidIndexError, InvalidRecordsError, LootlabError, LootlabTimeout, QueryError
from .index import LootIndex, open_index
from .records import FIELDS, RECORD_DTYPE, RESULT_DTYPE, LootRecord, Records, pack_key, unpack_key
from .world import generate_world

__version__ = "0.1.0"

# name -> module that defines it, imported on first attribute access
_LAZY = {
    "connect": "lootlab.clients",
    "LootClient": "lootlab.clients",
    "VARIANTS": "lootlab.variants",
    "Variant": "lootlab.variants",
    "Endpoint": "lootlab.variants",
    "RemoteError": "lootlab.remote.errors",
    "Rebuilder": "lootlab.rebuild",
    "LocalSource": "lootlab.sources",
    "S3Source": "lootlab.sources",
    "open_source": "lootlab.sources",
}
_SUBMODULES = {"loadgen", "profiling", "plots", "report", "remote", "workload", "variants",
               "errors"}

__all__ = [
    "generate_world", "build_index", "open_index", "LootIndex", "BuildReport", "LootRecord",
    "Records", "FIELDS", "RECORD_DTYPE", "RESULT_DTYPE", "pack_key", "unpack_key",
    "LootlabError", "LootlabTimeout", "InvalidIndexError", "InvalidRecordsError", "QueryError",
    "PublishError", "BuildOptionError", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"lootlab.{name}")
    raise AttributeError(f"module 'lootlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
