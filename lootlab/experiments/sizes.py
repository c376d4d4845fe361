"""How big each notebook's experiments are, per report size: one table, read by the notebooks.

A report size trades minutes for samples.  ``quick`` is a smoke run (tests: too few samples
for conclusions), ``standard`` what ``make report`` runs (a p99 has at least 10 samples
above it), ``full`` the real experiment.  The reasons behind each number are beside it.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import LootlabError


class SizeError(LootlabError, ValueError):
    """A report size or notebook that the table does not have."""


#: The report sizes, smallest first (``lootlab report --size``).
SIZES = ("quick", "standard", "full")

_ALL_STEPS = ["grpc-tls-fresh", "grpc-tls-resumed", "grpc-tls-pooled", "grpc-tls-packed", "mmap"]
_ALL_VARIANTS = [*_ALL_STEPS[:4], "grpc-plain", "mmap"]

TABLE: dict[str, dict[str, dict[str, Any]]] = {
    # The story's steps at one offered rate.  The rate must stay below what the slowest step
    # (a full TLS handshake per request) sustains, or its p99 measures the queue instead of
    # the variant.  Trials are interleaved (trial 1 of every step, then trial 2...) so slow
    # drift on the machine hits every step alike; quick runs one (no spread between trials,
    # and 300 samples leave 3 above the p99: "too few samples"); standard: 3 trials of
    # 1,200 requests, pooled: 3,600 per step (36 above the p99 shown).  Quick sizes are as
    # small as still runs every cell: the tests measure them, within a 10-minute budget.
    "01-story": {
        "quick": dict(rate=100, duration=1.5, warmup=0.3, trials=1),
        "standard": dict(rate=100, duration=12.0, warmup=1.0, trials=3),
        "full": dict(rate=100, duration=40.0, warmup=3.0, trials=3),
    },
    # One rate (trials interleaved across variants; the spectrum draws each variant's median
    # trial, the summary the trials pooled), a sweep of rates against a p99 target, and a
    # spike.  standard: 3 trials of 1,000 requests per variant and 2,400 at the lowest sweep
    # rate; a p99.9 needs 10,000 samples, so it shows as "too few samples" there.
    "02-latency": {
        "quick": dict(variants=["grpc-tls-pooled", "grpc-tls-packed", "grpc-plain", "mmap"],
                      rate=200, duration=1.0, warmup=0.3, trials=1,
                      sweep_variants=["grpc-tls-pooled", "mmap"], sweep_rates=[100, 400, 1600],
                      sweep_duration=0.75, sweep_trials=1, p99_target_ms=10.0,
                      spike_rate=200, spike_factor=5, spike_duration=3.0, processes=1),
        "standard": dict(variants=["grpc-tls-pooled", "grpc-tls-packed", "grpc-plain", "mmap"],
                         rate=200, duration=5.0, warmup=0.5, trials=3,
                         sweep_variants=["grpc-tls-pooled", "mmap"],
                         sweep_rates=[200, 800, 3200], sweep_duration=12.0, sweep_trials=1,
                         p99_target_ms=10.0, spike_rate=200, spike_factor=5,
                         spike_duration=10.0, processes=1),
        "full": dict(variants=_ALL_VARIANTS, rate=200, duration=20.0, warmup=2.0, trials=3,
                     sweep_variants=["grpc-tls-pooled", "grpc-tls-packed", "grpc-plain", "mmap"],
                     sweep_rates=[250, 500, 1000, 2000, 4000, 8000, 16000], sweep_duration=5.0,
                     sweep_trials=3, p99_target_ms=10.0, spike_rate=1000, spike_factor=10,
                     spike_duration=20.0, processes=2),
    },
    # py-spy and perf flame graphs, the timed split, system counters.  copy_rounds: perf
    # runs of each C kernel build for the memcpy question (0: one copy-call run, compared
    # with the mmap perf profile instead of a default-build run of its own).
    "03-flamegraphs": {
        "quick": dict(variants=["grpc-tls-pooled", "mmap"], duration=2.0, perf_duration=1.0,
                      counters_duration=0.5, copy_rounds=0),
        "standard": dict(variants=["grpc-tls-fresh", "grpc-tls-pooled", "grpc-tls-packed",
                                   "mmap"],
                         duration=8.0, perf_duration=5.0, counters_duration=3.0, copy_rounds=2),
        "full": dict(variants=_ALL_VARIANTS, duration=20.0, perf_duration=10.0,
                     counters_duration=5.0, copy_rounds=3),
    },
    # memray allocations, GC pauses and memory across replicas.
    "04-memory": {
        "quick": dict(variants=["grpc-tls-pooled", "mmap"], queries=300, gc_queries=500,
                      replica_variant="mmap", ks=[1, 2], replica_queries=200),
        "standard": dict(variants=["grpc-tls-pooled", "grpc-tls-packed", "mmap"],
                         queries=1000, gc_queries=3000, replica_variant="mmap", ks=[1, 2, 4],
                         replica_queries=1000),
        "full": dict(variants=["grpc-tls-fresh", "grpc-tls-pooled", "grpc-tls-packed",
                               "grpc-plain", "mmap"], queries=5000, gc_queries=20000,
                     replica_variant="mmap", ks=[1, 2, 4, 8], replica_queries=5000),
    },
    # Readers at a steady rate while the worker rebuilds and swaps the index.
    "05-rebuild": {
        "quick": dict(rate=300, duration=4.0, swap_every=1.0, records=20_000),
        "standard": dict(rate=500, duration=15.0, swap_every=2.0, records=100_000),
        "full": dict(rate=1000, duration=60.0, swap_every=5.0, records=350_000),
    },
    # The what-if sweeps.  The rate must be one the slowest variant sustains at the largest
    # RTT: grpc-tls-fresh pays about 6 round trips per request, ~130 ms at 20 ms RTT, so
    # ``concurrency`` senders keep requests in flight (16 carry 100/s at 130 ms).  quick: too
    # few samples above any p99 for a verdict ("cannot tell"); standard: ~1,000 samples per
    # variant and condition, so a p99 has 10 above it; full: 3 trials of 600 pooled.
    "06-conditions": {
        "quick": dict(rate=20, duration=0.5, warmup=0.2, trials=1, concurrency=8,
                      rtts_ms=[0, 5, 20], cpu_limits=[0.5],
                      cpu_variants=["grpc-tls-pooled", "mmap"]),
        "standard": dict(rate=100, duration=10.0, warmup=0.5, trials=1, concurrency=16,
                         rtts_ms=[0, 2, 20], cpu_limits=[0.25, 1],
                         cpu_variants=["grpc-tls-pooled", "mmap"]),
        "full": dict(rate=100, duration=6.0, warmup=0.5, trials=3, concurrency=16,
                     rtts_ms=[0, 0.5, 1, 2, 5, 10, 20], cpu_limits=[0.25, 0.5, 1, 2],
                     cpu_variants=_ALL_STEPS),
    },
    # The decision beyond latency: each experiment at a size that answers its question.
    # latency: the variants at the reader's round trip (``rtt_ms``), pooled trials; standard
    # sends 1,200 per variant so a p99 has 12 samples above it and can be judged.
    # freshness: (source, rebuild interval) runs of ``changes`` changes each; the 2 s run is
    # the one the staleness claim rests on, 1 s and 10 s pin the PBS model's slope.
    # node_memory: readers and clients per node, index sizes (records; 350,000 is the
    # default 11 MiB world, 2 M about 68 MiB, 30.2 M about 1 GiB).  cold_start: one index
    # size, every prefault x cache x start/swap.  failure: one fault per scenario lasting a
    # third of the run.  cost: CPU per query at a rate every variant sustains, and the
    # rebuild's own CPU, requests and bytes.  quick is a smoke run (about 2 min).
    "07-decision": {
        "quick": dict(
            variants=["grpc-tls-fresh", "grpc-tls-pooled", "mmap"],
            latency=dict(rate=50, duration=1.0, warmup=0.3, trials=1, concurrency=8),
            freshness=[dict(source="local", interval=1.0, changes=3)],
            freshness_readers=2, freshness_records=50_000,
            node_memory=dict(readers=[1, 2], index_records=[350_000], remote_clients=[1]),
            cold_start=dict(index_records=350_000, prefault=["none", "populate"],
                            cache=["cold", "warm"], after=["start"], window=0.5),
            failure=dict(scenarios=["s3-down", "server-killed"], duration=5.0, rate=100,
                         interval=0.5, records=20_000),
            cost=dict(queries=300, rate=200, builds=1, checks=3)),
        "standard": dict(
            variants=["grpc-tls-fresh", "grpc-tls-pooled", "grpc-tls-packed", "mmap"],
            latency=dict(rate=100, duration=12.0, warmup=0.5, trials=1, concurrency=16),
            freshness=[dict(source="local", interval=1.0, changes=10),
                       dict(source="local", interval=2.0, changes=10),
                       dict(source="s3", interval=2.0, changes=10)],
            freshness_readers=3, freshness_records=350_000,
            node_memory=dict(readers=[1, 2, 4, 8], index_records=[350_000, 2_000_000],
                             remote_clients=[1, 4]),
            cold_start=dict(index_records=2_000_000, prefault=["none", "populate", "willneed"],
                            cache=["cold", "warm"], after=["start", "swap"], window=1.0),
            failure=dict(scenarios=["s3-down", "s3-500", "corrupt-upload", "server-killed"],
                         duration=12.0, rate=200, interval=1.0, records=50_000),
            cost=dict(queries=2000, rate=200, builds=3, checks=10)),
        "full": dict(
            variants=_ALL_STEPS,
            latency=dict(rate=100, duration=20.0, warmup=1.0, trials=3, concurrency=16),
            freshness=[dict(source="local", interval=1.0, changes=20),
                       dict(source="local", interval=2.0, changes=20),
                       dict(source="local", interval=10.0, changes=10),
                       dict(source="s3", interval=2.0, changes=20),
                       dict(source="s3", interval=10.0, changes=10)],
            freshness_readers=4, freshness_records=350_000,
            node_memory=dict(readers=[1, 2, 4, 8, 16, 32],
                             index_records=[350_000, 4_000_000, 30_200_000],
                             remote_clients=[1, 4, 16]),
            cold_start=dict(index_records=30_200_000,
                            prefault=["none", "populate", "willneed"],
                            cache=["cold", "warm"], after=["start", "swap"], window=1.0,
                            repeats=3),
            failure=dict(scenarios=["s3-down", "s3-500", "corrupt-upload", "server-killed"],
                         duration=40.0, rate=500, interval=2.0, records=350_000),
            cost=dict(queries=5000, rate=200, builds=3, checks=20)),
    },
}


def check_size(size: str) -> str:
    """``size`` if it is a report size; else an error naming the allowed ones (papermill
    passes whatever was typed on the command line)."""
    if size not in SIZES:
        raise SizeError(f"size must be one of {', '.join(map(repr, SIZES))}, not {size!r}")
    return size


def sizes_for(notebook: str, size: str) -> dict[str, Any]:
    """A copy of ``notebook``'s sizes at report size ``size`` (a notebook may change its
    copy from its parameters without touching the table)."""
    check_size(size)
    if notebook not in TABLE:
        raise SizeError(f"no sizes for {notebook!r} (have: {', '.join(TABLE)})")
    return copy.deepcopy(TABLE[notebook][size])
