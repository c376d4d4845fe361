"""Profiling: where a variant's CPU, memory and GC time go, measured on a fresh workload
process (``python -m lootlab.workload``) so the profilers see the client path and nothing else.

- ``flamegraph(variant, ...) -> FlameProfile`` (py-spy: SVG, speedscope, collapsed stacks, frames)
- ``perf_flamegraph(variant, ...) -> PerfProfile`` (perf record: native and kernel frames);
  ``perf_unavailable()`` says in one line why perf cannot run here (or None)
- ``copy_share_measured("mmap", ...) -> CopyShare``: the copy of record bytes' share of the
  CPU, from perf on the copy-call kernel build (the write-up's "68 % in memcpy" question)
- ``counters(variant, ...) -> Counters`` (perf stat / getrusage: switches, faults... per op)
- ``categorize`` / ``bucket_shares([profiles])``: the story's buckets (TLS, gRPC, protobuf, ...)
- ``diff(a, b)`` / ``diff_svg(a, b)``: what one variant spends that the other does not
- ``memory(variant, queries=N) -> MemoryProfile`` (memray + /proc, deltas over a baseline)
- ``replicas(variant, ks=(1, 2, 4, 8)) -> DataFrame`` (per-replica and total PSS)
- ``gc_pauses(variant, queries=N) -> GcStats`` (``gc.callbacks`` pauses)

The workload process imports ``gcpause`` and ``procmem`` from here (and ``perfgate`` runs
it under perf); memray is imported only by the functions that run it.
"""

from __future__ import annotations

from ._run import ProfilerError
from .categorize import (
    BUCKETS,
    COPY_PARTS,
    KERNEL_BUCKETS,
    bucket_shares,
    categorize,
    copy_parts,
    copy_share,
    kernel_total,
    stack_bucket,
    top_buckets,
)
from .counters import Counters, counters, counters_of, counters_table
from .diff import FlameDiff, compare, diff, diff_svg
from .flame import FlameProfile, flamegraph, frames_table, load_flame, parse_collapsed
from .gcpause import GcEvent, GcRecorder, GcStats, gc_pauses
from .memory import MemoryProfile, memory
from .perf import (
    CopyShare,
    PerfProfile,
    call_cost,
    copy_share_measured,
    perf_flamegraph,
    perf_unavailable,
)
from .procmem import mapping_of, read_proc
from .replicas import replicas

__all__ = [
    "BUCKETS",
    "COPY_PARTS",
    "KERNEL_BUCKETS",
    "CopyShare",
    "Counters",
    "FlameDiff",
    "FlameProfile",
    "GcEvent",
    "GcRecorder",
    "GcStats",
    "MemoryProfile",
    "PerfProfile",
    "ProfilerError",
    "bucket_shares",
    "call_cost",
    "categorize",
    "compare",
    "copy_parts",
    "copy_share",
    "copy_share_measured",
    "counters",
    "counters_of",
    "counters_table",
    "diff",
    "diff_svg",
    "flamegraph",
    "frames_table",
    "gc_pauses",
    "kernel_total",
    "load_flame",
    "mapping_of",
    "memory",
    "parse_collapsed",
    "perf_flamegraph",
    "perf_unavailable",
    "read_proc",
    "replicas",
    "stack_bucket",
    "top_buckets",
]
