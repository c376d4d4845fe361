"""Notebooks 03 and 04's capture: what ``store_*`` puts in a run directory, ``load_*`` gives
back, so a replayed page draws what the measured one drew.  Built from small fakes of the
profilers' objects (no profiler runs here) and checked through the views the pages show."""

from __future__ import annotations

import pandas as pd
import pytest
from _loadgen import QUERIES, ServiceClient, VirtualClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lootlab import loadgen, profiling
from lootlab.experiments import capture_profiles as capture
from lootlab.experiments.rundir import RunDirError, open_part
from lootlab.profiling import (
    CopyShare,
    Counters,
    FlameProfile,
    GcEvent,
    GcStats,
    MemoryProfile,
    PerfProfile,
)
from lootlab.remote.callsplit import COMPONENTS
from lootlab.experiments.story import split_table

LOOP = ("_run_module_as_main (<frozen runpy>:198)", "main (lootlab/workload.py:270)",
        "_measured_ops (lootlab/workload.py:149)")

# A frame as a profiler names it: anything but the collapsed format's separators.
frame = st.text(st.characters(blacklist_characters=";\n\r",
                              blacklist_categories=("Cs", "Zl", "Zp")),
                min_size=1, max_size=12).map(lambda s: s.strip() or "f")
stacks_st = st.dictionaries(st.lists(frame, min_size=1, max_size=5).map(tuple),
                            st.integers(1, 10_000), min_size=1, max_size=15)


def fresh(tmp_path, name: str = "03-flamegraphs"):
    """A part to measure into, and a function that opens it again as a replay does."""
    part = open_part(tmp_path / "run", name, params={"variants": ["a", "b"]})
    return part, lambda: open_part(tmp_path / "run", name, replay=True)


def same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True),
                                  check_dtype=False)


# -- py-spy and perf profiles ---------------------------------------------------------------

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=stacks_st, b=stacks_st)
def test_py_spy_profiles_come_back_with_their_stacks_options_and_summary(tmp_path, a, b):
    part, replay = fresh(tmp_path)
    made = {"grpc-tls-pooled": FlameProfile("grpc-tls-pooled", {LOOP + s: c for s, c in a.items()},
                                            {"native": True, "rate": 100, "duration": 3.0},
                                            {"ops": 1234, "ops_per_s": 411.3}),
            "mmap": FlameProfile("mmap", b, {"native": True, "rate": 250}, {"ops": 9})}
    capture.store_flames(part, made)
    back = capture.load_flames(replay())
    assert list(back) == list(made)                      # the order measured
    for v, prof in made.items():
        assert back[v] == prof
        same_frame(back[v].frames, prof.frames)
    assert replay().names("stacks") == ["py-spy: grpc-tls-pooled", "py-spy: mmap"]


def test_perf_profiles_stay_perf_profiles_and_the_reason_perf_could_not_run_is_kept(tmp_path):
    part, replay = fresh(tmp_path)
    prof = PerfProfile("mmap", {("[python]", "select_rows", "page_fault [k]"): 7,
                                ("[python]", "select_rows"): 3},
                       {"profiler": "perf", "frequency": 499, "call_graph": "dwarf"}, {"ops": 50})
    capture.store_perf(part, None, {"mmap": prof})
    why, back = capture.load_perf(replay())
    assert why is None and back == {"mmap": prof}
    assert type(back["mmap"]) is PerfProfile
    assert back["mmap"].kernel_share == pytest.approx(0.7)

    part, replay = fresh(tmp_path)
    capture.store_perf(part, "perf is not installed ('perf' not found)", {})
    assert capture.load_perf(replay()) == ("perf is not installed ('perf' not found)", {})


# -- the timed split ------------------------------------------------------------------------

