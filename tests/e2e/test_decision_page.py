"""Notebook 07 (the decision beyond latency) in the session's quick report: every column of
its decision table is filled from this run's measurements, a replay draws the same page
without starting a process, and another fleet's question is answered from the same stored
measurements (only the derived figures move, and they say they were extrapolated)."""

from __future__ import annotations

import math

import pytest
from _replay import assert_same_page, measured_page, page_text, replay

from lootlab.experiments import capture_decision as capture
from lootlab.experiments.rundir import open_part
from lootlab.report.summary import read_summary

# the quick report runs inside the first test of the session that needs it
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

NAME = "07-decision"
COLUMNS = ("worst staleness (s)", "memory per node (MiB)", "$ per million queries",
           "unanswered per failure (s)")


def test_the_run_holds_every_experiment_of_the_decision(quick_report):
    part = open_part(quick_report.run_dir, NAME, replay=True)
    assert set(capture.stored_names(part)) == {"freshness", "memory per node", "cold start",
                                               "failure", "cpu per query"}
    fresh = capture.load_run(part, "freshness").rows
    assert fresh["seen"].all() and (fresh["staleness_s"] > 0).all()
    failure = capture.load_run(part, "failure").summary.set_index("scenario")
    assert failure.loc["s3-down", "error_count"] == 0            # readers kept answering
    assert failure.loc["server-killed", "error_count"] > 0       # the remote one did not


def test_every_cell_of_the_decision_table_comes_from_a_measurement(quick_report):
    summary = read_summary(measured_page(quick_report, NAME))
    assert summary is not None and summary["verdict"]
    variants = [r["variant"] for r in summary["rows"]]
    assert "mmap" in variants and any(v.startswith("grpc-") for v in variants)
    for row in summary["rows"]:
        (p99,) = [c for c in row if c.startswith("p99 (")]     # in the unit that fits
        for col in (p99, *COLUMNS):
            value = row[col]
            assert value is not None and math.isfinite(float(value)) and float(value) >= 0, \
                (row["variant"], col, value)
    text = page_text(measured_page(quick_report, NAME))
    assert "extrapolated: poll wait uniform over 60 s" in text     # the model says it is one


@pytest.fixture(scope="module")
def replayed(quick_report, tmp_path_factory):
    out = tmp_path_factory.mktemp("decision")
    same = replay(NAME, out / "same.ipynb", quick_report.run_dir)
    other = replay(NAME, out / "other.ipynb", quick_report.run_dir, fleet_size=10,
                   data_mib=1024.0, replicas_per_node=3)
    return same, other


def test_a_replay_draws_the_decision_page_again(quick_report, replayed):
    assert_same_page(measured_page(quick_report, NAME), replayed[0], NAME)


def test_another_fleet_is_answered_from_the_same_measurements(quick_report, replayed):
    before = {r["variant"]: r for r in read_summary(measured_page(quick_report, NAME))["rows"]}
    after = {r["variant"]: r for r in read_summary(replayed[1])["rows"]}
    assert before.keys() == after.keys()
    for v, was in before.items():
        p99 = next(c for c in was if c.startswith("p99 ("))
        assert after[v][p99] == was[p99]                           # measured: unchanged
        assert float(after[v]["$ per million queries"]) > 0        # priced for the new fleet
    # a 1 GiB index rebuilt on every replica: the file's cost per query grows with it
    assert after["mmap"]["$ per million queries"] > before["mmap"]["$ per million queries"]
    assert "data size scaled linearly from the measured" in page_text(replayed[1])
    # a 1 GiB index on three replicas per node: the file's node holds two copies of it
    assert after["mmap"]["memory per node (MiB)"] > 2 * 1024
    assert "index scaled from the measured" in page_text(replayed[1])
