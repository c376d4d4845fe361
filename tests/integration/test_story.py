"""The story's experiments (``lootlab.experiments.story``) and their words (``lootlab.report.story_text``).

The rebuild-under-load run drives its readers through ``loadgen`` on a small world; the
verdict is checked on rows made by ``story.step_row`` (an ``experiments.rows.Measurement``)
from a real (small, mmap) LoadResult.
"""

from __future__ import annotations

import functools

import pandas as pd
import pytest

import lootlab
from lootlab import loadgen
from lootlab.experiments import story
from lootlab.errors import LootlabError
from lootlab.experiments.rows import Measurement
from lootlab.experiments.rebuild_under_load import RebuildRun, rebuild_under_load
from lootlab.report.rebuild import rebuild_rows, rebuild_verdict
from lootlab.report.story_text import summary_rows, verdict

RATE, DURATION, WARMUP = 200, 3.0, 0.5


@pytest.fixture(scope="module")
def rebuild_run(tmp_path_factory) -> RebuildRun:
    return rebuild_under_load("local", rate=RATE, duration=DURATION, swap_every=0.5,
                                    check_every=0.1, records=20_000, warmup=WARMUP,
                                    workdir=tmp_path_factory.mktemp("rebuild"))


def test_rebuild_readers_go_through_loadgen_and_see_the_swaps(rebuild_run):
    run = rebuild_run
    assert run.load.variant == "rebuild-local" and run.load.processes == 1
    assert len(run.swaps) > 0 and (run.swaps["t_s"].between(0, DURATION)).all()
    assert len(run.generations_seen) > 1
    assert run.errors == 0 and run.load.counts["failed"] == 0
    # the measured requests are the schedule's; the warm-up ran first and was discarded
    assert run.load.requests == len(loadgen.constant(RATE, DURATION))
    assert run.load.counts["warmup_requests"] == int(RATE * WARMUP)
    # the reader log holds changes only: one row per generation seen, in order
    assert run.seen["generation"].is_monotonic_increasing
    assert run.seen["generation"].is_unique


def test_rebuild_windows_cover_the_run_and_the_summary_carries_health(rebuild_run):
    win = rebuild_run.windows()
    assert list(win["t_s"][:3]) == [0.0, 1.0, 2.0] and win["t_end_s"].max() >= DURATION
    assert win["count"].sum() == rebuild_run.load.requests
    assert (win["p50_ms"] <= win["p99_ms"]).all() and (win["p99_ms"] <= win["max_ms"]).all()
    two = rebuild_run.windows(2)
    assert two["count"].sum() == rebuild_run.load.requests and len(two) < len(win)
    with pytest.raises(ValueError, match="whole number"):
        rebuild_run.windows(0.5)
    s = rebuild_run.summary()
    assert s["requests"] == rebuild_run.load.requests
    assert s["warmup_discarded"] == int(RATE * WARMUP)
    assert s["valid"] == rebuild_run.load.health.valid and isinstance(s["health"], str)
    assert s["swaps"] == len(rebuild_run.swaps) and s["generations_seen"] > 1


def test_rebuild_timeline_marks_the_swaps_and_report_words(rebuild_run):
    from lootlab.plots.steps import rebuild_timeline

    fig = rebuild_timeline([rebuild_run])
    ax = fig.axes[0]
    assert len(ax.lines) == 2 + len(rebuild_run.swaps)   # p99, p50, one line per swap
    assert "swaps" in ax.get_title()
    row, = rebuild_rows([rebuild_run])
    assert row["requests"] == rebuild_run.load.requests
    assert row["swaps"] == len(rebuild_run.swaps)
    assert row["run"] == ("valid" if rebuild_run.load.health.valid else "INVALID (see health)")
    assert all(len(str(v)) < 30 for v in row.values())     # no paragraph in a table cell
    assert rebuild_verdict([rebuild_run]).startswith(
        f"Zero reader errors across {len(rebuild_run.swaps)} swaps.")


