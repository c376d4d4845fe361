"""What the CLI prints reads right: one time unit per table or line, chosen from its range;
no NaN where a percentile has too few samples; figures to three significant digits; plurals
only when the number is not 1.  Load runs here are in virtual time (exact, instant)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from _loadgen import QUERIES, ServiceClient, VirtualClock
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab import loadgen, profiling
from lootlab.cli import main
from lootlab.experiments import bench as bench_module
from lootlab.loadgen.limits import describe as limits_describe
from lootlab.report.conditions import cpu_words

UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6}


def timed_run(service_ns: int, requests: int = 500):
    """Requests spaced wider than their service time: every latency is ``service_ns``."""
    clock = VirtualClock()
    client = ServiceClient(clock, [service_ns])
    rate = min(500.0, 0.5e9 / service_ns)
    return loadgen.run(lambda: client, loadgen.constant(rate, requests / rate), warmup=0,
                       workload=QUERIES, clock=clock)


def bench_output(monkeypatch, tmp_path, result) -> str:
    """``lootlab bench`` as the README runs it, printing ``result`` instead of a real run."""
    monkeypatch.setattr(bench_module, "bench",
                        lambda *a, **k: bench_module.Bench(result, tmp_path / "run", ""))
    out = CliRunner().invoke(main, ["bench", "--variant", "mmap", "--rate", "500",
                                    "--duration", "1", "--warmup", "0.2",
                                    "--out", str(tmp_path / "b1")])
    assert out.exit_code == 0, out.output
    return out.output


def table_header(output: str) -> list[str]:
    return next(line.split() for line in output.splitlines()
                if line.split()[:1] == ["percentile"])


@pytest.mark.parametrize("service_ns", [15_500, 2_407_530_500])
def test_the_bench_table_has_one_time_unit_and_no_nan(monkeypatch, tmp_path, service_ns):
    output = bench_output(monkeypatch, tmp_path, timed_run(service_ns))
    assert "nan" not in output.lower()
    times = [h for h in table_header(output) if re.search(r"_(us|ms|s)$", h)]
    units = {h.rsplit("_", 1)[1] for h in times}
    assert len(times) >= 3 and len(units) == 1, times
    unit = units.pop()
    p50 = next(line.split() for line in output.splitlines() if line.split()[:1] == ["p50"])
    shown = float(p50[1].replace(",", "")) * UNIT_US[unit]
    assert shown == pytest.approx(service_ns / 1e3, rel=0.01)
    assert 1 <= float(p50[1].replace(",", "")) < 1000, p50   # neither 0.00002 s nor 2e6 us
    assert "too few samples" in output          # 500 samples: p99.9 and p99.99 are too thin


@pytest.mark.parametrize("service_ns, unit", [(15_500, "us"), (2_400_000, "ms"),
                                              (2_407_530_500, "s")])
def test_describe_says_latency_in_the_unit_of_its_range(service_ns, unit):
    line = next(x for x in timed_run(service_ns).describe().splitlines()
                if x.startswith("latency"))
    m = re.search(r"p50 ([\d,.]+) (\w+) \[", line)
    assert m and m[2] == unit, line
    assert float(m[1].replace(",", "")) * UNIT_US[unit] == pytest.approx(service_ns / 1e3,
                                                                          rel=0.01)
    assert len(m[1].replace(",", "").replace(".", "").strip("0")) <= 3, line


def significant(text: str) -> int:
    return len(text.replace(",", "").replace(".", "").lstrip("0").rstrip("0") or "0")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(1e-5, 1e7, allow_nan=False), min_size=3, max_size=3))
def test_counters_print_three_significant_figures(values):
    frame = pd.DataFrame([{"variant": "mmap", "context_switches_per_op": values[0],
                           "minor_faults_per_op": values[1], "ops_per_s": values[2],
                           "source": "perf"}])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(profiling, "counters_of", lambda *a, **k: frame)
        out = CliRunner().invoke(main, ["profile", "counters", "-v", "mmap",
                                        "--duration", "0.5"])
    assert out.exit_code == 0, out.output
    cells = {line.split()[0]: line.split()[1] for line in out.output.splitlines()
             if line.split() and line.split()[0] in frame.columns}
    for name, value in zip(("context_switches_per_op", "minor_faults_per_op", "ops_per_s"),
                           values):
        shown = float(cells[name].replace(",", ""))
        assert shown == pytest.approx(value, rel=0.005), (name, cells[name])
        if value < 1000:        # from 1,000 up the whole number is shown
            assert significant(cells[name]) <= 3, (name, cells[name])


@pytest.mark.parametrize("cores, words", [(1, "1 core"), (2, "2 cores"), (0.5, "0.5 cores")])
def test_a_cpu_limit_is_plural_only_when_not_one(cores, words):
    said = limits_describe({"cpu_limit": cores, "cpu_limit_applied": True}, None)
    assert re.search(rf"CPU limit {re.escape(words)}\b(?!\()", said), said
    assert cpu_words({"cpu_limit": cores}) == f"CPU limit {words}"


def test_one_process_and_one_sender_are_singular():
    first = timed_run(15_500, requests=20).describe().splitlines()[0]
    assert first.endswith("1 process x 1 sender"), first
    assert "(s)" not in first and "(es)" not in first
