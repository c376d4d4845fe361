"""The health verdict grades validity by the error a fault can cause and blames the right
side: the generator's own lag is taken out of the latency and graded as the instrument's
resolution (where it stays in, under a CPU limit, a large one invalidates); a
slow server is blamed on the server, a generator that sends late on the generator; a run
swallowed by its warm-up still reports what it saw; completions over the whole run count."""

from __future__ import annotations

import functools
import math
import time

import pytest

from lootlab import loadgen
from lootlab.loadgen.health import Health, judge
from lootlab.loadgen.results import LoadResult
from lootlab.loadgen.workers import local_server

from _loadgen import QUERIES, ServiceClient, Spin, VirtualClock

MS = 10**6


def virtual_run(service_ns, schedule, *, clock=None, warmup=0.0, **kw):
    clock = clock or VirtualClock()
    client = ServiceClient(clock, service_ns)
    return loadgen.run(lambda: client, schedule, warmup=warmup, workload=QUERIES, clock=clock,
                       **kw)


def old_rule_invalid(generator_lag_p99_us: float, latency_p99_us: float) -> bool:
    """An early rule: INVALID when the generator's own lag p99 exceeded
    max(100 us, 10 % of the latency p99), whatever else the run showed."""
    return generator_lag_p99_us > max(100.0, 0.10 * latency_p99_us)


def _counts(measured: int, **kw) -> dict[str, int]:
    base = dict(sent=measured, warmup_requests=0, measured=measured, ok=measured, failed=0,
                timeouts=0, dropped=0)
    return base | kw


def _judge(**kw) -> Health:
    args = dict(open_loop=True, counts=_counts(1000), scheduled=1000, busy=[0.05],
                max_busy=0.97, offered_rate=200.0, achieved_rate=200.0, cpu_cores=0.05,
                send_lag_p99_us=0.0, generator_lag_p99_us=0.0, latency_p99_us=0.0,
                warmup=0.0, first_error="", blocked=[0.04], process_cpu=[0.05], cores=2)
    return judge(**(args | kw))