# --- the verdict, on rows in run_steps' shape -----------------------------------------------

@pytest.fixture(scope="module")
def small_result(tmp_path_factory):
    import lootlab
    from lootlab.overlay import overlay_queries

    path = tmp_path_factory.mktemp("steps") / "loot.idx"
    lootlab.build_index(lootlab.generate_world(n=20_000, seed=1), path)
    with lootlab.open_index(path) as idx:
        queries = overlay_queries(idx, 512, seed=0, radius=32)
    return loadgen.run(functools.partial(lootlab.open_index, path), loadgen.constant(200, 1.0),
                       warmup=0.2, workload=queries, label="mmap")


def _steps(result, p99s, *, valid=None) -> pd.DataFrame:
    """``run_steps``' DataFrame (one trial per step) from real ``step_row``s through
    ``summarize_steps``, with p99 set to known numbers."""
    rows = [story.step_row(name, result) for name in list(story.STEPS)[: len(p99s)]]
    trials = Measurement.to_frame(rows)
    trials["p99_ms"] = p99s
    trials["p50_ms"] = [p / 3 for p in p99s]
    trials["p99_ci_low_ms"] = trials["p99_ci_high_ms"] = float("nan")   # the known p99s'
    trials["offered_per_s"] = trials["achieved_per_s"] = 200.0
    trials["valid"] = valid if valid is not None else [True] * len(p99s)   # the real run's
    trials["errors"] = 0                            # health depends on the box; set it here
    trials["n"] = 3000                              # enough samples behind every p99
    trials["bottleneck"], trials["p99_lag_bound_ms"] = "none", 0.0   # ditto
    trials["generator_error_p99_ms"] = 0.0          # ditto: the instrument's error
    trials["upper_bound"] = False                   # an INVALID row here is a late generator
    return story.summarize_steps(trials)


def test_step_row_has_the_columns_the_report_reads(small_result):
    row = story.step_row("mmap", small_result, trial=2)
    assert row["requests"] == 200 and row["writeup_p99_ms"] == 34.0
    assert row["trial"] == 2 and row["n"] == small_result.samples() > 0
    lo, hi = small_result.latency_ci_us(99)
    # the latency is corrected for the generator's own lateness: the interval is the
    # histogram's own, and the generator's error p99 travels beside it as the resolution
    assert (row["p99_ci_low_ms"], row["p99_ci_high_ms"]) == (max(0.0, lo) / 1e3,
                                                             hi / 1e3) or lo != lo
    assert row["generator_error_p99_ms"] == pytest.approx(
        small_result.percentile_us(99, "generator_lag") / 1e3)
    assert "p99_lag_bound_ms" not in row
    assert row["saturated"] is bool(getattr(small_result.health, "saturated", False))
    assert row["bottleneck"] == small_result.health.bottleneck
    assert row["p50_ms"] <= row["p99_ms"] <= row["p999_ms"]
    assert row["health"] == "ok" or not row["valid"]


def test_verdict_names_the_first_last_and_largest_gain_from_the_rows(small_result):
    text = verdict(_steps(small_result, [40.0, 30.0, 12.0, 8.0, 0.5]))
    assert "40.0 ms (grpc-tls-fresh) to 0.50 ms (mmap), 80.0x lower" in text
    assert "largest gain that stands clear of trial-to-trial noise was grpc-tls-pooled" in text
    assert "18.0 ms" in text
    assert "could not keep" not in text and "failed" not in text
    assert "Each step ran once: a single trial has no spread" in text
    text = verdict(_steps(small_result, [5.0, 9.0, 4.0, 3.0, 6.0]))
    assert "mmap did not beat grpc-tls-fresh" in text
    assert "p99 got worse at: grpc-tls-resumed, mmap" in text


