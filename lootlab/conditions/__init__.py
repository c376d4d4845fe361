"""Production conditions on one machine: network round trips and CPU limits.

``Network`` puts a delaying TCP proxy between a client and its server (this lab's kernels
often lack ``netem``); ``cgroup`` runs the client side under a CPU quota like a
container's.  Names load on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Network": "lootlab.conditions.network",
    "ConditionsError": "lootlab.conditions.errors",
    "cpu_cgroup": "lootlab.conditions.cgroup",
    "CpuCgroup": "lootlab.conditions.cgroup",
    "cgroup_unavailable": "lootlab.conditions.cgroup",
}
_SUBMODULES = {"proxies", "cgroup"}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"lootlab.conditions.{name}")
    raise AttributeError(f"module 'lootlab.conditions' has no attribute {name!r}")