def timed_result(service_ns: list[int], split_ns: int | None):
    """A load run in virtual time (exact, instant), with a remote client's call split."""
    clock = VirtualClock()
    client = ServiceClient(clock, service_ns)
    res = loadgen.run(lambda: client, loadgen.constant(100, 1), warmup=0, workload=QUERIES,
                      clock=clock)
    if split_ns is not None:
        res.split = {"calls": 10, "with_server": 10,
                     **{c: split_ns * (i + 1) for i, c in enumerate(COMPONENTS)}}
    return res


def test_the_timed_calls_come_back_with_their_split_and_the_facts_the_sentence_states(tmp_path):
    part, replay = fresh(tmp_path)
    timed = {"grpc-tls-pooled": timed_result([200_000, 300_000], 20_000),
             "mmap": timed_result([30_000], None)}
    capture.store_timed(part, timed, server="the lab's Python gRPC server (grpcio)",
                        left_out=["grpc-plain"])
    back, facts = capture.load_timed(replay())
    assert facts == {"server": "the lab's Python gRPC server (grpcio)",
                     "timed": ["grpc-tls-pooled", "mmap"], "left_out": ["grpc-plain"]}
    pd.testing.assert_frame_equal(split_table(back), split_table(timed))
    assert back["grpc-tls-pooled"].split == timed["grpc-tls-pooled"].split


# -- the memcpy question and the counters ---------------------------------------------------

def test_the_copy_share_keeps_every_figure_its_table_and_sentence_use(tmp_path):
    part, replay = fresh(tmp_path)
    assert capture.load_copy_share(part) is None             # none measured: none drawn
    n = len(profiling.COPY_PARTS)
    parts = {p: (i + 1) / (n * (n + 1) / 2) for i, p in enumerate(profiling.COPY_PARTS)}
    perf = {b: PerfProfile("mmap", {("[python]", f"{b} frame"): 11 + i},
                           {"profiler": "perf", "frequency": 499}, {"ops": 100 + i})
            for i, b in enumerate(("default", "copycall"))}
    copy = CopyShare("mmap", parts, {k: v / 2 for k, v in parts.items()},
                     samples={"default": 900, "copycall": 1000},
                     ops={"default": 40_000, "copycall": 38_000},
                     records={"default": 400_000, "copycall": 380_000},
                     ops_per_s={"default": 20_000.5, "copycall": 19_000.25},
                     interleaved={"default_us_per_op": 41.5, "copycall_us_per_op": 44.25,
                                  "records_per_op": 10.0, "queries": 2000, "blocks": 8},
                     options={"duration": 1.5, "rounds": 1, "frequency": 499,
                              "call_graph": "dwarf", "baseline_given": True},
                     profiles=perf)
    capture.store_copy_share(part, copy)
    back = capture.load_copy_share(replay())
    assert back == copy
    assert (back.copy, back.ns_per_record, back.default_bound, back.call_overhead) == \
        (copy.copy, copy.ns_per_record, copy.default_bound, copy.call_overhead)
    assert back.table() == copy.table()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 10**6), st.floats(0.1, 100),
                          st.dictionaries(st.sampled_from(["context_switches", "syscalls",
                                                           "minor_faults", "cpu_migrations"]),
                                          st.floats(0, 1e9), max_size=4)),
                min_size=1, max_size=4))
def test_counters_come_back_and_draw_the_same_table(tmp_path, runs):
    part, replay = fresh(tmp_path)
    made = [Counters(f"variant-{i}", ops, seconds, "perf stat" if "syscalls" in counts
                     else "rusage", counts, {"ops": ops, "seconds": seconds})
            for i, (ops, seconds, counts) in enumerate(runs)]
    capture.store_counters(part, made)
    back = capture.load_counters(replay())
    assert back == made            # a count one source could not take stays absent, not NaN
    pd.testing.assert_frame_equal(profiling.counters_table(back),
                                  profiling.counters_table(made))


# -- memory, replicas, GC -------------------------------------------------------------------

