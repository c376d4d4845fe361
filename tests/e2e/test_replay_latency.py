"""Notebooks 01, 05 and 06 replayed (``replay=True``): drawn from the stored run alone, the
same tables, figures and sentences as the run that measured it, and not one process started
(no server, no proxy, no cgroup, no rebuild worker).

The session's quick report (``quick_report``) is the measuring run; a part stored by hand
shows a replay draws whatever the run holds (here: a machine that could not limit CPU,
which this machine cannot measure)."""

from __future__ import annotations

from typing import Any

import pytest
from _replay import (
    assert_same_page,
    measured_page,
    page_text,
    progress_lines,
    replay,
    shown,
)

from lootlab.experiments import capture_latency as capture
from lootlab.experiments import story
from lootlab.experiments.rundir import open_part
from lootlab.experiments.sizes import sizes_for

# the quick report runs inside the first test of the session that needs it
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

NOTEBOOKS = ("01-story", "05-rebuild", "06-conditions")


@pytest.fixture(scope="module")
def replayed(quick_report, tmp_path_factory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("replayed")
    return {name: replay(name, out / f"{name}.ipynb", quick_report.run_dir)
            for name in NOTEBOOKS}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_replay_shows_what_the_measuring_run_showed(quick_report, replayed, name):
    measured = measured_page(quick_report, name)
    assert_same_page(measured, replayed[name], name)
    assert sum(len(o) for o in shown(measured).values()) >= 5   # a page, not an empty one
    assert progress_lines(measured), "the measuring run showed no progress line: did it measure?"
    assert progress_lines(replayed[name]) == [], "a replay said how long it measured"


def test_the_run_holds_one_name_per_variant_and_condition(quick_report):
    run = quick_report.run_dir
    steps = open_part(run, "01-story", replay=True)
    assert steps.names("results") == list(story.STEPS)
    rebuild = open_part(run, "05-rebuild", replay=True)
    assert rebuild.names("results") == ["rebuild from local", "rebuild from s3"]
    conditions = open_part(run, "06-conditions", replay=True)
    sizes = sizes_for("06-conditions", "quick")
    rtt = capture.load_sweep(conditions, "rtt sweep")
    remote = [v for v in story.STEPS if v != "mmap"]
    # each remote variant at every RTT; mmap crosses no network and is measured once
    assert len([n for n in conditions.names("results") if n.startswith("rtt sweep: ")]) == \
        len(remote) * len(sizes["rtts_ms"]) + 1
    assert len(rtt.results) == len(rtt.rows) - (len(sizes["rtts_ms"]) - 1)


def test_a_replay_draws_a_stored_run_of_a_machine_that_cannot_limit_cpu(quick_report,
                                                                         tmp_path):
    """The CPU sweep of a machine without cgroups, stored by hand from the measured RTT
    sweep: the replay says why CPU was not limited there, and draws no CPU table."""
    stored = capture.load_sweep(open_part(quick_report.run_dir, "06-conditions", replay=True),
                                "rtt sweep")
    why = "no cgroup with the cpu controller here (a test's stored reason)"
    part = open_part(tmp_path / "run", "06-conditions",
                     params={**sizes_for("06-conditions", "quick"), "server_kind": "auto"})
    capture.store_setup(part, server="a server named by the test", cpu_limit_unavailable=why)
    capture.store_sweep(part, "rtt sweep", stored.rows, stored.results)
    text = page_text(replay("06-conditions", tmp_path / "06.ipynb", tmp_path / "run",
                            budget_ms=7.5))
    assert f"CPU limits are skipped on this machine: {why}." in text
    assert "a server named by the test" in text
    assert "Every variant at every CPU limit" not in text
    assert "With a p99 budget of 7.5 ms" in text   # the budget is the reader's, not stored
