"""Pure parts of the memory-per-node experiment: parsing ``/proc`` and cgroup text, and
summing per-process samples into per-node rows.

Why PSS: a page shared by K processes counts 1/K in each one's PSS, so the sum of PSS over
the processes of a node counts the index's page-cache pages once however many readers map
them (RSS would count them K times, USS not at all).  USS (Private_Clean + Private_Dirty)
is what a process frees by exiting.  All figures in bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from ..profiling import procmem

ROLLUP_FIELDS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Shared_Clean", "Shared_Dirty",
                 "Private_Clean", "Private_Dirty")
#: Columns of the per-node rows ``summarize`` returns.
ROW_COLUMNS = ("kind", "phase", "n", "index_records", "index_bytes",
               "pss_mean_bytes", "pss_max_bytes", "uss_mean_bytes", "uss_max_bytes",
               "rss_mean_bytes", "rss_max_bytes", "shared_mean_bytes",
               "pss_anon_mean_bytes", "pss_file_mean_bytes", "index_pss_sum_bytes",
               "index_resident_share", "node_bytes", "node_uss_bytes", "node_rss_bytes",
               "processes_count")
_GROUP = ["kind", "phase", "n", "index_records", "index_bytes"]


def parse_kb_fields(text: str, wanted: Iterable[str] = ROLLUP_FIELDS) -> dict[str, int]:
    """``Name:   123 kB`` lines -> {name: bytes} for the ``wanted`` names present."""
    want = set(wanted)
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if sep and name in want:
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[name] = int(parts[0]) * 1024
    return out


def rollup_sample(text: str) -> dict[str, int]:
    """One process's ``smaps_rollup`` -> its fields plus ``Uss`` and ``Shared`` (bytes)."""
    f = {k: 0 for k in ROLLUP_FIELDS}
    f.update(parse_kb_fields(text))
    f["Uss"] = f["Private_Clean"] + f["Private_Dirty"]
    f["Shared"] = f["Shared_Clean"] + f["Shared_Dirty"]
    return f


def mapping_totals(smaps_text: str, paths: Iterable[str]) -> dict[str, int]:
    """Size, Rss and Pss (bytes) of the mappings of any of ``paths`` in one ``smaps``."""
    return procmem.mapping_totals(smaps_text, paths, ("Size", "Rss", "Pss"))


def parse_memory_stat(text: str) -> dict[str, int]:
    """A cgroup ``memory.stat`` ("name value" lines) -> {name: int}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[name] = int(value)
    return out


def cgroup_charges(stat: Mapping[str, int], usage: int, version: int) -> dict[str, int]:
    """What a memory cgroup charges, in one vocabulary for v1 and v2: ``usage_bytes``,
    ``cache_bytes`` (page cache), ``rss_bytes`` (anonymous), ``mapped_file_bytes``."""
    if version == 1:
        return {"usage_bytes": usage, "cache_bytes": stat.get("cache", 0),
                "rss_bytes": stat.get("rss", 0), "mapped_file_bytes": stat.get("mapped_file", 0)}
    return {"usage_bytes": usage, "cache_bytes": stat.get("file", 0),
            "rss_bytes": stat.get("anon", 0), "mapped_file_bytes": stat.get("file_mapped", 0)}


def summarize(processes: pd.DataFrame) -> pd.DataFrame:
    """Per-process samples -> one row per (kind, phase, n, index) measurement.

    ``processes`` columns: kind phase n index_records index_bytes pid, the ``rollup_sample``
    fields, and ``index_rss``/``index_pss``/``index_size`` (the index mappings).  A node's
    memory is the sum of its processes' PSS (``node_bytes``); per-process figures are the
    mean and max over the processes of that measurement.
    """
    if processes.empty:
        return pd.DataFrame(columns=list(ROW_COLUMNS))
    rows = []
    for key, g in processes.groupby(_GROUP, sort=False, dropna=False):
        size = g["index_size"].where(g["index_size"] > 0)
        share = (g["index_rss"] / size).mean() if size.notna().any() else float("nan")
        rows.append({**dict(zip(_GROUP, key)),
                     "pss_mean_bytes": g["Pss"].mean(), "pss_max_bytes": g["Pss"].max(),
                     "uss_mean_bytes": g["Uss"].mean(), "uss_max_bytes": g["Uss"].max(),
                     "rss_mean_bytes": g["Rss"].mean(), "rss_max_bytes": g["Rss"].max(),
                     "shared_mean_bytes": g["Shared"].mean(),
                     "pss_anon_mean_bytes": g["Pss_Anon"].mean(),
                     "pss_file_mean_bytes": g["Pss_File"].mean(),
                     "index_pss_sum_bytes": g["index_pss"].sum(),
                     "index_resident_share": share,
                     "node_bytes": g["Pss"].sum(), "node_uss_bytes": g["Uss"].sum(),
                     "node_rss_bytes": g["Rss"].sum(), "processes_count": len(g)})
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))


__all__ = ["ROLLUP_FIELDS", "ROW_COLUMNS", "cgroup_charges", "mapping_totals",
           "parse_kb_fields", "parse_memory_stat", "rollup_sample", "summarize"]
