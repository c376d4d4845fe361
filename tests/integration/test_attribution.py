"""Each request's wait before sending is split into what the system caused (its sender was
still busy with earlier answers: charged in full, as coordinated omission demands) and the
generator's own lateness (the sender was free and sent late: measurement error, taken out
of the latency and kept beside it).  Oracle: Lindley's recursion over the service times,
what a generator with no overhead would have measured."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from _loadgen import QUERIES, ServiceClient, VirtualClock, lindley
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lootlab import loadgen
from lootlab.loadgen import hist
from lootlab.loadgen.clock import Clock

MS = 10**6


def _p(values_ns: np.ndarray, p: float) -> float:
    """Percentile p of exact values, through the same histogram the harness uses (us)."""
    h, _ = hist.histogram_of(np.asarray(values_ns, np.int64))
    return float(hist.percentiles(h, [p])[0]) / 1e3


def _pauses(seed: int, waits: int, share: float, most_ns: int) -> dict[int, int]:
    """Random generator pauses: ``share`` of the waits lose 0..``most_ns``."""
    rng = np.random.default_rng(seed)
    hit = np.flatnonzero(rng.random(waits) < share)
    return dict(zip(hit.tolist(), rng.integers(0, most_ns, len(hit)).tolist()))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_generator_pauses_are_taken_out_and_the_true_p99_recovered(seed):
    """Exponential service times (mean 20 us) at 1,000/s; the generator pauses 0-2 ms on
    5 % of its waits.  The latency's p99 is the pause-free truth within 10 %, while the
    timed (observed) p99 is pulled up by the pauses."""
    sched = loadgen.constant(1000, 3, seed=seed)
    rng = np.random.default_rng(seed + 1)
    service = np.maximum(1, rng.exponential(20_000, len(sched))).astype(np.int64)
    clock = VirtualClock(hiccups=_pauses(seed, len(sched), 0.05, 2 * MS))
    client = ServiceClient(clock, service)
    res = loadgen.run(lambda: client, sched, warmup=0, workload=QUERIES, clock=clock)
    truth = _p(lindley(sched.offsets, service), 99)
    assert res.latency_us(99) == pytest.approx(truth, rel=0.10)
    assert res.percentile_us(99, "observed") > 2 * truth
    assert res.percentile_us(99, "generator_lag") > 100          # the error, kept beside
    assert res.health.valid, res.health


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_a_200_ms_stall_at_1000_per_s_still_shows_at_p99(seed):
    """One answer freezes 200 ms: the ~200 requests due behind it waited for it, and are
    charged in full (as wrk2 charges them), generator pauses or not."""
    sched = loadgen.constant(1000, 5, seed=seed)
    service = np.full(len(sched), 30_000, np.int64)
    service[int(np.random.default_rng(seed).integers(100, 4_000))] = 200 * MS
    clock = VirtualClock(hiccups=_pauses(seed, len(sched), 0.02, 2 * MS))
    res = loadgen.run(lambda: ServiceClient(clock, service), sched, warmup=0,
                      workload=QUERIES, clock=clock)
    truth = lindley(sched.offsets, service)
    assert res.latency.equals(hist.histogram_of(truth)[0])      # exactly the oracle's
    assert res.latency_us(99) >= 100_000
    assert res.percentile_us(100, "queue") >= 190_000


def test_a_1_s_stall_every_10_s_at_200_per_s_still_shows_at_p99():
    sched = loadgen.constant(200, 30)
    service = np.full(len(sched), 50_000, np.int64)
    service[1_000::2_000] = 1_000 * MS                           # 1 s, every 10 s
    clock = VirtualClock(hiccups=_pauses(7, len(sched), 0.05, 2 * MS))
    res = loadgen.run(lambda: ServiceClient(clock, service), sched, warmup=0,
                      workload=QUERIES, clock=clock)
    truth = lindley(sched.offsets, service)
    assert res.latency.equals(hist.histogram_of(truth)[0])
    assert res.latency_us(99) >= 800_000                          # ~10 % of requests wait
    assert res.health.valid and not res.health.saturated, res.health


# --------------------------------------------------------------------------- real time
class PausingClock(Clock):
    """The real clock, whose sender sometimes pauses 0-2 ms after waking (a generator
    descheduled, or collecting garbage) before it sends."""

    def __init__(self, share: float, seed: int):
        super().__init__(1, None)
        self.rng = random.Random(seed)
        self.share = share
        self.first_due: int | None = None

    def wait_until(self, due: int) -> None:
        if self.first_due is None:
            self.first_due = due             # the first request's intended send time
        super().wait_until(due)
        if self.rng.random() < self.share:
            end = time.perf_counter_ns() + self.rng.randrange(0, 2 * MS)
            while time.perf_counter_ns() < end:
                pass


class ExpSpin:
    """Spins an exponential service time (mean 20 us) and records the time it took itself,
    independently of the generator's stamps."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.spans: list[tuple[int, int]] = []

    def near(self, x, y, z, r):
        t = time.perf_counter_ns()
        end = t + int(self.rng.expovariate(1 / 20_000))
        while time.perf_counter_ns() < end:
            pass
        self.spans.append((t, time.perf_counter_ns()))


