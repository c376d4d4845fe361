"""The latency pages' capture (``lootlab.experiments.capture_latency``): what notebooks 01, 05
and 06 store in a run directory comes back as the same frames, results and facts, so a page
drawn from the stored run is the page of the run that measured it.

The runs are real ``loadgen`` runs on a virtual clock (``_loadgen.VirtualClock``): real
histograms, health and per-second intervals, in no time."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from _loadgen import QUERIES, ServiceClient, VirtualClock
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab import loadgen
from lootlab.experiments import story
from lootlab.experiments import capture_latency as capture
from lootlab.experiments.rundir import RunDirError, open_part
from lootlab.loadgen import hist
from lootlab.experiments.rebuild_under_load import RebuildRun


def virtual_run(service_ns: list[int], *, rate: float = 50, duration: float = 2.0,
                label: str = "virtual", fail_every: int = 0) -> Any:
    """A ``LoadResult`` of a client taking ``service_ns`` per call, on a virtual clock."""
    clock = VirtualClock()
    return loadgen.run(lambda: ServiceClient(clock, service_ns, fail_every=fail_every),
                       loadgen.constant(rate, duration), warmup=0, workload=QUERIES,
                       clock=clock, label=label)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def assert_same_fields(mine: Any, theirs: Any) -> None:
    """Two mappings with the same keys and values (NaN equal to NaN)."""
    mine, theirs = dict(mine), dict(theirs)
    assert mine.keys() == theirs.keys()
    assert {k: v for k, v in mine.items() if not _same(v, theirs[k])} == {}


def assert_same_result(got: Any, want: Any) -> None:
    """Everything a page reads of a ``LoadResult``: its summary (percentiles, rates, health,
    conditions), every histogram and each second's, and the words describing it."""
    assert_same_fields(got.summary(), want.summary())
    for metric in ("latency", "service", "send_lag", "errors", "generator_lag"):
        assert hist.encode(got.histogram(metric)) == hist.encode(want.histogram(metric))
    assert [hist.encode(h) for h in got.intervals] == [hist.encode(h) for h in want.intervals]
    assert got.health.to_dict() == want.health.to_dict()
    assert got.conditions == want.conditions
    assert got.describe() == want.describe()


def measuring(tmp_path, name: str) -> Any:
    return open_part(tmp_path / "run", name, params={"size": "a test's"})


def replaying(tmp_path, name: str) -> Any:
    return open_part(tmp_path / "run", name, replay=True)


def test_setup_facts_come_back_as_stored(tmp_path):
    facts = {"server": "the C++ gRPC server (a test's words)", "cpu_limit_unavailable": None,
             "conditions": {"rtt_ms": 5.0, "cpu_limit": None, "cpu_limit_note": ""}}
    capture.store_setup(measuring(tmp_path, "06-conditions"), **facts)
    assert capture.load_setup(replaying(tmp_path, "06-conditions")) == facts


def test_a_story_comes_back_as_measured(tmp_path):
    clock = VirtualClock()
    service = {"slow": [900_000, 4_000_000], "fast": [30_000, 50_000]}
    run = story.run_steps(40, 1.5, variants={
        name: (lambda ns=ns: ServiceClient(clock, ns)) for name, ns in service.items()},
        trials=2, warmup=0, workload=QUERIES, clock=clock)
    capture.store_story(measuring(tmp_path, "01-story"), run)

    got = capture.load_story(replaying(tmp_path, "01-story"))
    pd.testing.assert_frame_equal(got.steps, run.steps.reset_index(drop=True))
    pd.testing.assert_frame_equal(got.trials, run.trials.reset_index(drop=True))
    assert list(got.results) == list(service)          # the order they were run in
    for variant, trials in run.results.items():
        assert len(got.results[variant]) == len(trials) == 2
        for mine, theirs in zip(got.results[variant], trials):
            assert_same_result(mine, theirs)
    assert got.conditions == run.conditions
    assert (got.rate, got.duration) == (40.0, 1.5)


def test_a_rebuild_run_comes_back_with_its_timeline(tmp_path):
    def rebuild(source: str, swaps: list[float]) -> RebuildRun:
        return RebuildRun(
            source=source, rate=50.0, duration=3.0, records=1234,
            load=virtual_run([200_000, 9_000_000], duration=3.0, label=f"rebuild-{source}",
                             fail_every=7 if source == "s3" else 0),
            seen=pd.DataFrame({"t_s": [-0.4, *swaps], "generation": range(1, len(swaps) + 2)}),
            swaps=pd.DataFrame({"t_s": swaps, "generation": range(2, len(swaps) + 2),
                                "build_s": [0.1 * (i + 1) for i in range(len(swaps))]},
                               columns=["t_s", "generation", "build_s"]),
            worker={"builds": len(swaps), "failures": 0, "last_error": None,
                    "status": "idle", "cycles_recorded": len(swaps) + 1})

    runs = [rebuild("local", [0.7, 1.9]), rebuild("s3", [])]   # s3: no swap, failed reads
    part = measuring(tmp_path, "05-rebuild")
    for run in runs:
        capture.store_rebuild(part, run)

    got = capture.load_rebuilds(replaying(tmp_path, "05-rebuild"))
    assert [r.source for r in got] == ["local", "s3"]
    for mine, theirs in zip(got, runs):
        assert (mine.rate, mine.duration, mine.records) == (theirs.rate, theirs.duration,
                                                            theirs.records)
        assert mine.worker == theirs.worker
        assert_same_result(mine.load, theirs.load)
        assert mine.seen["t_s"].tolist() == theirs.seen["t_s"].tolist()
        assert mine.swaps["t_s"].tolist() == theirs.swaps["t_s"].tolist()
        assert mine.swaps["build_s"].tolist() == theirs.swaps["build_s"].tolist()
        assert_same_fields(mine.summary(), theirs.summary())
        assert mine.generations_seen == theirs.generations_seen
        pd.testing.assert_frame_equal(mine.windows(), theirs.windows())
    assert got[1].errors == runs[1].errors > 0


