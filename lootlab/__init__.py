"""lootlab: remote gRPC service or local memory-mapped index? Measure it.

Every public name loads on first use (module ``__getattr__``), so ``import lootlab`` and
the ``lootlab`` command start without numpy or pandas; ``from lootlab import open_index``
imports the core (world, build, index) as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it, imported on first attribute access
_LAZY = {
    "generate_world": "lootlab.world",
    "build_index": "lootlab.build",
    "BuildReport": "lootlab.build",
    "PublishError": "lootlab.build",
    "BuildOptionError": "lootlab.build",
    "open_index": "lootlab.index",
    "LootIndex": "lootlab.index",
    "LootRecord": "lootlab.records",
    "Records": "lootlab.records",
    "FIELDS": "lootlab.records",
    "RECORD_DTYPE": "lootlab.records",
    "RESULT_DTYPE": "lootlab.records",
    "pack_key": "lootlab.records",
    "unpack_key": "lootlab.records",
    "LootlabError": "lootlab.errors",
    "LootlabTimeout": "lootlab.errors",
    "InvalidIndexError": "lootlab.errors",
    "InvalidRecordsError": "lootlab.errors",
    "QueryError": "lootlab.errors",
    "connect": "lootlab.targets",
    "LootClient": "lootlab.clients",
    "VARIANTS": "lootlab.variants",
    "Variant": "lootlab.variants",
    "Endpoint": "lootlab.remote.endpoint",
    "Network": "lootlab.conditions.network",
    "RemoteError": "lootlab.remote.errors",
    "Rebuilder": "lootlab.rebuild",
    "LocalSource": "lootlab.sources",
    "S3Source": "lootlab.sources",
    "open_source": "lootlab.sources",
}
_SUBMODULES = {"loadgen", "profiling", "plots", "report", "remote", "workload", "variants",
               "targets", "errors", "build", "index", "records", "world", "conditions"}

__all__ = list(_LAZY)

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .build import BuildOptionError, BuildReport, PublishError, build_index
    from .clients import LootClient
    from .conditions.network import Network
    from .errors import (
        InvalidIndexError,
        InvalidRecordsError,
        LootlabError,
        LootlabTimeout,
        QueryError,
    )
    from .index import LootIndex, open_index
    from .rebuild import Rebuilder
    from .records import (
        FIELDS,
        RECORD_DTYPE,
        RESULT_DTYPE,
        LootRecord,
        Records,
        pack_key,
        unpack_key,
    )
    from .remote.endpoint import Endpoint
    from .remote.errors import RemoteError
    from .sources import LocalSource, S3Source, open_source
    from .targets import connect
    from .variants import VARIANTS, Variant
    from .world import generate_world


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"lootlab.{name}")
    raise AttributeError(f"module 'lootlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