def test_real_pauses_are_taken_out_against_the_clients_own_stamps():
    """In real time: the truth is Lindley's recursion over the client's own service times
    from the intended send times; the harness's latency p99 is within 10 % of it."""
    client = ExpSpin(3)
    clock = PausingClock(0.05, 3)
    sched = loadgen.constant(1000, 3)
    res = loadgen.run(lambda: client, sched, warmup=0, workload=QUERIES, clock=clock)
    spans = np.asarray(client.spans, np.int64)
    service = spans[:, 1] - spans[:, 0]
    assert len(service) == len(sched)
    intended = sched.offsets - sched.offsets[0] + clock.first_due
    truth = _p(lindley(intended, service), 99)
    assert res.latency_us(99) == pytest.approx(truth, rel=0.10, abs=5.0)
    assert res.percentile_us(99, "observed") > 3 * truth


# --------------------------------------------------------------------------- saturation
def _virtual(service_ns, rate: float, seconds: float = 2.0):
    clock = VirtualClock()
    return loadgen.run(lambda: ServiceClient(clock, service_ns), loadgen.constant(rate, seconds),
                       warmup=0, workload=QUERIES, clock=clock, grace=60)


def test_an_offered_rate_beyond_the_variant_is_saturated_not_a_p99():
    """2 ms answers at 1,000/s through one sender: it serves 500/s, so the latency is a
    queue growing through the run.  The verdict says saturated at about 500/s."""
    res = _virtual([2 * MS], 1000)
    assert res.health.saturated and not res.health.valid
    assert res.health.capacity_per_s == pytest.approx(500, rel=0.01)
    assert any(r.startswith("saturated at about 500/s") for r in res.health.reasons)
    assert res.summary()["saturated"] and res.summary()["capacity_per_s"] == \
        pytest.approx(500, rel=0.01)


def test_a_busy_but_steady_sender_is_not_saturated():
    """0.9 ms answers evenly at 1,000/s: 90 % busy, and no request ever waits."""
    res = _virtual([900_000], 1000)
    assert not res.health.saturated and res.health.valid, res.health
    assert res.percentile_us(100, "queue") == 0


def test_most_requests_queued_is_a_queue_even_below_full_utilization():
    """One 3 ms answer then three of 0.1 ms, at 1,000/s: 82 % busy, but three requests of
    four wait behind the long one, longer than they take: the figure is a queue's."""
    res = _virtual([3 * MS, 100_000, 100_000, 100_000], 1000)
    assert res.health.saturated and not res.health.valid
    assert any("waited longer to be sent" in r for r in res.health.reasons)


def test_saturation_survives_saving_and_loading(tmp_path):
    res = _virtual([2 * MS], 1000)
    back = loadgen.LoadResult.load(res.save(tmp_path / "r"))
    assert back.health.saturated and back.health.capacity_per_s == pytest.approx(
        res.health.capacity_per_s)
    assert back.observed.equals(res.observed) and back.queue.equals(res.queue)