def memory_profile(variant: str, scale: int) -> MemoryProfile:
    return MemoryProfile(variant, ops=500 * scale, allocations_per_op=12.5 * scale,
                         bytes_per_op=2048.0 * scale, peak_heap=(30 + scale) * 2**20,
                         total_allocations=90_000 * scale, mmap_allocations=scale,
                         mmap_bytes=scale * 2**24,
                         proc={"RssAnon": 40 * 2**20 * scale, "RssFile": 9 * 2**20,
                               "VmHWM": 60 * 2**20, "Pss_Anon": 39 * 2**20},
                         baseline={"RssAnon": 30 * 2**20, "RssFile": 8 * 2**20},
                         index_mapping={"Size": 2**24, "Rss": 2**22}, cpu_us_per_op=17.0,
                         minflt_per_op=0.25 * scale, majflt_per_op=0.0)


def test_memory_is_one_row_per_variant_with_what_compare_reads(tmp_path):
    part, replay = fresh(tmp_path, "04-memory")
    made = {"grpc-tls-pooled": memory_profile("grpc-tls-pooled", 3), "mmap": memory_profile("mmap", 1)}
    capture.store_memory(part, made)
    rows = capture.load_memory(replay())
    same_frame(rows, pd.DataFrame([m.summary() for m in made.values()]))
    assert {"variant", "ops", "allocs_per_op", "bytes_per_op", "peak_heap_MiB",
            "RssAnon_MiB"} <= set(rows.columns)
    assert replay().names("rows") == ["memory"]
    assert capture.load_memory_profiles(replay()) == made


def test_replica_rows_come_back_and_sum_to_the_same_totals(tmp_path):
    from lootlab.profiling.replicas import totals

    part, replay = fresh(tmp_path, "04-memory")
    rows = [{"variant": "mmap", "k": k, "role": "replica", "replica": i, "pid": 100 + 10 * k + i,
             **{f: (k + i + 1) * 2**20 for f in ("Rss", "Pss", "Pss_Anon", "Pss_File",
                                                  "RssAnon", "RssFile", "VmHWM")},
             "index_rss": 2**22, "index_pss": 2**22 // k}
            for k in (1, 2) for i in range(k)]
    made = pd.DataFrame(rows)
    capture.store_replicas(part, made)
    back = capture.load_replicas(replay())
    pd.testing.assert_frame_equal(back, made)
    pd.testing.assert_frame_equal(totals(back), totals(made))


events_st = st.lists(st.builds(GcEvent, st.integers(0, 2), st.integers(0, 2**62),
                               st.integers(0, 10**9), st.integers(0, 10**6), st.integers(0, 9)),
                     max_size=20)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 10**6), events_st), min_size=1, max_size=3))
def test_gc_runs_come_back_event_by_event_even_without_a_collection(tmp_path, runs):
    part, replay = fresh(tmp_path, "04-memory")
    made = {f"v{i}": GcStats(f"v{i}", ops, events) for i, (ops, events) in enumerate(runs)}
    capture.store_gc(part, made)
    back = capture.load_gc(replay())
    assert back == made
    assert [b.summary() for b in back.values()] == [m.summary() for m in made.values()]


def test_a_replayed_part_lacking_an_artifact_names_what_it_holds(tmp_path):
    part, replay = fresh(tmp_path, "04-memory")
    capture.store_memory(part, {"mmap": memory_profile("mmap", 1)})
    with pytest.raises(RunDirError, match=r"no rows named 'gc runs' \(stored: 'memory'\)"):
        capture.load_gc(replay())


def test_every_store_has_its_load_and_the_names_are_the_documented_ones():
    names = capture.__all__
    stores = {n.removeprefix("store_") for n in names if n.startswith("store_")}
    loads = {n.removeprefix("load_") for n in names if n.startswith("load_")}
    assert stores <= loads
    doc = capture.__doc__
    for name in (capture.PYSPY, capture.PERF, capture.TIMED, capture.MEMORY, capture.REPLICAS,
                 capture.GC_RUNS, capture.GC_EVENTS, capture.COUNTERS, capture.COPY_SHARE):
        assert f'"{name.rstrip()}' in doc, name
