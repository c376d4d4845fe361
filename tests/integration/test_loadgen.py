"""The load generator tells the truth: exact answers in virtual time, coordinated omission
shown on a real stall, merged histograms equal to one histogram, an overloaded generator
flagged, results that survive disk."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hdrh.log import HistogramLogReader

from lootlab import LootlabError, loadgen
from lootlab.loadgen import hist
from lootlab.loadgen.schedules import NS

from _loadgen import QUERIES, Noop, ServiceClient, Spin, StallOnce, VirtualClock, lindley, \
    noop_factory


def virtual_run(service_ns, schedule, *, hiccups=None, fail_every=0, warmup=0.0, **kw):
    clock = VirtualClock(hiccups=hiccups)
    client = ServiceClient(clock, service_ns, fail_every)
    res = loadgen.run(lambda: client, schedule, warmup=warmup, workload=QUERIES, clock=clock,
                      **kw)
    return res, client


# --------------------------------------------------------------------------- schedules
def test_constant_schedule_is_evenly_spaced_and_counts_right():
    s = loadgen.constant(1000, 2.5)
    assert len(s) == 2500 and s.rate == 1000
    assert np.all(np.diff(s.offsets) == 1_000_000)
    assert s.offsets[0] == 0 and s.offsets[-1] < 2.5 * NS


def test_poisson_is_seeded_and_has_its_rate():
    a, b, c = loadgen.poisson(5000, 4, seed=1), loadgen.poisson(5000, 4, seed=1), \
        loadgen.poisson(5000, 4, seed=2)
    assert np.array_equal(a.offsets, b.offsets) and not np.array_equal(a.offsets, c.offsets)
    assert abs(len(a) - 20000) < 5 * math.sqrt(20000)          # 5 sigma
    gaps = np.diff(a.offsets) / 1e9
    assert abs(gaps.std() / gaps.mean() - 1) < 0.05            # exponential: CV = 1
    assert np.all(np.diff(a.offsets) >= 0) and a.offsets[-1] < 4 * NS


def test_ramp_and_spike_rates_per_second():
    r = loadgen.ramp(100, 1100, 4)
    assert len(r) == 2400                                      # mean rate 600 for 4 s
    per = r.rate_per_second()
    assert np.all(np.diff(per) > 0) and per[0] < 300 and per[-1] > 900
    s = loadgen.spike(200, 4, factor=5, at=1, length=2)
    assert s.rate_per_second().tolist() == [200, 1000, 1000, 200]
    assert s.label.startswith("spike(") and "factor=5" in s.label


@pytest.mark.parametrize("bad", [lambda: loadgen.constant(0, 1), lambda: loadgen.constant(10, 0),
                                 lambda: loadgen.spike(10, 2, at=3),
                                 lambda: loadgen.closed(0, 1)])
def test_bad_schedules_raise_lootlab_errors(bad):
    with pytest.raises(LootlabError):
        bad()


_NAN, _INF = float("nan"), float("inf")


@pytest.mark.parametrize("bad", [
    lambda: loadgen.constant(1, 0.001), lambda: loadgen.poisson(1, 0.5),
    lambda: loadgen.ramp(1, 1, 0.5), lambda: loadgen.spike(1, 0.5, factor=1),
    lambda: loadgen.constant(_NAN, 1), lambda: loadgen.constant(1, _NAN),
    lambda: loadgen.constant(_INF, 1), lambda: loadgen.poisson(-5, 1),
    lambda: loadgen.ramp(10, 20, -1), lambda: loadgen.spike(10, 2, factor=_NAN),
    lambda: loadgen.spike(10, 2, length=_NAN), lambda: loadgen.closed(1, 1, think_time=_NAN),
    lambda: loadgen.closed(1, 0)])
def test_schedules_that_cannot_measure_anything_are_refused(bad):
    with pytest.raises(loadgen.ScheduleError):
        bad()


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-3, 1e5), st.floats(1e-4, 10.0))
def test_a_constant_schedule_offers_what_was_asked_or_is_refused(rate, duration):
    if rate * duration < 1:
        with pytest.raises(loadgen.ScheduleError, match="fewer than one"):
            loadgen.constant(rate, duration)
        return
    s = loadgen.constant(rate, duration)
    # whole requests only: at most one more than rate x duration, never none
    assert 1 <= len(s) <= rate * duration + 1
    assert rate <= s.rate * (1 + 1e-9) and s.rate <= 2 * rate


# --------------------------------------------------------------------------- histograms
@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, hist.HIGHEST_NS), min_size=1, max_size=400),
       st.integers(1, 5))
def test_merged_parts_equal_one_histogram_of_all_values(values, parts):
    """What the runner does across P processes: record each share, encode, decode, add."""
    values = np.array(values, np.int64)
    single, dropped = hist.histogram_of(values)
    assert dropped == 0
    blobs = []
    for share in np.array_split(values, parts):
        h, d = hist.histogram_of(share)
        assert d == 0
        blobs.append(hist.encode(h))
    merged = hist.merge(hist.decode(b) for b in blobs)
    assert merged.equals(single)
    # and one-by-one recording (hdrh's own path) agrees with the bulk path
    ref = hist.new_histogram()
    for v in values.tolist():
        assert ref.record_value(v)
    assert ref.equals(single)
    ps = [0, 25, 50, 90, 99, 99.9, 100]
    assert hist.percentiles(single, ps).tolist() == [ref.get_value_at_percentile(p) for p in ps]


def test_out_of_range_values_are_counted_never_silent():
    h = hist.new_histogram()
    assert hist.record_many(h, np.array([-5, 10, 2 * hist.HIGHEST_NS, 3])) == 2
    assert h.get_total_count() == 2


def test_a_latency_beyond_the_histogram_marks_the_run_invalid():
    two_hours = 2 * 3600 * NS
    res, _ = virtual_run([1000, two_hours] + [1000] * 8, loadgen.constant(10, 1))
    assert not res.health.valid
    assert any("outside the histogram" in r for r in res.health.reasons)


# --------------------------------------------------------------------------- exactness
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), rate=st.sampled_from([500.0, 2000.0, 9000.0]),
       kind=st.sampled_from(["constant", "poisson"]))
def test_virtual_time_results_match_the_queueing_oracle_exactly(seed, rate, kind):
    """Known service times (lognormal, sometimes longer than the gap, so requests queue):
    service histogram = the known values, latency histogram = Lindley's recursion from the
    intended times; percentiles within histogram precision of the exact order statistics."""
    sched = (loadgen.constant if kind == "constant" else loadgen.poisson)(rate, 1.0, seed=seed)
    rng = np.random.default_rng(seed)
    service = np.maximum(1, rng.lognormal(np.log(60_000), 1.0, len(sched))).astype(np.int64)
    res, client = virtual_run(service, sched)
    assert client.calls == len(sched) == res.requests
    expect_svc, _ = hist.histogram_of(service)
    expect_lat, _ = hist.histogram_of(lindley(sched.offsets, service))
    assert res.service.equals(expect_svc)
    assert res.latency.equals(expect_lat)
    assert res.percentile_us(100, "generator_lag") == 0          # a perfect generator
    exact = np.sort(service)
    for p in (50, 90, 99, 99.9):
        k = max(1, int(p * len(exact) / 100 + 0.5))
        got = res.service_us(p) * 1000
        assert exact[k - 1] <= got <= exact[k - 1] * (1 + 1 / 1024) + 1


def test_a_generator_that_loses_time_is_taken_out_but_a_slow_answer_is_not():
    """A 300 ms answer holds back the requests due behind it: charged in full.  A
    generator that loses 5 ms every 50 sends while free: its lateness is measurement error,
    taken out of the latency and kept apart as its own distribution."""
    sched = loadgen.constant(1000, 2)
    fine, _ = virtual_run([50_000] * 999 + [300 * 10**6], sched)     # one 300 ms answer
    assert fine.health.valid, fine.health
    assert fine.latency_us(99) >= 100_000                             # the stall shows
    assert fine.percentile_us(100, "generator_lag") == 0
    hiccups = {i: 5 * 10**6 for i in range(0, 2000, 50)}             # generator loses 5 ms
    late, _ = virtual_run([50_000], sched, hiccups=hiccups)
    assert late.latency_us(100) == pytest.approx(50, rel=0.002)       # the answers' time
    assert late.percentile_us(99, "generator_lag") >= 4_000           # kept beside it
    assert late.percentile_us(99, "observed") >= 4_000
    assert late.percentile_us(100, "queue") == 0


def test_warmup_runs_at_the_starting_rate_and_is_discarded():
    sched = loadgen.ramp(100, 1000, 2)
    res, client = virtual_run([10_000], sched, warmup=0.5)
    assert res.counts["warmup_requests"] == 50                  # 0.5 s at 100/s
    assert client.calls == 50 + len(sched)
    assert res.requests == len(sched) == res.latency.get_total_count()
    assert "warm-up 0.5 s (50 requests) discarded" in res.describe()


def test_errors_are_counted_and_kept_out_of_the_latency_histogram():
    res, _ = virtual_run([20_000], loadgen.constant(1000, 1), fail_every=10)
    assert res.counts["failed"] == 100 and res.counts["ok"] == 900
    assert res.errors.get_total_count() == 100 and res.latency.get_total_count() == 900
    assert "RuntimeError: injected failure" in res.first_error
    assert any("error" in w for w in res.health.warnings)


def test_timeouts_are_counted_apart():
    res, _ = virtual_run([1_000_000] * 9 + [50_000_000], loadgen.constant(10, 2),
                         timeout=0.01)
    assert res.counts["timeouts"] == 2 and res.errors.get_total_count() == 2
    assert res.latency.get_total_count() == 18


def test_closed_loop_in_virtual_time_counts_the_stall_once():
    clock = VirtualClock()
    service = [1_000_000] * 10_000
    service[500] = 200_000_000                  # one 200 ms stall in ~1800 requests
    client = ServiceClient(clock, service)
    res = loadgen.run(lambda: client, loadgen.closed(1, 2.0), warmup=0, workload=QUERIES,
                      clock=clock)
    assert res.percentile_us(100) >= 200_000
    assert res.latency_us(99) <= 1_001          # omitted at p99
    assert res.requests == client.calls


# --------------------------------------------------------------------------- real time
def test_stall_shows_in_open_loop_and_is_omitted_in_closed_loop():
    """A client freezes 200 ms once, 0.4 s into a 1 s run.  Open loop (1000/s): every request
    due during the freeze waits for it, ~20 % of requests are >= 0-200 ms late, so p99 lands
    near the stall, as wrk2 would report.  Closed loop: the freeze delays one request, the
    ones it held back are never sent, and p99 stays tiny: the omission."""
    stalling = functools.partial(StallOnce, after=0.4)
    open_res = loadgen.run(stalling, loadgen.constant(1000, 1), warmup=0, workload=QUERIES)
    assert open_res.latency_us(99) >= 100_000
    assert open_res.percentile_us(100) >= 200_000
    ge_50ms = open_res.requests * (1 - _fraction_below(open_res, 50_000))
    assert ge_50ms >= 100                        # many requests delayed, not one
    closed_res = loadgen.run(stalling, loadgen.closed(1, 1, think_time=0.001), warmup=0,
                             workload=QUERIES)
    assert closed_res.percentile_us(100) >= 200_000      # the stall happened ...
    assert closed_res.latency_us(99) < 20_000            # ... but p99 omits it
    assert any("coordinated omission" in w for w in closed_res.health.warnings)


def _fraction_below(res, us: float) -> float:
    counts = hist.counts_array(res.latency)
    idx = np.arange(len(counts))
    values = hist._values_of_indices(res.latency, idx, highest=True)
    return counts[values < us * 1000].sum() / counts.sum()


def test_cheap_client_gets_the_offered_rate():
    """2000/s for 2 s is far below what any box can send: every scheduled request goes out
    (sent/offered, computed over the schedule, as the health rule does)."""
    res = loadgen.run(Noop, loadgen.constant(2000, 2), warmup=0, workload=QUERIES)
    assert res.counts["scheduled"] == 4000
    assert res.counts["measured"] / res.counts["scheduled"] >= 0.99
    assert res.achieved_rate >= 0.5 * res.offered_rate    # gross check only: timing-based
    assert res.counts["unsent"] == 0


def test_overloaded_generator_is_flagged_invalid():
    """Each call burns 20 us of CPU on the sender, so one sender can do <= 50 k/s on any
    machine; 200 k/s cannot be offered, and the verdict must say the generator failed."""
    res = loadgen.run(functools.partial(Spin, 20), loadgen.constant(200_000, 1), warmup=0,
                      workload=QUERIES, grace=0.5)
    assert not res.health.valid
    assert res.counts["unsent"] > 0
    assert any("generator" in r for r in res.health.reasons)


def test_two_processes_merge_into_one_result(tmp_path):
    res = loadgen.run(noop_factory, loadgen.constant(2000, 1), processes=2, warmup=0.2,
                      workload=QUERIES)
    assert len(res.worker_requests) == 2 and all(n > 0 for n in res.worker_requests)
    assert sum(res.worker_requests) == res.requests == res.counts["scheduled"] == 2000
    assert res.latency.get_total_count() == res.counts["ok"] == 2000
    assert sum(h.get_total_count() for h in res.intervals) == 2000
    assert res.counts["warmup_requests"] == 400


def test_unpicklable_factory_with_processes_says_what_to_do():
    with pytest.raises(LootlabError, match="module-level function"):
        loadgen.run(lambda: Noop(), loadgen.constant(10, 0.1), processes=2, warmup=0,
                    workload=QUERIES)


@pytest.mark.slow
def test_remote_variant_by_name_across_spawned_processes():
    """Each spawned worker opens its own gRPC channel to one shared loopback server."""
    from lootlab.targets import client_factory
    res = loadgen.run(client_factory("grpc-tls-pooled"), loadgen.constant(200, 1), processes=2,
                      warmup=0.2)
    assert res.counts["failed"] == 0 and res.counts["ok"] == 200, res.first_error
    assert res.worker_requests == [100, 100]


def test_mmap_variant_by_name_with_the_default_workload():
    from lootlab.targets import client_factory
    res = loadgen.run(client_factory("mmap"), loadgen.constant(500, 1), warmup=0.1)
    assert res.variant == "mmap" and res.counts["ok"] == 500 and res.counts["failed"] == 0
    assert 0 < res.latency_us(50) < res.percentile_us(100) + 1


# --------------------------------------------------------------------------- results
def test_results_round_trip_through_disk(tmp_path):
    res, _ = virtual_run([30_000, 90_000, 400_000], loadgen.spike(500, 3, factor=4, at=1,
                                                                  length=1))
    where = res.save(tmp_path / "r")
    assert (where / "summary.json").is_file() and (where / "latency.hlog").is_file()
    back = loadgen.LoadResult.load(where)
    for m in ("latency", "service", "send_lag", "errors", "generator_lag"):
        assert back.histogram(m).equals(res.histogram(m))
    assert back.to_frame().equals(res.to_frame())
    assert back.timeline().equals(res.timeline())
    assert back.health == res.health
    # the interval log is HdrHistogram's own format: its reader gets the same histograms
    reader = HistogramLogReader(str(where / "latency.hlog"), hist.new_histogram())
    logged = []
    while (h := reader.get_next_interval_histogram()) is not None:
        logged.append(h)
    assert [h.get_total_count() for h in logged] == \
        [h.get_total_count() for h in res.intervals] == [500, 2000, 500]
    assert all(a.equals(b) for a, b in zip(logged, res.intervals))
    with pytest.raises(LootlabError, match="summary.json"):
        loadgen.LoadResult.load(tmp_path / "missing")


def test_frames_are_tidy_and_the_timeline_follows_the_spike():
    res, _ = virtual_run([30_000], loadgen.spike(500, 3, factor=4, at=1, length=1))
    frame = res.to_frame()
    assert {"variant", "schedule", "rate", "percentile", "latency_us", "metric"} <= \
        set(frame.columns)
    assert set(frame["metric"]) == {"latency", "service", "send_lag"}
    lat = frame[frame.metric == "latency"].sort_values("percentile")
    assert lat["latency_us"].dropna().is_monotonic_increasing   # NaN: too few samples in the tail
    thin = lat[lat["latency_us"].isna()]
    assert (thin["n"] * (1 - thin["percentile"] / 100) < 10).all()
    tl = res.timeline()
    assert tl["offered"].tolist() == [500, 2000, 500]
    assert tl["count"].tolist() == [500, 2000, 500]
    spec = res.spectrum()
    assert spec["latency_us"].is_monotonic_increasing and spec["percentile"].max() > 99.99


def test_sweep_and_sustainable_rate():
    from lootlab.experiments.latency import sustainable, sweep

    df = sweep({"noop": noop_factory}, [500, 1000], 0.5, warmup=0, workload=QUERIES,
               p99_target_us=1e9)
    assert df["offered_per_s"].tolist() == [500, 1000] and df["meets_target"].notna().all()
    best = sustainable(df.assign(valid=True), 1e9)
    assert best.loc[0, "sustainable_per_s"] == 1000


def test_max_sustainable_finds_the_capacity_of_a_known_server():
    """100 us per request = 10 k/s capacity: below it p99 is the service time; at and above
    it the single sender is saturated (busy ~100 %, queue growing), so the search must end
    just under 10 k/s."""
    from lootlab.experiments.latency import max_sustainable

    clock = VirtualClock()
    client = ServiceClient(clock, [100_000])
    rate, trials = max_sustainable(lambda: client, 1_000, start_rate=1_000, duration=1,
                                   warmup=0, workload=QUERIES, clock=clock)
    assert 8_000 <= rate < 10_000
    met = trials["meets_target"].astype(bool)
    assert met.any() and not met.all()
    assert (trials.loc[met, "p99_ms"] <= 1.0).all()


def test_a_run_stuck_in_its_warmup_says_so():
    from lootlab.loadgen.health import judge
    counts = dict(sent=800, warmup_requests=800, measured=0, ok=0, failed=0, timeouts=0,
                  dropped=0)
    health = judge(open_loop=True, counts=counts, scheduled=40_000, busy=[1.0], max_busy=0.97,
                   offered_rate=4000, achieved_rate=0, cpu_cores=1.0, send_lag_p99_us=1e6,
                   generator_lag_p99_us=1e6, latency_p99_us=0.0, warmup=2.0, first_error="")
    assert not health.valid
    assert any("warm-up" in r and "800" in r for r in health.reasons)
