"""Notebook 02's capture (``lootlab.experiments.capture_sweep``): the runs at one rate, the
sweep of rates and the spike come back from a run directory as they were measured, so a
page drawn from the stored run is the page of the run that measured it.

The runs are real ``experiments.latency`` runs on a virtual clock (``_loadgen``): real
rows, histograms, health and per-second intervals, in no time."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from _loadgen import QUERIES, ServiceClient, VirtualClock
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.experiments import capture_sweep as capture
from lootlab.experiments import latency
from lootlab.experiments.rundir import RunDirError, open_part
from lootlab.experiments.trials import median_trial, summarize_trials
from lootlab.loadgen import hist

# Service times per call (ns): "slow" queues above ~250/s, "fast" keeps up everywhere.
SERVICE = {"slow": [900_000, 4_000_000], "fast": [30_000, 50_000]}
TARGET_US = 5_000.0


def virtual_sweep(rates: list[float], *, trials: int, duration: float = 1.0,
                  target_us: float | None = TARGET_US) -> tuple[pd.DataFrame, list[Any]]:
    """``latency.sweep`` of the two virtual variants: (rows, every LoadResult in order)."""
    clock = VirtualClock()
    variants = {name: (lambda ns=ns: ServiceClient(clock, ns)) for name, ns in SERVICE.items()}
    results: list[Any] = []
    rows = latency.sweep(variants, rates, duration, warmup=0, trials=trials,
                         p99_target_us=target_us, workload=QUERIES, clock=clock,
                         results=results)
    return rows, results


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN."""
    return a == b or (isinstance(a, float) and isinstance(b, float)
                      and math.isnan(a) and math.isnan(b))


def assert_same_result(got: Any, want: Any) -> None:
    """Everything the page reads of a ``LoadResult``: its summary (percentiles, rates,
    health, conditions), every histogram and each second's."""
    mine, theirs = got.summary(), want.summary()
    assert mine.keys() == theirs.keys()
    assert {k: v for k, v in mine.items() if not same(v, theirs[k])} == {}
    for metric in ("latency", "service", "send_lag", "errors", "generator_lag"):
        assert hist.encode(got.histogram(metric)) == hist.encode(want.histogram(metric))
    assert [hist.encode(h) for h in got.intervals] == [hist.encode(h) for h in want.intervals]
    assert got.health.to_dict() == want.health.to_dict()
    assert (got.variant, got.offered_rate, got.conditions) == \
        (want.variant, want.offered_rate, want.conditions)


def measuring(tmp_path) -> Any:
    return open_part(tmp_path / "run", "02-latency", params={"size": "a test's"})


def replaying(tmp_path) -> Any:
    return open_part(tmp_path / "run", "02-latency", replay=True)


def test_a_sweep_comes_back_in_the_order_run_one_name_per_variant_and_rate(tmp_path):
    rows, results = virtual_sweep([50, 400], trials=2)
    capture.store_rates(measuring(tmp_path), capture.SWEEP, rows, results)

    part = replaying(tmp_path)
    got = capture.load_rates(part, capture.SWEEP)
    pd.testing.assert_frame_equal(got.rows, rows, check_dtype=False)
    assert len(got.results) == len(results) == 8
    for mine, theirs in zip(got.results, results):      # interleaved trials, as run
        assert_same_result(mine, theirs)
    assert part.names("results") == ["sweep: slow at 50/s", "sweep: slow at 400/s",
                                     "sweep: fast at 50/s", "sweep: fast at 400/s"]
    assert [len(part.results(n)) for n in part.names("results")] == [2, 2, 2, 2]


def test_what_the_page_derives_from_stored_rows_is_what_it_derives_from_measured_ones(tmp_path):
    rows, results = virtual_sweep([50, 400, 1600], trials=2)
    capture.store_rates(measuring(tmp_path), capture.SWEEP, rows, results)
    got = capture.load_rates(replaying(tmp_path), capture.SWEEP)

    mine, theirs = (latency.sustainable(r, TARGET_US) for r in (got.rows, rows))
    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False)
    assert mine.set_index("variant")["sustainable_per_s"].to_dict() == {"slow": 50.0,
                                                                        "fast": 1600.0}
    cols = ["p50_ms", "p99_ms", "achieved_per_s"]
    pd.testing.assert_frame_equal(summarize_trials(got.rows, ["variant", "offered_per_s"], cols),
                                  summarize_trials(rows, ["variant", "offered_per_s"], cols),
                                  check_dtype=False)
    # the spectrum's median trial of each variant: the same run, found at the same place
    mine_at = {v: got.results.index(r) for v, r in median_trial(got.results).items()}
    assert mine_at == {v: results.index(r) for v, r in median_trial(results).items()}