def test_a_faster_step_whose_p99_is_an_upper_bound_still_bounds_the_ratio(small_result):
    """mmap INVALID only because the generator's own lag may make up its p99 (the schedule
    kept): the headline says "at most" and gives the ratio as a bound, never a bare figure;
    any other INVALID still refuses it."""
    steps = _steps(small_result, [40.0, 30.0, 12.0, 8.0, 0.5],
                   valid=[True, True, True, True, False])
    steps["upper_bound"] = [False, False, False, False, True]
    text = verdict(steps)      # (the rows' own upper_bound came from _steps: all False)
    assert text.startswith("At 200 requests/s, p99 went from 40.0 ms (grpc-tls-fresh) to at "
                           "most 0.50 ms (mmap), about 80x lower and at least 80x across the "
                           "trials: mmap's p99 is an upper bound")
    assert "sent at the offered rate, but its own lateness may make up most of the p99" in text
    assert "could not keep the schedule" not in text
    steps["upper_bound"] = False
    assert verdict(steps).startswith("No ratio between grpc-tls-fresh and mmap is named")


def test_an_invalid_row_is_named_as_the_generators_limit(small_result):
    steps = _steps(small_result, [40.0, 30.0, 12.0, 8.0, 0.5],
                   valid=[True, True, False, True, True])
    text = verdict(steps)
    assert ("The load generator could not keep the schedule for grpc-tls-pooled (1 of 1 trial "
            "INVALID: rerun on a quieter machine): those numbers describe the generator's limit "
            "as much as the variant.") in text
    # the gains around the invalid step are not called; the rest are
    assert "largest gain that stands clear of trial-to-trial noise was grpc-tls-resumed" in text
    # a p99 on fewer than 10 tail samples is never a ratio, nor a number in the table
    steps["n"] = 300
    text = verdict(steps)
    assert "x lower" not in text and "rests on fewer than 10 samples" in text
    assert summary_rows(steps)[0]["p99 (ms)"] == "too few samples (n=300)"
    steps["n"] = 3000
    rows = summary_rows(steps)
    assert [r["run"] for r in rows] == ["valid", "valid", "INVALID (see health)", "valid",
                                        "valid"]
    assert rows[-1]["write-up p99 (ms)"] == 34.0
    assert rows[1]["write-up p99 (ms)"] == "n/a: the write-up gave none"
    assert rows[0]["p99 (ms)"] == 40.0 and rows[0]["trials"] == 1
    steps.loc[0, "achieved_per_s"] = 150.0
    assert ("At 200 requests/s, grpc-tls-fresh could not keep up here (it completed 150/s: "
            "it is saturated at this load)") in verdict(steps)
    # blame goes where the health verdict put it, in the sentence and in the table
    steps["bottleneck"] = ["server", "none", "none", "none", "none"]
    assert "(it completed 150/s: the server was saturated)" in verdict(steps)
    assert summary_rows(steps)[0]["run"] == "valid; server saturated"
    steps.loc[0, "bottleneck"] = "cpu-limit"          # the condition under study, named
    assert "(it completed 150/s: the CPU limit throttled the client side)" in verdict(steps)
    assert summary_rows(steps)[0]["run"] == "valid; throttled by its CPU limit"
    steps.loc[0, "bottleneck"] = "server"
    # an instrument error over a tenth of the p99 is said beside the figure
    steps["generator_error_p99_ms"] = [0.0, 0.0, 0.0, 0.0, 0.2]
    assert summary_rows(steps)[-1]["run"] == "valid; instrument error 0.20 ms"
    assert summary_rows(steps)[1]["run"] == "valid"
    # rows from before the correction: the lag bound, as they said it
    steps = steps.drop(columns="generator_error_p99_ms")
    steps["p99_lag_bound_ms"] = [0.0, 0.0, 0.0, 0.0, 0.2]
    assert summary_rows(steps)[-1]["run"] == "valid; generator lag up to 0.20 ms"
    assert verdict(steps.iloc[:0]) == "No step was measured."


