"""The decision table (remote service or a file on every replica) against brute-force
oracles: staleness at a measured interval is the measured reads' own median and maximum,
a modelled one matches sampling the model; memory per node is the measured node's sum or a
straight line through the measured points; the verdict names the cheapest variant that
meets every budget; and the run directory gives back every table an experiment stored."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.experiments import capture_decision as capture
from lootlab.experiments import remote_or_local as decide
from lootlab.experiments.rundir import RunDirError, open_part
from lootlab.report.format import table


def freshness_rows(interval: float, staleness: list[float], kind: str = "every_reader",
                   poll_wait: list[float] | None = None) -> pd.DataFrame:
    waits = poll_wait if poll_wait is not None else [s / 2 for s in staleness]
    return pd.DataFrame({"source": "local", "interval_s": interval,
                         "change": range(len(staleness)), "kind": kind, "reader": "every",
                         "seen": True, "staleness_s": staleness, "poll_wait_s": waits})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.05, 5.0), min_size=1, max_size=30))
def test_staleness_at_a_measured_interval_is_the_reads_own_median_and_worst(values):
    median, worst, basis = decide.staleness_at(freshness_rows(2.0, values), 2.0)
    assert median == pytest.approx(float(np.median(values)))
    assert worst == pytest.approx(max(values))
    assert basis.startswith("measured")


def test_staleness_at_an_interval_not_run_is_the_model_sampled_by_brute_force():
    rng = np.random.default_rng(3)
    rest = rng.uniform(0.1, 0.6, size=40)            # fetch + build + refresh, measured
    wait = rng.uniform(0, 1.0, size=40)              # at a 1 s poll
    rows = freshness_rows(1.0, list(rest + wait), poll_wait=list(wait))
    median, worst, basis = decide.staleness_at(rows, 60.0)
    # the oracle: a change lands at a uniform phase of a 60 s poll, then takes a measured rest
    sampled = rng.uniform(0, 60.0, size=200_000) + rng.choice(rest, size=200_000)
    assert median == pytest.approx(float(np.median(sampled)), abs=0.6)
    assert worst == pytest.approx(60.0 + rest.max(), rel=1e-6)
    assert basis.startswith("extrapolated")


def memory_rows() -> pd.DataFrame:
    rows = []
    for size in (10 * 2**20, 70 * 2**20):
        for n in (1, 2, 4):
            steady = 50 * 2**20 * n + size
            rows.append({"kind": "mmap", "phase": "steady", "n": n, "index_bytes": size,
                         "node_bytes": steady, "pss_mean_bytes": steady / n})
            rows.append({"kind": "mmap", "phase": "swap-peak", "n": n, "index_bytes": size,
                         "node_bytes": steady + size, "pss_mean_bytes": (steady + size) / n})
    for n in (1, 4):
        rows.append({"kind": "remote-client", "phase": "steady", "n": n, "index_bytes": size,
                     "node_bytes": 60 * 2**20 * n, "pss_mean_bytes": 60 * 2**20})
        rows.append({"kind": "remote-server", "phase": "steady", "n": n, "index_bytes": size,
                     "node_bytes": 20 * 2**20, "pss_mean_bytes": 20 * 2**20})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8])
def test_memory_per_node_is_the_measured_peak_or_a_line_through_it(n):
    rows = memory_rows()
    q = decide.Question(replicas_per_node=n)
    got, basis = decide.memory_per_node(rows, q, 10 * 2**20, remote=False)
    expected = 50 * 2**20 * n + 2 * 10 * 2**20      # readers' own memory + two generations
    assert got == pytest.approx(expected)
    assert basis.startswith("measured" if n in (1, 2, 4) else "extrapolated")


def test_memory_per_node_scales_the_index_part_to_another_data_size_and_says_so():
    got, basis = decide.memory_per_node(memory_rows(), decide.Question(), 1024 * 2**20,
                                        remote=False)
    assert got == pytest.approx(50 * 2**20 + 2 * 1024 * 2**20)
    assert "scaled from the measured 70 MiB" in basis
    remote, why = decide.memory_per_node(memory_rows(), decide.Question(replicas_per_node=3),
                                         1024 * 2**20, remote=True)
    assert remote == pytest.approx(3 * 60 * 2**20) and why.startswith("measured")


def decided_row(variant: str, *, latency: str, fresh: bool | None, dollars: float,
                remote: bool) -> dict[str, Any]:
    return {"variant": variant, "side": "remote service" if remote else "file on every replica",
            "p99_ms": 1.0, "latency": latency, "latency_why": "p99 at most 1 ms",
            "staleness_p50_s": 1.0, "staleness_max_s": 3.0 if fresh else 300.0,
            "fresh_enough": fresh, "dollars_per_million": dollars,
            "unanswered_s": 5.0 if remote else 0.0, "staleness_in_failure_s": 4.0,
            "fits": None if latency not in ("fits", "over") or fresh is None
            else latency == "fits" and fresh}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["fits", "over", "cannot tell"]),
                          st.sampled_from([True, False, None]), st.floats(0.001, 10.0),
                          st.booleans()), min_size=1, max_size=6))
def test_the_verdict_names_the_cheapest_variant_that_meets_every_budget(rows):
    table_ = pd.DataFrame([decided_row(f"v{i}", latency=lat, fresh=fresh, dollars=d, remote=r)
                           for i, (lat, fresh, d, r) in enumerate(rows)])
    text = decide.decision_verdict(table_, decide.Question())
    ok = [(d, f"v{i}") for i, (lat, fresh, d, _) in enumerate(rows)
          if lat == "fits" and fresh is True]
    if not ok:
        assert "no variant meets every budget" in text
    else:
        assert f"choose {min(ok)[1]} " in text
        sides = {r for *_, r in rows}
        said = "the file kept answering while its staleness grew to 4 s" in text
        assert said == (sides == {True, False}), text


@dataclass(frozen=True)
class Toy:
    rows: pd.DataFrame
    extra: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


def test_a_stored_experiment_comes_back_with_every_table_and_its_meta(tmp_path):
    part = open_part(tmp_path / "run", "07-decision")
    a = Toy(pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"y": ["a"]}), {"load": [1.0, 2.0]})
    b = Toy(pd.DataFrame({"x": [3]}), pd.DataFrame({"y": ["b", "c"]}), {"load": [3.0]})
    capture.store_run(part, "one", a)
    capture.store_runs(part, "both", [a, b])
    again = open_part(tmp_path / "run", "07-decision", replay=True)
    one = capture.load_run(again, "one")
    assert one.rows.equals(a.rows) and one.extra.equals(a.extra) and one.meta == a.meta
    both = capture.load_run(again, "both")
    assert list(both.rows["x"]) == [1, 2, 3] and list(both.extra["y"]) == ["a", "b", "c"]
    assert both.meta == [a.meta, b.meta]
    assert capture.stored_names(again) == ["one", "both"]
    with pytest.raises(RunDirError, match="no experiment 'three'.*'one', 'both'"):
        capture.load_run(again, "three")
    assert capture.load_optional(again, "three") is None


def test_a_table_keeps_seconds_for_staleness_beside_milliseconds_for_latency():
    shown = table(pd.DataFrame({"p99_ms": [0.2, 5.0], "worst_staleness_s": [60.1, 61.0]}))
    labels = list(shown.frame.columns)
    assert labels == ["p99 (ms)", "worst staleness (s)"], labels
    assert list(shown.frame["worst staleness (s)"]) == ["60.1", "61"]
    assert not math.isnan(float(shown.frame["p99 (ms)"].iloc[0]))


def test_the_remote_outage_is_split_into_the_tests_downtime_and_the_reconnect():
    rows = [decided_row("mmap", latency="fits", fresh=True, dollars=1.0, remote=False),
            {**decided_row("grpc-tls-pooled", latency="fits", fresh=True, dollars=2.0,
                           remote=True), "unanswered_s": 14.8, "restart_s": 13.3}]
    text = decide.decision_verdict(pd.DataFrame(rows), decide.Question())
    assert ("answered nothing for 14.8 s (down 13.3 s by the test's choice, then 1.5 s for "
            "clients to reconnect)") in text, text
