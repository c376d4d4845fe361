"""``lootlab bench`` as a new user runs it, and the latency plots on real results."""

from __future__ import annotations

import json
import re

import pandas as pd
from _loadgen import QUERIES, ServiceClient, VirtualClock
from click.testing import CliRunner
from matplotlib.figure import Figure

from lootlab import loadgen
from lootlab.cli import main
from lootlab.experiments.comparison import load_run
from lootlab.experiments.rows import measure
from lootlab.plots import latency as plots


def test_bench_cli_prints_percentiles_and_verdict(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["bench", "--variant", "mmap", "--rate", "500",
                                    "--duration", "1", "--warmup", "0.2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    for text in ("p99", "max", "health:", "offered 500/s", "saved to"):
        assert text in res.output
    assert re.search(r"\blatency_(us|ms|s)\b", res.output)   # the unit that fits the run
    assert (out / "manifest.json").is_file()                 # a run directory
    summary = json.loads((out / "bench" / "results" / "mmap" / "trial-0" /
                          "summary.json").read_text())
    assert summary["counts"]["scheduled"] == 500 and summary["variant"] == "mmap"
    [back] = load_run(out).results["mmap"]
    assert back.latency.get_total_count() == summary["counts"]["ok"]


def test_bench_cli_spike_prints_a_timeline(tmp_path):
    res = CliRunner().invoke(main, ["bench", "--schedule", "spike", "--rate", "200",
                                    "--factor", "3", "--duration", "3", "--warmup", "0",
                                    "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert "spike(rate=200, factor=3" in res.output and "per second" in res.output
    assert re.search(r"\bp99_(us|ms|s)\b", res.output)


def test_bench_cli_closed_loop_and_user_errors(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["bench", "--closed", "1", "--duration", "0.5", "--warmup", "0",
                               "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert "closed loop" in res.output and "coordinated omission" in res.output
    bad = runner.invoke(main, ["bench", "--variant", "no-such", "--rate", "10",
                               "--duration", "0.2"])
    assert bad.exit_code == 1 and "unknown variant" in bad.output
    assert "Traceback" not in bad.output
    both = runner.invoke(main, ["bench", "--rate", "10", "--closed", "2"])
    assert both.exit_code == 2 and "not both" in both.output


def _virtual(label, service_ns, sched):
    clock = VirtualClock()
    client = ServiceClient(clock, service_ns)
    return loadgen.run(lambda: client, sched, warmup=0, workload=QUERIES, clock=clock,
                       label=label)


def test_plots_draw_several_variants(tmp_path):
    a = _virtual("fast", [20_000, 40_000, 900_000], loadgen.spike(500, 3, factor=3, at=1,
                                                                 length=1))
    b = _virtual("slow", [200_000, 400_000], loadgen.spike(500, 3, factor=3, at=1, length=1))
    fig = plots.percentile_spectrum([a, b], target_us=1000)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert {"90%", "99%", "99.9%", "99.99%"} <= set(labels)
    assert {"fast", "slow"} <= {line.get_label() for line in ax.get_lines()}
    assert any(t.get_text().startswith("max ") for t in ax.texts)
    fig.savefig(tmp_path / "spectrum.png")

    tl = plots.spike_timeline([a, b])
    assert len(tl.axes) == 2
    tl.savefig(tmp_path / "timeline.png")

    rows = [measure(r).as_dict() for r in (a, b)]
    sweep = pd.DataFrame(rows + [{**rows[0], "offered_per_s": 1000.0, "achieved_per_s": 990.0,
                                  "p99_ms": 5.0, "valid": False}])
    lt = plots.latency_vs_throughput(sweep, target_ms=1.0)
    assert {"fast p99", "slow p99", "fast p50"} <= {l.get_label() for l in lt.axes[0].get_lines()}
    lt.savefig(tmp_path / "lt.png")
    assert all((tmp_path / f).stat().st_size > 1000 for f in
               ("spectrum.png", "timeline.png", "lt.png"))


def test_bench_cli_says_a_network_does_not_apply_to_a_local_variant(tmp_path):
    res = CliRunner().invoke(main, ["bench", "--variant", "mmap", "--rate", "100",
                                    "--duration", "0.5", "--warmup", "0.1", "--rtt-ms", "5",
                                    "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "mmap is local: it crosses no network" in res.output
    [back] = load_run(tmp_path / "run").results["mmap"]
    assert back.conditions["rtt_ms"] is None           # recorded as not applied