def test_start_server_prefers_the_cpp_server_and_says_which(tmp_path, monkeypatch):
    """The remote steps talk to the competent C++ server when it is built, to the
    lab's Python server otherwise, and the words say which; a wrong kind is named."""
    from lootlab import targets
    from lootlab.remote.cppserver import CppServer
    from lootlab.remote.loopback import LoopbackServer

    from _remote import small_index

    path = small_index(tmp_path / "idx", n=2_000)
    with pytest.raises(LootlabError, match="server kind must be one of auto, cpp, python"):
        targets.start_server("go")
    server, words = targets.start_server("python", index=path)
    try:
        assert isinstance(server, LoopbackServer) and "Python gRPC server" in words
    finally:
        server.stop()
    monkeypatch.setenv("LOOTLAB_CPP_SERVER", str(tmp_path / "missing"))
    server, words = targets.start_server("auto", index=path)
    try:
        assert isinstance(server, LoopbackServer) and "`make cpp-server`" in words
    finally:
        server.stop()
    with pytest.raises(LootlabError, match="not built"):
        targets.start_server("cpp", index=path)
    monkeypatch.delenv("LOOTLAB_CPP_SERVER")
    try:
        from lootlab.remote.cppserver import find_binary
        find_binary()
    except LootlabError:
        pytest.skip("the C++ server is not built here (make cpp-server)")
    server, words = targets.start_server("auto", index=path)
    try:
        assert isinstance(server, CppServer) and "C++ gRPC server" in words
        from lootlab.targets import client_factory

        with client_factory("grpc-tls-pooled", server)() as client, lootlab.open_index(path) as idx:
            x, y, z = (int(v) for v in idx.box((-10**6, -2048, -10**6),
                                               (10**6, 2047, 10**6))[0].tolist()[:3])
            assert client.near(x, y, z, 32).tolist() == idx.near(x, y, z, 32).tolist()
    finally:
        server.stop()


def test_run_steps_replays_every_step_under_the_conditions_asked(small_result, monkeypatch):
    """``network``/``cpu_limit`` reach every step's ``loadgen.run`` (nothing new is passed
    for loopback and no limit), and the rows and the summary carry the conditions and the
    throttling counters the results report."""
    import copy

    from lootlab.conditions.network import Network

    calls = []

    def fake_run(target, schedule, **kw):
        calls.append(kw)
        res = copy.copy(small_result)
        res.conditions = {"rtt_ms": 5.0, "jitter_ms": 0.0, "bandwidth_mbit": None,
                          "cpu_limit": 0.5, "cpu_limit_applied": True, "cpu_limit_note": ""}
        res.throttle = {"periods": 100, "throttled_periods": 40, "throttled_ms": 12.5,
                        "throttled_share": 0.4}
        return res

    monkeypatch.setattr(loadgen, "run", fake_run)
    run = story.run_steps(200, 1.0, variants={"a": object, "b": object}, trials=2,
                          network=5, cpu_limit=0.5)
    assert len(calls) == 4
    assert all(kw["network"] == Network(rtt_ms=5.0) and kw["cpu_limit"] == 0.5 for kw in calls)
    assert list(run.trials["rtt_ms"]) == [5.0] * 4 and list(run.trials["cpu_limit"]) == [0.5] * 4
    assert list(run.steps["throttled_periods"]) == [80.0, 80.0]     # summed over the trials
    assert list(run.steps["rtt_ms"]) == [5.0, 5.0]
    assert run.conditions["rtt_ms"] == 5.0 and run.conditions["cpu_limit_applied"] is True
    assert "a delaying proxy added 5 ms per round trip" in verdict(run.steps)
    calls.clear()
    plain = story.run_steps(200, 1.0, variants={"a": object})
    assert "network" not in calls[0] and "cpu_limit" not in calls[0]
    assert plain.conditions["rtt_ms"] == 0.0 and plain.conditions["cpu_limit"] is None
    assert "a loopback server here has no network latency" in verdict(
        plain.steps.assign(rtt_ms=0.0))
    with pytest.raises(LootlabError, match="cpu_limit must be a positive"):
        story.run_steps(200, 1.0, variants={"a": object}, cpu_limit=0)