# --------------------------------------------------------------------------- lag bound
def test_a_modest_generator_lag_is_taken_out_and_stated_as_the_resolution():
    """200/s, 2 ms answers, the generator loses 0.5 ms on every 10th send: its own lag p99
    is 0.5 ms.  Taken out, the latency is the answers' 2 ms; as timed (``observed``) it
    is 2.5 ms; the warning gives the resolution."""
    hiccups = {i: MS // 2 for i in range(0, 400, 10)}
    res = virtual_run([2 * MS], loadgen.constant(200, 2), clock=VirtualClock(hiccups=hiccups))
    lag99, lat99 = res.lag_bound_us(99), res.latency_us(99)
    assert 400 <= lag99 <= 600
    assert lat99 == pytest.approx(2_000, rel=0.002)
    assert res.percentile_us(99, "observed") == pytest.approx(2_500, rel=0.002)
    assert old_rule_invalid(lag99, lat99)                 # what an early judge said
    assert res.health.valid, res.health
    assert res.health.bottleneck == "none"
    assert res.health.lag_bound_us == pytest.approx(lag99)
    assert any(w.startswith("the generator's own send error reached 0.5 ms at p99")
               for w in res.health.warnings), res.health.warnings
    assert res.health.to_dict()["lag_bound_us"]["99"] == pytest.approx(lag99)


def test_a_large_generator_lag_is_taken_out_and_the_run_stays_valid():
    """5 ms lost every 50 sends at 1,000/s with 50 us answers: the schedule was kept, the
    lag is the generator's alone, so the latency is the answers' and the run is VALID with
    a warning that the instrument was coarse; nothing is blamed on the system."""
    hiccups = {i: 5 * MS for i in range(0, 2000, 50)}      # 5 ms lost every 50 sends
    res = virtual_run([50_000], loadgen.constant(1000, 2), clock=VirtualClock(hiccups=hiccups))
    assert res.health.valid, res.health
    assert res.latency_us(100) == pytest.approx(50, rel=0.002)
    assert res.percentile_us(100, "observed") >= 5_000
    assert any("instrument is coarse" in w for w in res.health.warnings)


def test_the_lag_rule_at_its_edges():
    lat = {50.0: 1_000.0, 99.0: 4_000.0}
    ok = _judge(latency_us=lat, lag_bound_us={50.0: 0.0, 99.0: 1_999.0})
    assert ok.valid and any("p99 4.0 ms may include up to 2.0 ms" in w for w in ok.warnings)
    bad = _judge(latency_us=lat, lag_bound_us={50.0: 0.0, 99.0: 2_001.0}, process_cpu=[0.9])
    assert not bad.valid and bad.bottleneck == "generator"        # CPU-bound and late
    p50 = _judge(latency_us=lat, lag_bound_us={50.0: 600.0, 99.0: 600.0})
    assert not p50.valid
    assert any("p50 1.0 ms may include up to 0.6 ms (60%)" in r for r in p50.reasons)
    tiny = _judge(latency_us={50.0: 20.0, 99.0: 40.0}, lag_bound_us={50.0: 0.0, 99.0: 90.0})
    assert tiny.valid and any("below the floor" in w for w in tiny.warnings)
    quiet = _judge(latency_us=lat, lag_bound_us={50.0: 0.0, 99.0: 300.0})
    assert quiet.valid and not quiet.warnings and quiet.bottleneck == "none"


# --------------------------------------------------------------------------- blame
class SlowServer:
    """Answers after ``seconds`` of sleep: a server slower than the schedule's interval,
    costing the generator no CPU while it waits."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def near(self, x, y, z, r):
        time.sleep(self.seconds)


def test_a_slow_server_is_blamed_on_the_server_in_virtual_time():
    res = virtual_run([2 * MS], loadgen.constant(1000, 1), grace=2.0)
    assert not res.health.valid                   # the schedule was not kept ...
    assert res.health.bottleneck == "server"      # ... because the answers were slow
    assert any("bottleneck was the server" in r and "concurrency exhausted" in r
               for r in res.health.reasons), res.health.reasons
    assert not any("the generator:" in r for r in res.health.reasons)


def test_a_slow_server_is_blamed_on_the_server_in_real_time():
    """Each call sleeps 4 ms at 500/s (2 ms apart), concurrency 1, one process."""
    res = loadgen.run(lambda: SlowServer(0.004), loadgen.constant(500, 1), warmup=0,
                      workload=QUERIES, grace=3.0)
    assert res.health.bottleneck == "server", res.health
    assert max(res.busy) > 0.97
    assert any("bottleneck was the server" in r for r in res.health.reasons)


class LoopCostClock(VirtualClock):
    """Virtual time in which the sender's loop costs ``cost`` ns outside its calls: a
    generator slower than the schedule (CPU-bound sending), late before any answer is due.
    A late sender reads the clock twice per request (before the send, after the answer):
    the first read of each pair carries the cost, so the time inside calls stays exact."""

    def __init__(self, cost: int):
        super().__init__()
        self.cost = cost
        self.reads = 0

    def now(self) -> int:
        if self.reads % 2 == 0:
            self.t += self.cost
        self.reads += 1
        return self.t


def test_a_generator_that_sends_late_on_its_own_is_blamed_on_the_generator():
    res = virtual_run([10_000], loadgen.constant(1000, 1), clock=LoopCostClock(1_500_000),
                      grace=2.0)
    assert not res.health.valid
    assert res.health.bottleneck == "generator", res.health
    assert any("late outside any call" in r for r in res.health.reasons)
    assert not any("bottleneck was the server" in r for r in res.health.reasons)


def test_calls_that_burn_the_generator_cpu_are_the_generator():
    h = _judge(busy=[1.0], blocked=[0.95], process_cpu=[0.98], cpu_cores=0.98)
    assert not h.valid and h.bottleneck == "generator"
    assert any("burned its own CPU" in r for r in h.reasons)
    # on a busy machine the spinning client got 0.3 core, but it never switched out
    # voluntarily: still the generator's CPU, not a wait on a server
    starved = _judge(busy=[1.0], blocked=[0.95], process_cpu=[0.3], offcpu=[False])
    assert starved.bottleneck == "generator" and "computing on the CPU" in starved.evidence[0]
    waiting = _judge(busy=[1.0], blocked=[0.95], process_cpu=[0.05], offcpu=[True])
    assert waiting.bottleneck == "server" and "waiting off the CPU" in waiting.evidence[0]


def test_a_cpu_bound_client_is_the_generator_in_real_time():
    """Each call spins 20 us on the sender's thread (an in-process client's work): 200 k/s
    cannot be sent, and the blame is the generator's even when a busy machine gives the
    spinning thread a fraction of a core (it is descheduled, never waiting)."""
    res = loadgen.run(functools.partial(Spin, 20), loadgen.constant(200_000, 1), warmup=0,
                      workload=QUERIES, grace=0.5)
    assert not res.health.valid and res.health.bottleneck == "generator", res.health
    assert any("burned its own CPU" in r for r in res.health.reasons)


# --------------------------------------------------------------------------- counting
def test_a_run_swallowed_by_its_warmup_reports_the_warmup_histogram():
    """10 ms answers at 1000/s: until the hard stop at 2.5 s the single sender starts 251
    requests, all of them scheduled in the 1 s warm-up; they are reported, marked."""
    res = virtual_run([10 * MS], loadgen.constant(1000, 1), warmup=1.0, grace=0.5)
    assert res.requests == 0 and res.counts["warmup_requests"] == 251
    assert res.window == "warm-up only"
    assert res.latency.get_total_count() == 251
    assert res.latency_us(50) > 10_000                  # queued behind slow answers
    assert not res.health.valid
    assert any("warm-up only" in r for r in res.health.reasons)
    assert res.completed_total == 251                   # the last answer came at 2.51 s
    assert res.achieved_total_per_s == pytest.approx(100, rel=0.01)


def test_completions_over_the_whole_run_are_counted(tmp_path):
    res = virtual_run([50_000], loadgen.constant(1000, 1), warmup=0.5)
    assert res.requests == 1000 and res.completed_total == 1500
    assert res.achieved_total_per_s == pytest.approx(1000, rel=0.01)
    assert res.window == "measured"
    back = LoadResult.load(res.save(tmp_path / "r"))
    assert back.completed_total == 1500 and back.window == "measured"
    assert back.achieved_total_per_s == pytest.approx(res.achieved_total_per_s)
    assert back.health == res.health


def test_an_old_health_record_still_loads():
    h = Health.from_dict({"valid": True, "reasons": [], "warnings": ["x"]})
    assert h == Health(True, (), ("x",)) and math.isnan(h.lag_bound_us)


# --------------------------------------------------------------------------- co-location
def test_a_generator_sharing_the_cores_with_a_loopback_server_is_warned():
    crowded = _judge(processes=8, concurrency=1, local_server="127.0.0.1:50051", cores=2)
    assert crowded.valid
    assert any("co-location" in w and "127.0.0.1:50051" in w and "8 processes" in w
               for w in crowded.warnings), crowded.warnings
    hot = _judge(local_server="127.0.0.1:50051", cpu_cores=1.5, cores=2)
    assert hot.bottleneck == "machine" and any("co-location" in w for w in hot.warnings)
    alone = _judge(processes=1, concurrency=1, local_server="127.0.0.1:50051", cores=2)
    remote = _judge(processes=8, concurrency=1, local_server="", cores=2)
    assert not any("co-location" in w for w in alone.warnings + remote.warnings)


@pytest.mark.parametrize("target,expect", [("127.0.0.1:50051", True), ("localhost:8080", True),
                                           ("http://127.0.0.1:8080", True), ("[::1]:9", True),
                                           ("10.1.2.3:50051", False),
                                           ("example.com:443", False)])
def test_a_loopback_server_is_recognised_from_the_client(target, expect):
    client = type("C", (), {"target": target})()
    assert bool(local_server(client)) is expect
    assert local_server(object()) == ""


# --------------------------------------------------------------------------- the server's CPU
def test_a_server_at_its_cpu_limit_is_the_bottleneck_and_the_run_stays_valid():
    """A saturated server is the system's limit: named, not an INVALID run; the
    threshold is per process, since each Python server process is GIL-bound at ~1 core."""
    busy = _judge(server={"cores": 0.93, "processes": 1})
    assert busy.valid and busy.bottleneck == "server"
    assert any("the server used 0.93 cores over the run with 1 process: it was "
               "saturated" in w for w in busy.warnings)
    spread = _judge(server={"cores": 0.93, "processes": 2})   # two processes: half busy
    assert spread.bottleneck == "none" and not any("saturated" in w for w in spread.warnings)
    assert _judge(server={}).bottleneck == "none"


def test_a_run_invalid_only_by_the_lag_bound_is_an_upper_bound():
    """INVALID because the generator's own lag may make up most of a percentile, with the
    schedule kept: its figures are upper bounds (``upper_bound``), which a comparison in
    which it is the faster side can still use; any other reason is not."""
    lat = {50.0: 1_000.0, 99.0: 4_000.0}
    lagged = _judge(latency_us=lat, lag_bound_us={50.0: 0.0, 99.0: 3_000.0})
    assert not lagged.valid and lagged.upper_bound
    assert Health.from_dict(lagged.to_dict()).upper_bound
    late = _judge(latency_us=lat, lag_bound_us={50.0: 0.0, 99.0: 3_000.0},
                  counts=_counts(900), scheduled=1000)          # 10 % never sent, too
    assert not late.valid and not late.upper_bound
    assert not _judge(latency_us=lat, lag_bound_us={50.0: 0.0, 99.0: 300.0}).upper_bound


# --------------------------------------------------------------------------- CPU limit
def _lagging(**kw) -> Health:
    """A sender 1 % late by 40 ms at p99 (own lag 39 ms of a 40 ms p99), kept schedule."""
    return _judge(latency_p99_us=40_000.0, generator_lag_p99_us=39_000.0,
                  latency_us={50.0: 300.0, 99.0: 40_000.0},
                  lag_bound_us={50.0: 20.0, 99.0: 39_000.0}, process_cpu=[0.25],
                  cpu_cores=0.25, **kw)


def test_lag_the_cpu_limit_throttled_is_the_limits_and_the_run_stays_valid():
    """The same lag: with the cgroup throttling 18 of 20 periods (900 ms of a 2 s window)
    the verdict names the limit and stays VALID; without throttling it is INVALID and the
    generator's (or the machine's) doing, as before."""
    throttled = {"periods": 20, "throttled_periods": 18, "throttled_ms": 900.0,
                 "throttled_share": 0.9}
    limited = _lagging(throttle=throttled, window_s=2.0)
    assert limited.valid and limited.bottleneck == "cpu-limit", limited
    assert "CPU limit: throttled 18 of 20 periods (900 ms)" in str(limited)
    assert not any("generator itself" in r for r in limited.reasons)
    assert limited.lag_bound_us == 39_000.0           # the bound is still stated
    unthrottled = _lagging(throttle={**throttled, "throttled_periods": 0,
                                     "throttled_ms": 0.0, "throttled_share": 0.0},
                           window_s=2.0)
    plain = _lagging()
    for h in (unthrottled, plain):
        assert not h.valid and h.bottleneck in ("generator", "machine"), h
        assert any("generator itself sent late" in r for r in h.reasons)
        assert "CPU limit" not in str(h)


def test_a_quota_binding_in_most_periods_owns_the_queue_behind_it_even_at_p50():
    """Throttled in 16 of 16 periods, stalls covering 47 % of the window (under p50's 50 %):
    the group ran at its quota throughout, so the p50 lag of the queue behind the stalls is
    the limit's as well (a real run at 6,000/s under 0.25 core gave exactly this)."""
    binding = {"periods": 16, "throttled_periods": 16, "throttled_ms": 708.0,
               "throttled_share": 1.0}
    kw = {"latency_us": {50.0: 12_600.0, 99.0: 45_400.0},
          "lag_bound_us": {50.0: 12_000.0, 99.0: 45_300.0}, "latency_p99_us": 45_400.0,
          "generator_lag_p99_us": 45_300.0, "process_cpu": [0.25], "cpu_cores": 0.25}
    h = _judge(**kw, throttle=binding, window_s=1.5)
    assert h.valid and h.bottleneck == "cpu-limit", h
    assert sum("CPU limit: throttled 16 of 16 periods" in w for w in h.warnings) == 2
    sparse = {**binding, "periods": 40, "throttled_share": 0.4}     # not binding: p50 not
    assert not _judge(**kw, throttle=sparse, window_s=1.5).valid


def test_a_little_throttling_does_not_excuse_a_tail_it_cannot_explain():
    """One 5 ms stall in a 10 s window covers 0.05 % of the requests: it cannot make the
    p99, so a 39 ms own lag at p99 stays the generator's fault."""
    little = {"periods": 100, "throttled_periods": 1, "throttled_ms": 5.0,
              "throttled_share": 0.01}
    h = _lagging(throttle=little, window_s=10.0)
    assert not h.valid and h.bottleneck != "cpu-limit", h


def test_a_throttled_sender_that_could_not_keep_the_schedule_names_the_limit():
    """Busy 99 % (never waiting for a due time) under a limit that throttled most periods:
    a warning naming the limit, not a reason; the same without throttling is INVALID."""
    throttled = {"periods": 30, "throttled_periods": 30, "throttled_ms": 2_000.0,
                 "throttled_share": 1.0}
    busy = {"busy": [0.99], "blocked": [0.6], "offcpu": [False]}
    h = _judge(**busy, throttle=throttled, window_s=3.0, process_cpu=[0.25])
    assert h.valid and h.bottleneck == "cpu-limit", h
    assert any("CPU limit: throttled 30 of 30 periods" in w for w in h.warnings), h
    assert not _judge(**busy, process_cpu=[0.25]).valid
    assert Health.from_dict(h.to_dict()) == h
