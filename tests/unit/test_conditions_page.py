"""The what-if page (notebook 06) says one thing: a "cannot tell" after an "over" names where
the variant was already over, every run of the health table is told apart by its conditions,
the CPU axis promises "none" only where an unlimited run is drawn, and the decision appears in
one table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from matplotlib.text import Text

from lootlab.experiments import whatif
from lootlab.plots.conditions import cpu_chart, rtt_chart
from lootlab.report import whatif as words

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "06-conditions.ipynb"


def row(variant, p99, *, rtt=0.0, cpu=math.nan, valid=True, n=5000, achieved=100.0):
    return {"variant": variant, "rtt_ms": rtt, "cpu_limit": cpu, "p99_ms": p99,
            "p99_ci_low_ms": 0.9 * p99, "p99_ci_high_ms": 1.1 * p99, "p99_ms_lo": p99,
            "p99_ms_hi": p99, "p50_ms": p99 / 3, "valid": valid, "upper_bound": False, "n": n,
            "p99_enough": True, "offered_per_s": 100.0, "achieved_per_s": achieved,
            "bottleneck": "none", "trials": 1, "throttled_share": 0.1}


def test_cannot_tell_at_a_longer_round_trip_names_where_the_variant_was_already_over():
    rows = pd.DataFrame([row("grpc-tls-resumed", 10.0, rtt=0.0),
                         row("grpc-tls-resumed", 80.0, rtt=2.0),             # over
                         row("grpc-tls-resumed", 400.0, rtt=20.0, valid=False)])  # INVALID
    table = whatif.decision_table(rows, None, budget_ms=50.0).set_index("condition")
    assert table.loc["RTT 2 ms", "over"] == "grpc-tls-resumed"
    said = table.loc["RTT 20 ms", "cannot_tell"]
    assert said.startswith("grpc-tls-resumed (INVALID runs")
    assert "already over at RTT 2 ms" in said
    # the page's one table carries the reasons for both
    summary = {r["condition"]: r for r in words.summary_rows(table.reset_index())}
    assert "p99 at least" in summary["RTT 2 ms"]["over the budget or saturated (why)"]
    assert "already over at RTT 2 ms" in summary["RTT 20 ms"]["cannot tell (why)"]


def _result(variant, rtt, cpu):
    return SimpleNamespace(
        variant=variant, conditions={"rtt_ms": rtt, "cpu_limit": cpu,
                                     "cpu_limit_applied": cpu is not None},
        offered_rate=100.0, achieved_rate=99.0, send_lag_us=lambda p: 500.0,
        percentile_us=lambda p, kind: 200.0, generator_cpu=0.1, counts={"failed": 0},
        health=SimpleNamespace(valid=True, reasons=[], warnings=[], evidence=[]))


def test_every_run_in_the_health_table_is_told_apart_by_its_conditions():
    results = [_result("grpc-tls-fresh", r, None) for r in (None, 2.0, 20.0)]
    results += [_result("grpc-tls-pooled", None, c) for c in (0.25, 1.0)]
    rows = words.health_rows(results)
    keys = [(r["variant"], r["rtt_ms"], r["cpu_limit"]) for r in rows]
    assert len(set(keys)) == len(keys) == 5
    assert keys[0] == ("grpc-tls-fresh", 0.0, "none")         # loopback, no limit: said
    assert keys[3] == ("grpc-tls-pooled", 0.0, 0.25)
    shown = words.health_table(results).frame
    assert {"RTT (ms)", "CPU limit (cores)"} <= set(shown.columns)
    assert not shown.isin(["", "–"]).any().any()                 # no blank cell


def test_the_cpu_axis_promises_none_only_where_an_unlimited_run_is_drawn():
    limited = pd.DataFrame([row(v, p, cpu=c) for c in (0.25, 1.0)
                            for v, p in (("grpc-tls-pooled", 3.0), ("mmap", 0.2))])
    fig = cpu_chart(limited, budget_ms=50.0)
    assert "none" not in fig.axes[1].get_xlabel()
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["0.25", "1"]
    rtt = pd.DataFrame([row(v, p, rtt=r) for r in (0.0, 2.0)
                        for v, p in (("grpc-tls-fresh", 9.0), ("grpc-tls-pooled", 2.0),
                                     ("mmap", 0.1))])
    both = whatif.with_unlimited(limited, rtt)
    free = both[both["cpu_limit"].isna()]
    assert sorted(free["variant"]) == ["grpc-tls-pooled", "mmap"]    # the CPU sweep's only
    assert (free["rtt_ms"] == 0).all()
    fig = cpu_chart(both, budget_ms=50.0)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["0.25", "1", "none"]
    assert "none" in fig.axes[1].get_xlabel()
    drawn = [x for line in fig.axes[0].lines for x in line.get_xdata()]
    assert max(drawn) > 1.0                                        # a point at "none"


def _texts(fig):
    fig.draw_without_rendering()
    return [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]


def test_the_conditions_figures_fit_the_page_and_their_text_reads():
    rows = pd.DataFrame([row(v, p * (1 + r), rtt=r) for r in (0.0, 2.0, 20.0)
                         for v, p in (("grpc-tls-fresh", 9.0), ("mmap", 0.1))])
    limited = pd.DataFrame([row("mmap", 0.2, cpu=c) for c in (0.25, 1.0)])
    for fig in (rtt_chart(rows, budget_ms=50.0), cpu_chart(limited, budget_ms=50.0)):
        assert fig.get_size_inches()[0] <= 8
        assert min(t.get_fontsize() for t in _texts(fig)) >= 8


def test_the_page_shows_the_decision_in_one_table_and_leads_with_its_verdict():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert not any("display(fmt.table(table" in c for c in code)    # no second decision table
    assert sum("publish_summary(" in c for c in code) == 1
    first_chart = next(i for i, c in enumerate(code) if "rtt_chart(" in c)
    verdict_at = next(i for i, c in enumerate(code) if "whatif_words.verdict(" in c)
    assert verdict_at < first_chart