# --- the corrected latency: valid runs are figures, saturated ones queues ---------------------

class _Fake:
    """A ``LoadResult``'s face as ``step_row`` reads it: p99 ``p99_ms`` with a 5 % interval,
    the generator's own send error p99 ``error_us`` (also what the old lag bound returned),
    and health, saturation and scheduling as the load generator reports them."""

    def __init__(self, p99_ms, error_us=20.0, *, valid=True, saturated=False,
                 capacity=float("nan"), achieved=200.0, scheduling="SCHED_FIFO 1"):
        self.p99_us, self.error_us = p99_ms * 1e3, error_us
        self.requests, self.offered_rate, self.achieved_rate = 3000, 200.0, achieved
        self.counts, self.server, self.conditions, self.throttle = {"failed": 0}, {}, {}, None
        self.env = {"scheduling": scheduling}
        from types import SimpleNamespace
        self.health = SimpleNamespace(
            valid=valid, reasons=() if valid else ("saturated: offered 200/s",),
            bottleneck="none", upper_bound=False, saturated=saturated, capacity_per_s=capacity)

    def latency_us(self, p):
        return self.p99_us * (p / 99.0) ** 4

    def service_us(self, p):
        return self.latency_us(p) / 2

    def latency_ci_us(self, p):
        return 0.95 * self.latency_us(p), 1.05 * self.latency_us(p)

    def lag_bound_us(self, p):
        return self.error_us

    def percentile_us(self, p, metric="latency"):
        return self.error_us if metric == "generator_lag" else self.latency_us(p)

    def samples(self):
        return 3000

    def split_us(self):
        return {}


def _fake_steps(results):
    trials = Measurement.to_frame(story.step_row(name, res) for name, res in
                                  zip(story.STEPS, results))
    return story.summarize_steps(trials)


def test_when_every_step_is_valid_the_headline_states_a_ratio():
    """The latency is already corrected for the generator's own lateness, so a valid run's
    interval is not widened down by it: a fresh step whose generator error is as large as
    its p99 still stands apart from mmap, and the ratio is named, not "at most"."""
    steps = _fake_steps([_Fake(40.0, error_us=39_000.0), _Fake(30.0), _Fake(12.0),
                         _Fake(8.0), _Fake(0.5)])
    assert list(steps["p99_ci_low_ms"]) == pytest.approx([38.0, 28.5, 11.4, 7.6, 0.475])
    text = verdict(steps)
    assert text.startswith("At 200 requests/s, p99 went from 40.0 ms (grpc-tls-fresh) to "
                           "0.50 ms (mmap), 80.0x lower.")
    assert "at most" not in text
    assert list(steps["generator_error_p99_ms"]) == [39.0, 0.02, 0.02, 0.02, 0.02]