def sweep_rows(results: list[Any]) -> pd.DataFrame:
    """Rows as a what-if sweep gives them: floats with NaN, flags, words, counts."""
    return pd.DataFrame([{"variant": r.variant, "rtt_ms": float(r.conditions["rtt_ms"] or 0),
                          "cpu_limit": r.conditions["cpu_limit"] or math.nan,
                          "p99_ms": r.latency_us(99) / 1e3, "n": int(r.samples()),
                          "saturated": False, "valid": bool(r.health.valid),
                          "health": "; ".join(r.health.reasons) or "ok",
                          "throttled_ms": math.nan, "cpu_limit_note": ""} for r in results])


def at(result: Any, rtt_ms: float | None = None, cpu_limit: float | None = None) -> Any:
    """``result`` as if it ran at that RTT and CPU limit (what ``loadgen.run`` records)."""
    result.conditions = {**result.conditions, "rtt_ms": rtt_ms, "cpu_limit": cpu_limit,
                         "cpu_limit_applied": None if cpu_limit is None else True}
    return result


def test_sweeps_come_back_grouped_per_variant_and_condition(tmp_path):
    runs = [at(virtual_run([100_000 * (i + 1)], duration=1.0, label=v), rtt)
            for i, (v, rtt) in enumerate([("grpc-tls-pooled", None), ("grpc-tls-pooled", 5.0),
                                          ("mmap", None)])]
    runs.append(at(virtual_run([150_000], duration=1.0, label="grpc-tls-pooled"), 5.0))
    part = measuring(tmp_path, "06-conditions")
    capture.store_sweep(part, "rtt sweep", sweep_rows(runs), runs)

    got = replaying(tmp_path, "06-conditions")
    rtt = capture.load_sweep(got, "rtt sweep")
    pd.testing.assert_frame_equal(rtt.rows, sweep_rows(runs))
    # grouped per variant and condition, each group's trials in the order run
    for mine, theirs in zip(rtt.results, [runs[0], runs[1], runs[3], runs[2]]):
        assert_same_result(mine, theirs)
    with pytest.raises(RunDirError, match="no rows named 'cpu sweep'"):
        capture.load_sweep(got, "cpu sweep")
    assert capture.sweep_results(rtt, None) == rtt.results
    assert [n for n in got.names("results")] == [
        "rtt sweep: grpc-tls-pooled, loopback, no CPU limit",
        "rtt sweep: grpc-tls-pooled, RTT 5 ms, no CPU limit",
        "rtt sweep: mmap, loopback, no CPU limit"]


class Stub:
    """What ``by_condition`` reads of a ``LoadResult``: its variant and conditions."""

    def __init__(self, variant: str, rtt_ms: float | None, cpu_limit: float | None, i: int):
        self.variant, self.i = variant, i
        self.conditions = {"rtt_ms": rtt_ms, "cpu_limit": cpu_limit}


conditions = st.tuples(st.sampled_from(["grpc-tls-fresh", "grpc-tls-pooled", "mmap"]),
                       st.sampled_from([None, 0.0, 0.5, 5.0, 20.0]),
                       st.sampled_from([None, 0.25, 0.5, 2.0]))


@settings(max_examples=200, deadline=None)
@given(st.lists(conditions, max_size=30))
def test_one_name_per_variant_and_condition_trials_in_the_order_run(cells):
    results = [Stub(v, rtt, cpu, i) for i, (v, rtt, cpu) in enumerate(cells)]
    named = capture.by_condition("rtt sweep", results)
    # oracle: the same cell is the same variant, RTT (none = 0) and CPU limit
    key = {}
    for r in results:
        key.setdefault((r.variant, r.conditions["rtt_ms"] or 0.0, r.conditions["cpu_limit"]),
                       []).append(r.i)
    assert sorted(sorted(r.i for r in trials) for trials in named.values()) == \
        sorted(sorted(v) for v in key.values())
    for trials in named.values():
        assert [r.i for r in trials] == sorted(r.i for r in trials)
    assert all(name.startswith("rtt sweep: ") for name in named)


def test_a_replayed_part_missing_an_artifact_names_what_is_missing(tmp_path):
    capture.store_setup(measuring(tmp_path, "01-story"), server="words")
    with pytest.raises(RunDirError, match="no data named 'story'"):
        capture.load_story(replaying(tmp_path, "01-story"))
    capture.store_setup(measuring(tmp_path, "05-rebuild"), server="words")
    with pytest.raises(RunDirError, match="no rebuild run stored"):
        capture.load_rebuilds(replaying(tmp_path, "05-rebuild"))