def test_runs_at_one_rate_keep_their_rows_apart_from_the_sweep(tmp_path):
    one_rows, one_results = virtual_sweep([200], trials=1, target_us=None)
    sweep_rows, sweep_results = virtual_sweep([100, 200], trials=1)
    part = measuring(tmp_path)
    capture.store_rates(part, capture.ONE_RATE, one_rows, one_results)
    capture.store_rates(part, capture.SWEEP, sweep_rows, sweep_results)

    got = replaying(tmp_path)
    one = capture.load_rates(got, capture.ONE_RATE)
    sweep = capture.load_rates(got, capture.SWEEP)
    assert one.rows["offered_per_s"].tolist() == [200.0, 200.0]
    assert one.rows["meets_target"].isna().all()           # no target at one rate
    for mine, theirs in zip(one.results, one_results):
        assert_same_result(mine, theirs)
    for mine, theirs in zip(sweep.results, sweep_results):
        assert_same_result(mine, theirs)
    assert sweep.rows["meets_target"].tolist() == sweep_rows["meets_target"].tolist()


def test_the_spike_comes_back_with_its_timeline(tmp_path):
    clock = VirtualClock()
    spike = latency.spike_run(lambda: ServiceClient(clock, [3_000_000]), 100, factor=5,
                              duration=4.0, length=1.0, warmup=0, workload=QUERIES,
                              clock=clock, label="mmap")
    capture.store_spike(measuring(tmp_path), spike)

    part = replaying(tmp_path)
    assert part.names("results") == ["spike: mmap"]
    got = capture.load_spike(part)
    assert_same_result(got, spike)
    pd.testing.assert_frame_equal(got.timeline(), spike.timeline())
    assert got.timeline()["p99_us"].max() > 2 * got.timeline()["p99_us"].min()  # a spike


def test_a_run_without_the_spike_or_with_two_says_so(tmp_path):
    part = measuring(tmp_path)
    with pytest.raises(RunDirError, match="0 spike runs stored"):
        capture.load_spike(part)
    for label in ("mmap", "grpc-plain"):
        clock = VirtualClock()
        part.put_results(capture.SPIKE_PREFIX + label, latency.spike_run(
            lambda c=clock: ServiceClient(c, [10_000]), 50, duration=2.0, length=0.5,
            warmup=0, workload=QUERIES, clock=clock, label=label))
    with pytest.raises(RunDirError, match="2 spike runs stored .*'spike: grpc-plain'"):
        capture.load_spike(replaying(tmp_path))


def test_rows_and_results_that_do_not_pair_are_refused(tmp_path):
    rows, results = virtual_sweep([50], trials=1)
    with pytest.raises(RunDirError, match="2 rows but 1 results"):
        capture.store_rates(measuring(tmp_path), capture.SWEEP, rows, results[:1])


def test_a_stored_sweep_missing_a_trial_names_the_cell(tmp_path):
    rows, results = virtual_sweep([50], trials=2)
    part = measuring(tmp_path)
    capture.store_rates(part, capture.SWEEP, rows, results)
    part.put_results("sweep: fast at 50/s", results[1])        # one trial of two left
    with pytest.raises(RunDirError, match="more rows for 'sweep: fast at 50/s' than its 1"):
        capture.load_rates(replaying(tmp_path), capture.SWEEP)
    with pytest.raises(RunDirError, match="no rows named 'one rate'"):
        capture.load_rates(replaying(tmp_path), capture.ONE_RATE)


class Stub:
    """What ``by_rate`` reads of a ``LoadResult``: its variant and offered rate."""

    def __init__(self, variant: str, rate: float, i: int):
        self.variant, self.offered_rate, self.i = variant, rate, i


cells = st.tuples(st.sampled_from(["grpc-tls-pooled", "grpc-plain", "mmap"]),
                  st.sampled_from([100, 100.0, 250.5, 800, 1600.0, 16000]))


@settings(max_examples=200, deadline=None)
@given(st.lists(cells, max_size=30))
def test_one_name_per_variant_and_rate_trials_in_the_order_run(runs):
    results = [Stub(v, rate, i) for i, (v, rate) in enumerate(runs)]
    named = capture.by_rate("sweep", results)
    # oracle: the same cell is the same variant at the same rate (100 and 100.0 alike)
    key: dict[tuple[str, float], list[int]] = {}
    for r in results:
        key.setdefault((r.variant, float(r.offered_rate)), []).append(r.i)
    assert sorted([r.i for r in trials] for trials in named.values()) == sorted(key.values())
    for (variant, rate), indices in key.items():
        assert [r.i for r in named[f"sweep: {variant} at {rate:g}/s"]] == indices
