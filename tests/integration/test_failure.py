"""The failure experiment for real: a loopback S3 stopped or answering 5xx, a corrupt upload,
a gRPC server killed with SIGKILL and restarted, each under open-loop load with the logs read
back.  Small sizes, loopback only; every wait inside the experiment has a deadline, and the
assertions leave room for a busy 2-core machine (no speed is asserted)."""

from __future__ import annotations

import math

import pytest

from lootlab.experiments.failure import failure

pytestmark = pytest.mark.slow

# a fault long enough for several rebuild checks at the interval below
# and the rest of the run for the recovery (the worker backs off after failed checks)
DURATION, FAULT_AT, FAULT_FOR, INTERVAL, RATE = 10.0, 2.0, 3.5, 0.5, 100.0
# staleness at the fault's end is at least its length less the change interval (the
# oldest change not served may come that late) and less a build already under way
SLACK = INTERVAL + 1.0


def run(scenario: str):
    return failure((scenario,), duration=DURATION, rate=RATE, interval=INTERVAL,
                   fault_at=FAULT_AT, fault_for=FAULT_FOR, records=20_000)


@pytest.mark.parametrize("scenario", ["s3-down", "s3-500"])
def test_readers_keep_serving_while_s3_is_away_and_staleness_grows_then_recovers(scenario):
    result = run(scenario)
    s = result.summary.iloc[0]
    rows = result.rows
    # every query offered in the measured run was answered
    assert s["error_count"] == 0
    assert s["ok_count"] == s["offered_count"] > 0
    assert s["availability"] == 1.0
    # nothing reached the index while S3 was away: at most a build already under way
    assert s["builds_during_fault"] == 0
    assert s["generation_at_fault_end"] - s["generation_at_fault_start"] <= 1
    # staleness grew about one second per second: by the end of the fault the oldest
    # change not served is at least the fault's length minus one change interval old
    # (stopping the S3 server takes a moment: the outage counts from when it was down)
    outage = s["fault_end_s"] - s["fault_start_s"]
    assert outage > FAULT_FOR - 1.5
    # (less one more for a build already under way on a busy machine)
    assert s["max_staleness_s"] >= outage - SLACK
    during = rows[(rows["t_s"] >= s["fault_start_s"]) & (rows["t_end_s"] <= s["fault_end_s"])]
    assert len(during) >= 2
    staleness = during["staleness_s"].to_numpy()
    # it peaks at the end of the outage (a build already under way may still lower it at
    # first), at least the outage's length less the slack
    assert staleness[-1] == staleness.max() and staleness[-1] > staleness[0]
    assert staleness[-1] >= outage - SLACK - 1.0
    # the worker knew: its checks failed, so its own unconfirmed time grew as well
    assert s["max_unconfirmed_s"] >= outage - SLACK
    # and it recovered once S3 was back
    assert math.isfinite(s["time_to_recover_s"]) and s["time_to_recover_s"] >= 0
    assert s["fault_end_s"] + s["time_to_recover_s"] <= rows.iloc[-1]["t_s"]
    assert rows.iloc[-1]["staleness_s"] < s["max_staleness_s"] - 1.0


def test_a_corrupt_upload_never_reaches_the_index():
    result = run("corrupt-upload")
    s = result.summary.iloc[0]
    assert s["error_count"] == 0 and s["availability"] == 1.0
    assert s["uploads_corrupt"] > 0
    # the worker tried, failed, and published nothing while the object was corrupt
    assert s["failed_cycles"] > 0
    assert s["builds_during_fault"] == 0
    assert "CorruptSourceError" in s["first_cycle_error"]
    # a build already fetching the good object when the bad one landed may still finish
    assert s["generation_at_fault_end"] - s["generation_at_fault_start"] <= 1
    assert s["max_staleness_s"] >= (s["fault_end_s"] - s["fault_start_s"]) - SLACK
    assert math.isfinite(s["time_to_recover_s"])


def test_a_killed_server_fails_queries_until_it_is_back():
    result = run("server-killed")
    s = result.summary.iloc[0]
    rows = result.rows
    assert s["variant"] == "grpc-tls-pooled"
    assert s["error_count"] > 0
    assert s["ok_count"] + s["error_count"] <= s["offered_count"]
    assert 0 < s["availability"] < 1
    # no answer can come before the server is back, and one came in the run
    assert s["restart_s"] >= FAULT_FOR - 0.5
    assert s["time_to_recover_s"] >= s["restart_s"]
    assert math.isfinite(s["time_to_recover_s"])
    # errors only around the outage, by send time (a late sender may send a query meant
    # for before the kill after it): none failed before the kill or once answers were back,
    # none was answered while the server was down
    assert s["errors_before_fault"] == 0
    assert s["errors_after_recovery"] == 0
    assert s["answered_while_down"] == 0
    assert rows["error_count"].sum() == s["error_count"]
    assert math.isfinite(s["p99_before_ms"]) and math.isfinite(s["p99_after_ms"])
