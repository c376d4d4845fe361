"""Notebooks 03 and 04 replayed (``replay=True``): drawn from the stored run alone, the same
tables, figures and sentences as the run that measured it, and not one process started.

The session's quick report (``quick_report``) is the measuring run; a part stored by hand
from small fakes shows a replay draws whatever the run holds (here: a machine where perf
could not run, which this machine cannot measure)."""

from __future__ import annotations

from typing import Any

import pytest
from _loadgen import QUERIES, ServiceClient, VirtualClock
from _replay import assert_same_page, measured_page, page_text, progress_lines, replay, shown

from lootlab import loadgen
from lootlab.experiments import capture_profiles as capture
from lootlab.experiments.rundir import open_part
from lootlab.experiments.sizes import sizes_for
from lootlab.profiling import Counters, FlameProfile

# the quick report runs inside the first test of the session that needs it
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

NOTEBOOKS = ("03-flamegraphs", "04-memory")


@pytest.fixture(scope="module")
def replayed(quick_report, tmp_path_factory) -> dict[str, Any]:
    """Both notebooks replayed from the measured run, refusing to start any process."""
    out = tmp_path_factory.mktemp("replayed")
    return {name: replay(name, out / f"{name}.ipynb", quick_report.run_dir)
            for name in NOTEBOOKS}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_replay_shows_what_the_measuring_run_showed(quick_report, replayed, name):
    measured = measured_page(quick_report, name)
    assert_same_page(measured, replayed[name], name)
    outputs = [o for cell in shown(measured).values() for o in cell]  # a page, not an empty one:
    assert sum("image/png" in o for o in outputs) >= 1                 # figures
    assert sum("<table" in o.get("text/html", "") for o in outputs) >= 3   # and tables
    assert progress_lines(measured) and not progress_lines(replayed[name])


def test_the_run_holds_the_names_lootlab_compare_reads(quick_report):
    run = quick_report.run_dir
    flames = open_part(run, "03-flamegraphs", replay=True)
    variants = sizes_for("03-flamegraphs", "quick")["variants"]
    assert [n for n in flames.names("stacks") if n.startswith("py-spy: ")] == \
        [f"py-spy: {v}" for v in variants]
    memory = capture.load_memory(open_part(run, "04-memory", replay=True))
    assert list(memory["variant"]) == sizes_for("04-memory", "quick")["variants"]
    assert (memory[["allocs_per_op", "bytes_per_op", "peak_heap_MiB", "RssAnon_MiB",
                    "ops"]] > 0).all().all()


def flame(variant: str, leaf: str, samples: int) -> FlameProfile:
    loop = ("_run_module_as_main (<frozen runpy>:198)", "main (lootlab/workload.py:270)",
            "_measured_ops (lootlab/workload.py:149)")
    return FlameProfile(variant, {loop + (leaf,): samples, loop[:2]: 5},
                        {"native": True, "idle": False, "gil": False, "rate": 100,
                         "duration": 3.0}, {"ops": samples * 10})


def virtual_run(service_ns: int) -> Any:
    clock = VirtualClock()
    return loadgen.run(lambda: ServiceClient(clock, [service_ns]), loadgen.constant(50, 1),
                       warmup=0, workload=QUERIES, clock=clock)


def test_a_replay_draws_a_stored_run_of_a_machine_without_perf(tmp_path):
    run = tmp_path / "run"
    part = open_part(run, "03-flamegraphs", params=sizes_for("03-flamegraphs", "quick"))
    why = "perf is not permitted here (a test's stored reason: kernel.perf_event_paranoid=3)"
    capture.store_flames(part, {
        "grpc-tls-pooled": flame("grpc-tls-pooled", "SSL_read (grpc/_cython/cygrpc.so)", 40),
        "mmap": flame("mmap", "near (lootlab/index.py:332)", 60)})
    capture.store_timed(part, {"grpc-tls-pooled": virtual_run(400_000),
                               "mmap": virtual_run(20_000)},
                        server="a server stored by the test", left_out=[])
    capture.store_perf(part, why, {})
    capture.store_counters(part, [Counters(v, 1000, 1.0, "rusage",
                                           {"context_switches": 3000.0 / (i + 1),
                                            "minor_faults": 7.0})
                                  for i, v in enumerate(("grpc-tls-pooled", "mmap"))])
    text = page_text(replay("03-flamegraphs", tmp_path / "03.ipynb", run))
    assert why in text and "a server stored by the test" in text
    assert "kernel included" not in text          # no perf profile: none drawn
    assert "records copied per op" not in text    # and no memcpy answer without one
    assert "no perf here" in text                 # the counters say where they came from
