"""Profiling: where a variant's CPU, memory and GC time go, measured on a fresh workload
process (``python -m lootlab.workload``) so the profilers see the client path and nothing else.

- ``flamegraph(variant, ...) -> FlameProfile`` (py-spy: SVG, speedscope, collapsed stacks, frames)
- ``categorize`` / ``bucket_shares([profiles])``: the story's buckets (TLS, gRPC, protobuf, ...)
- ``diff(a, b)`` / ``diff_svg(a, b)``: what one variant spends that the other does not
- ``memory(variant, queries=N) -> MemoryProfile`` (memray + /proc, deltas over a baseline)
- ``replicas(variant, ks=(1, 2, 4, 8)) -> DataFrame`` (per-replica and total PSS)
- ``gc_pauses(variant, queries=N) -> GcStats`` (``gc.callbacks`` pauses)

The workload process imports ``gcpause`` and ``procmem`` from here; memray is imported
only by the functions that run it.
"""

from __future__ import annotations

from ._run import ProfilerError
from .categorize import BUCKETS, bucket_shares, categorize, copy_share, stack_bucket, top_buckets
from .diff import FlameDiff, compare, diff, diff_svg
from .flame import FlameProfile, flamegraph, frames_table, load_flame, parse_collapsed
from .gcpause import GcEvent, GcRecorder, GcStats, gc_pauses
from .memory import MemoryProfile, memory
from .procmem import mapping_of, read_proc
from .replicas import replicas

__all__ = [
    "BUCKETS",
    "FlameDiff",
    "FlameProfile",
    "GcEvent",
    "GcRecorder",
    "GcStats",
    "MemoryProfile",
    "ProfilerError",
    "bucket_shares",
    "categorize",
    "compare",
    "copy_share",
    "diff",
    "diff_svg",
    "flamegraph",
    "frames_table",
    "gc_pauses",
    "load_flame",
    "mapping_of",
    "memory",
    "parse_collapsed",
    "read_proc",
    "replicas",
    "stack_bucket",
    "top_buckets",
]
