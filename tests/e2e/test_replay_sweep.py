"""Notebook 02 replayed (``replay=True``): drawn from the stored run alone, the same tables,
figures and sentences as the run that measured it, and not one process started (no
server).

The session's quick report (``quick_report``) is the measuring run; a part stored by hand
from virtual runs shows a replay draws whatever the run holds, whatever this machine would
measure."""

from __future__ import annotations

import re
from typing import Any

import pytest
from _loadgen import QUERIES, ServiceClient, VirtualClock
from _replay import assert_same_page, measured_page, page_text, progress_lines, replay, shown

from lootlab.experiments import capture_sweep as capture
from lootlab.experiments import latency
from lootlab.experiments.capture_latency import store_setup
from lootlab.experiments.rundir import open_part
from lootlab.experiments.sizes import sizes_for

# the quick report runs inside the first test of the session that needs it
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

NOTEBOOK = "02-latency"


def test_a_replay_shows_what_the_measuring_run_showed(quick_report, tmp_path):
    measured = measured_page(quick_report, NOTEBOOK)
    replayed = replay(NOTEBOOK, tmp_path / f"{NOTEBOOK}.ipynb", quick_report.run_dir)
    assert_same_page(measured, replayed, NOTEBOOK)
    assert sum(len(o) for o in shown(measured).values()) >= 8   # a page, not an empty one
    assert len(progress_lines(measured)) == 2, \
        "one rate and the sweep each show how long they measured"
    assert progress_lines(replayed) == []


def test_the_run_holds_one_name_per_variant_and_rate(quick_report):
    part = open_part(quick_report.run_dir, NOTEBOOK, replay=True)
    sizes = sizes_for(NOTEBOOK, "quick")
    assert part.names("results") == [
        *(f"one rate: {v} at {sizes['rate']:g}/s" for v in sizes["variants"]),
        *(f"sweep: {v} at {r:g}/s" for v in sizes["sweep_variants"]
          for r in sizes["sweep_rates"]),
        "spike: mmap"]
    assert part.names("rows") == ["one rate", "sweep"]
    assert part.params == {**sizes, "server_kind": "auto"}


def test_a_replay_draws_whatever_the_stored_run_holds(tmp_path):
    """A part stored by hand from virtual runs (a server this machine does not have, rates
    the quick size does not sweep): the replay draws those, not the parameters' size."""
    sizes = {**sizes_for(NOTEBOOK, "quick"), "rate": 150, "variants": ["slow", "fast"],
             "sweep_variants": ["slow", "fast"], "sweep_rates": [50, 400], "duration": 2.0}
    part = open_part(tmp_path / "run", NOTEBOOK, params={**sizes, "server_kind": "auto"})
    store_setup(part, server="a server named by the test")
    clock = VirtualClock()
    variants = {"slow": lambda: ServiceClient(clock, [900_000, 4_000_000]),
                "fast": lambda: ServiceClient(clock, [30_000, 50_000])}
    for kind, rates, target_us in ((capture.ONE_RATE, [150], None),
                                   (capture.SWEEP, [50, 400], 10_000.0)):
        results: list[Any] = []
        rows = latency.sweep(variants, rates, 1.0, warmup=0, p99_target_us=target_us,
                             workload=QUERIES, clock=clock, results=results)
        capture.store_rates(part, kind, rows, results)
    capture.store_spike(part, latency.spike_run(
        variants["fast"], 100, factor=5, duration=3.0, length=1.0, warmup=0,
        workload=QUERIES, clock=clock, label="mmap"))

    text = page_text(replay(NOTEBOOK, tmp_path / "02.ipynb", tmp_path / "run",
                            size="standard"))
    assert "a server named by the test" in text
    assert "`slow`, `fast`, 1 trial of 2 s each at 150 requests/s" in text
    assert "at 50, 400 requests/s" in text
    sustainable = text.split("Sustainable rate per variant", 1)[1].splitlines()
    assert re.match(r"\s*slow\s+50\b", sustainable[2]), sustainable[:4]
    assert re.match(r"\s*fast\s+400\b", sustainable[3]), sustainable[:4]