def test_a_saturated_step_is_named_with_its_rate_never_its_p99():
    steps = _fake_steps([_Fake(40.0), _Fake(30.0), _Fake(12.0), _Fake(8.0),
                         _Fake(900.0, valid=False, saturated=True, capacity=83.4,
                               achieved=70.0)])
    assert bool(steps["saturated"].iloc[-1]) and steps["capacity_per_s"].iloc[-1] == 83.4
    assert pd.isna(steps["p99_change_ms"].iloc[-1])
    text = verdict(steps)
    assert text.startswith("No ratio between grpc-tls-fresh and mmap is named: mmap "
                           "(saturated at 83/s: offered 200/s) was saturated")
    assert "900" not in text and "could not keep" not in text
    rows = summary_rows(steps)
    assert rows[-1]["p99 (ms)"] == "saturated at 83/s" and rows[-1]["run"] == "INVALID (saturated)"
    assert rows[0]["p99 (ms)"] == 40.0            # the queue does not choose the unit
    from lootlab.plots.steps import headline_chart, step_chart

    ax = headline_chart(steps).axes[0]
    assert len(ax.patches) == 4                   # no bar for the queue
    assert "saturated at 83/s: a queue, no p99" in [t.get_text() for t in ax.texts]
    assert ax.get_xlim()[1] < 900.0
    texts = [t.get_text() for t in step_chart(steps).axes[0].texts]
    assert "saturated\nat 83/s:\na queue,\nno p99" in texts and "900" not in texts
    # a saturated step between the ends: the ratio stands, the queue is named apart
    steps = _fake_steps([_Fake(40.0), _Fake(900.0, valid=False, saturated=True,
                                            capacity=float("nan"), achieved=150.0),
                         _Fake(12.0), _Fake(8.0), _Fake(0.5)])
    text = verdict(steps)
    assert text.startswith("At 200 requests/s, p99 went from 40.0 ms (grpc-tls-fresh) to "
                           "0.50 ms (mmap), 80.0x lower.")
    assert ("Saturated: grpc-tls-resumed (saturated at 150/s: offered 200/s). The offered "
            "rate was above what that step sustained") in text
    assert "noise was grpc-tls-pooled" not in text   # not from a queue


def test_the_story_page_states_the_instruments_resolution_once():
    """The page's summary says how fine the load generator was: the largest send error p99
    of the runs behind it, and how its senders were scheduled."""
    import html

    from lootlab.report.instrument import resolution_line
    from lootlab.report.summary import SUMMARY_MIME, summary_bundle

    results = {"grpc-tls-fresh": [_Fake(40.0, 23.0), _Fake(41.0, 12.0)],
               "mmap": [_Fake(0.5, 9.0, scheduling="nice -20")]}
    line = ("Instrument: the load generator's own send error p99 was 23 µs in these runs "
            "(the worst of 3): latency differences smaller than that are not resolved. "
            "Senders scheduled SCHED_FIFO 1 in 2 runs; nice -20 in 1.")
    assert resolution_line(results) == line
    steps = _fake_steps([_Fake(40.0, 23.0), _Fake(0.5, 1_400.0)])
    assert "send error p99 was 1.4 ms" in resolution_line(steps)
    bundle = summary_bundle("The story's steps", summary_rows(steps), verdict=verdict(steps),
                            instrument=results)
    assert html.unescape(bundle["text/html"]).count(line) == 1
    assert bundle[SUMMARY_MIME]["instrument"] == line
    assert resolution_line([]).endswith("was not recorded in these runs.")
    # the policy is what runs are told apart by, not each run's measured wake-ups
    one = _Fake(1.0, 30.0, scheduling="SCHED_FIFO 1, sleeping (wake-ups 28 us late at p95)")
    assert resolution_line([one]).endswith(
        "was 30 µs in this run: latency differences smaller than that are not resolved. "
        "Senders scheduled SCHED_FIFO 1, sleeping.")


def test_a_tail_is_named_with_what_the_kernel_saw_during_its_runs():
    """A step whose p99 is a tail (3x its p50 or more) and whose runs saw CPU starvation
    or TCP timers gets a sentence naming them in the verdict; a step without a tail, or
    without a cause, gets none."""
    from lootlab.report.instrument import tail_note

    row = {"variant": "grpc-tls-fresh", "p50_ms": 10.0, "p99_ms": 450.0,
           "tail_causes": "CPU starvation: runnable threads waited for a core 35% of the run"}
    note = tail_note(row)
    assert note.startswith("grpc-tls-fresh's tail (p99 450 ms against a p50 of 10 ms)")
    assert "CPU starvation" in note
    assert tail_note({**row, "p99_ms": 20.0}) == ""          # no tail
    assert tail_note({**row, "tail_causes": ""}) == ""       # no cause seen
    assert tail_note(row, saturated=True) == ""              # a queue, named elsewhere
