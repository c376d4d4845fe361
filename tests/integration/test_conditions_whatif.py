"""The what-if decision table and figures (``lootlab.experiments.whatif``,
``lootlab.plots.conditions``) on hand-made rows: which variants fit a budget, what each step
buys (the rules of ``lootlab.experiments.verdicts``), and figures drawn from given frames
without running anything.  Notebook 06 runs the
real sweeps in the quick report (tests/e2e/test_notebooks.py)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.experiments import whatif
from lootlab.errors import LootlabError
from lootlab.experiments import verdicts
from lootlab.experiments.rows import pool

WORKLOAD = [[0, 0, 0, 32]] * 64      # x y z r queries for a plain factory's runs
STEPS = ["grpc-tls-fresh", "grpc-tls-resumed", "grpc-tls-pooled", "grpc-tls-packed", "mmap"]


def row(variant, p99, lo=None, hi=None, *, rtt=0.0, cpu=math.nan, valid=True, n=5000,
        achieved=100.0, upper_bound=False, **extra):
    """One sweep row in ``experiments.rows`` names, as ``rows.pool`` makes it: p99 with
    its 95 % interval."""
    lo = p99 if lo is None else lo
    hi = p99 if hi is None else hi
    return {"variant": variant, "rtt_ms": rtt, "cpu_limit": cpu, "p99_ms": p99,
            "p99_ci_low_ms": lo, "p99_ci_high_ms": hi, "p99_ms_lo": p99, "p99_ms_hi": p99,
            "p50_ms": p99 / 3, "valid": valid, "upper_bound": upper_bound, "n": n,
            "p99_enough": n * 0.01 >= 10, "offered_per_s": 100.0, "achieved_per_s": achieved,
            "bottleneck": "none", "trials": 1, **extra}


def test_a_variant_whose_p99_interval_straddles_the_budget_is_not_a_fit():
    rows = pd.DataFrame([row("grpc-tls-fresh", 48.0, 45.0, 55.0),      # straddles 50
                         row("grpc-tls-pooled", 20.0, 18.0, 49.0),     # whole band under
                         row("grpc-tls-packed", 50.0, 49.0, 50.0),     # upper end == budget
                         row("mmap", 60.0, 51.0, 70.0)])               # whole band over
    table = whatif.decision_table(rows, None, budget_ms=50.0)
    assert len(table) == 1
    t = table.iloc[0]
    assert t["fits"] == "grpc-tls-pooled, grpc-tls-packed"
    assert t["over"] == "mmap"
    assert t["cannot_tell"].startswith("grpc-tls-fresh (p99 band 45-55 ms straddles")
    assert t["fit_count"] == 2 and t["variants"] == 4
    # the p99 point itself under the budget is not enough: the band's upper end decides
    status, _ = verdicts.fit(row("x", 48.0, 45.0, 55.0), 50.0)
    assert status == "cannot tell"
    assert verdicts.fit(row("x", 48.0, 45.0, 50.0), 50.0)[0] == "fits"


def test_invalid_thin_or_behind_runs_are_never_a_fit():
    assert verdicts.fit(row("x", 10.0, valid=False), 50.0) == ("cannot tell",
                                                              "INVALID runs (see health)")
    # INVALID only by the generator's lag bound: the figure is an upper bound, so under the
    # budget it still fits; over it, nothing is known
    assert verdicts.fit(row("x", 10.0, valid=False, upper_bound=True), 50.0)[0] == "fits"
    assert verdicts.fit(row("x", 90.0, valid=False, upper_bound=True), 50.0)[0] == "cannot tell"
    assert verdicts.fit(row("x", 10.0, n=300), 50.0)[0] == "cannot tell"
    status, why = verdicts.fit(row("x", 10.0, achieved=60.0), 50.0)
    assert status == "over" and "could not keep 100 requests/s" in why


def test_a_step_gain_is_named_only_when_the_intervals_do_not_overlap():
    rows = pd.DataFrame([row("grpc-tls-fresh", 40.0, 38.0, 42.0),
                         row("grpc-tls-resumed", 37.0, 35.0, 39.0),   # overlaps fresh
                         row("grpc-tls-pooled", 12.0, 11.0, 13.0),    # clear gain
                         row("grpc-tls-packed", 8.0, 7.5, 8.5, valid=False),
                         row("mmap", 0.5, 0.4, 0.6)])
    t = whatif.decision_table(rows, None, budget_ms=50.0).iloc[0]
    assert math.isnan(t["change_grpc-tls-resumed_ms"])
    assert t["change_grpc-tls-pooled_ms"] == pytest.approx(-25.0)
    assert math.isnan(t["change_grpc-tls-packed_ms"])          # INVALID on one side
    assert math.isnan(t["change_mmap_ms"])
    assert t["buys"] == ("grpc-tls-resumed: not named; grpc-tls-pooled: -25 ms; "
                         "grpc-tls-packed: not named; mmap: not named")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 100), st.floats(0, 20), st.floats(0, 20)),
                min_size=2, max_size=2))
def test_step_change_is_named_exactly_when_bands_are_apart(pair):
    """Against the brute-force rule: the bands [p99-a, p99+b] of the two steps overlap
    (including touching) -> not named; apart -> the difference of the p99s."""
    (p1, a1, b1), (p2, a2, b2) = pair
    r1, r2 = row("a", p1, p1 - a1, p1 + b1), row("b", p2, p2 - a2, p2 + b2)
    change = verdicts.step_change(r1, r2)
    apart = p1 + b1 < p2 - a2 or p2 + b2 < p1 - a1
    if apart:
        assert change == pytest.approx(p2 - p1)
    else:
        assert math.isnan(change)


def test_conditions_come_one_row_each_rtts_then_cpu_limits():
    rtt = pd.DataFrame([row(v, p, rtt=r) for r in (0.0, 5.0, 20.0)
                        for v, p in (("grpc-tls-pooled", 2.0 + r), ("mmap", 0.3))])
    cpu = pd.DataFrame([row(v, p, cpu=c) for c in (math.nan, 0.25, 1.0)
                        for v, p in (("grpc-tls-pooled", 30.0), ("mmap", 0.3))])
    table = whatif.decision_table(rtt, cpu, budget_ms=10.0)
    assert list(table["condition"]) == ["loopback (RTT 0 ms)", "RTT 5 ms", "RTT 20 ms",
                                        "no CPU limit", "CPU limit 0.25 cores",
                                        "CPU limit 1 core"]
    assert list(table["fits"]) == ["grpc-tls-pooled, mmap", "grpc-tls-pooled, mmap", "mmap",
                                   "mmap", "mmap", "mmap"]
    assert list(table["kind"]) == ["rtt"] * 3 + ["cpu"] * 3
    with pytest.raises(LootlabError, match="budget_ms must be a positive"):
        whatif.decision_table(rtt, None, budget_ms=0)
    assert whatif.decision_table(None, None, budget_ms=5.0).empty


def _rtt_rows():
    rows = []
    for r in (0.0, 1.0, 5.0, 20.0):
        for i, v in enumerate(STEPS):
            p = (4 - i) * (1 + r) + 0.3
            rows.append(row(v, p, 0.9 * p, 1.2 * p, rtt=r, valid=(v, r) != ("grpc-tls-fresh",
                                                                            20.0),
                            measured_once=v == "mmap" and r > 0))
    return pd.DataFrame(rows)


def test_rtt_chart_draws_each_variant_and_the_reference_lines_from_given_rows():
    from lootlab.plots.conditions import rtt_chart

    fig = rtt_chart(_rtt_rows(), budget_ms=50.0)
    ax = fig.axes[0]
    labels = ax.get_legend().get_texts()
    names = [t.get_text() for t in labels]
    assert [n for n in names if n.split(" ")[0] in STEPS] == [
        *STEPS[:-1], "mmap (measured once: no network)"]
    assert any("paint budget 120 ms" in n for n in names)
    assert any("your budget 50 ms" in n for n in names)
    assert any(n.startswith("hollow: INVALID") for n in names)
    ys = sorted(float(line.get_ydata()[0]) for line in ax.lines
                if "budget" in line.get_label())
    assert ys == pytest.approx([50.0, 120.0])        # in ms, the unit these p99s fit
    assert "ms" in ax.get_ylabel() and "(ms)" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "5", "20"]
    lo, hi = ax.get_xlim()            # every point inside, with no empty negative half
    assert -0.5 < lo < 0 and hi > 20


def test_cpu_chart_draws_p99_and_throttled_share_per_limit_from_given_rows():
    from lootlab.plots.conditions import cpu_chart

    rows = pd.DataFrame([row(v, p, cpu=c, periods=100.0, throttled_periods=t,
                             throttled_share=t / 100)
                         for c, t in ((math.nan, 0.0), (0.25, 80.0), (1.0, 10.0))
                         for v, p in (("grpc-tls-pooled", 30.0), ("mmap", 0.3))])
    fig = cpu_chart(rows, budget_ms=50.0)
    ax, tx = fig.axes[:2]
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in tx.get_xticklabels()] == ["0.25", "1", "none"]
    shares = {line.get_label(): list(line.get_ydata()) for line in tx.lines}
    assert shares["mmap"] == pytest.approx([80.0, 10.0, 0.0])    # % of periods, by limit
    assert "cores" in tx.get_xlabel() and "%" in tx.get_ylabel()
    with pytest.raises(ValueError, match="needs at least one row"):
        cpu_chart(rows.iloc[:0])


def test_milliseconds_read_as_numbers_people_use():
    from lootlab.experiments.verdicts import ms_text
    assert ms_text(1490.4) == "1,490 ms" and ms_text(-1490.4) == "-1,490 ms"
    assert ms_text(14.83) == "14.8 ms" and ms_text(0.524, unit=False) == "0.524"


def test_sweeps_give_remote_variants_their_senders_and_a_local_one_a_single_sender(
        tmp_path, monkeypatch):
    """mmap's reads hold the GIL: 16 sender threads in one process queue behind each other
    and its p99 measures the generator (a full run showed every mmap row INVALID so)."""
    import copy
    import functools

    import lootlab
    from lootlab import loadgen
    from lootlab.remote.endpoint import Endpoint

    path = tmp_path / "loot.idx"
    lootlab.build_index(lootlab.generate_world(n=5_000, seed=1), path)
    real = loadgen.run(functools.partial(lootlab.open_index, path), loadgen.constant(100, 0.5),
                       warmup=0.1, workload=WORKLOAD, label="mmap")
    calls = []

    def fake_run(target, schedule, **kw):
        calls.append((kw["label"], kw["concurrency"]))
        return copy.copy(real)

    monkeypatch.setattr(loadgen, "run", fake_run)
    whatif.rtt_sweep(["grpc-tls-pooled", "mmap"], [0, 5], rate=50, duration=1.0,
                     concurrency=16, server=Endpoint("127.0.0.1:9", tls=True))
    assert sorted(set(calls)) == [("grpc-tls-pooled", 16), ("mmap", 1)]
    calls.clear()
    whatif.cpu_sweep(["grpc-tls-pooled", "mmap"], [0.5], rate=50, duration=1.0,
                     concurrency=16, server=Endpoint("127.0.0.1:9", tls=True))
    assert sorted(set(calls)) == [("grpc-tls-pooled", 16), ("mmap", 1)]


# --- saturated points: a queue's latency, never the variant's p99 ----------------------------

def _saturated(variant, *, rtt=0.0, capacity=83.4, achieved=70.0):
    """A row whose runs offered more than the variant sustains: its p99 is a queue's."""
    return row(variant, 900.0, 850.0, 950.0, rtt=rtt, valid=False, achieved=achieved,
               saturated=True, capacity_per_s=capacity,
               health="saturated: offered 100/s, sustains 83/s")


def test_a_saturated_row_gets_no_p99_verdict_but_the_rate_it_saturated_at():
    assert verdicts.fit(_saturated("x"), 1000.0) == ("saturated",
                                                   "saturated at 83/s: offered 100/s")
    # capacity unknown: the rate it achieved stands in
    assert verdicts.fit(_saturated("x", capacity=math.nan, achieved=61.2), 1000.0)[1] == (
        "saturated at 61/s: offered 100/s")
    rows = pd.DataFrame([_saturated("grpc-tls-fresh"), row("grpc-tls-resumed", 30.0),
                         row("grpc-tls-pooled", 10.0), row("mmap", 0.5)])
    t = whatif.decision_table(rows, None, budget_ms=50.0).iloc[0]
    assert t["saturated"] == "grpc-tls-fresh (saturated at 83/s: offered 100/s)"
    assert "grpc-tls-fresh" not in t["fits"] + t["over"] + t["cannot_tell"]
    assert t["fit_count"] == 3 and t["variants"] == 4
    assert math.isnan(t["change_grpc-tls-resumed_ms"])       # nothing is bought from a queue
    assert t["buys"].startswith("grpc-tls-resumed: not named (saturated); grpc-tls-pooled: -20")
    assert math.isnan(verdicts.step_change(row("a", 900.0, 890.0, 910.0),
                                         {**_saturated("b"), "valid": True}))


def test_the_what_if_words_say_saturated_not_a_p99():
    from lootlab.report import whatif as words

    rows = pd.DataFrame([row("grpc-tls-fresh", 10.0, rtt=0.0), row("mmap", 0.5, rtt=0.0),
                         _saturated("grpc-tls-fresh", rtt=20.0), row("mmap", 0.5, rtt=20.0)])
    table = whatif.decision_table(rows, None, budget_ms=50.0)
    text = words.verdict(table, 50.0)
    # the verdict counts what saturated; the bullets under it name where and at what rate
    assert "1 is saturated (a queue's latency, no p99)" in text
    assert "83/s" not in text
    said = " ".join(words.details(table))
    assert "grpc-tls-fresh from RTT 20 ms (saturated there)" in said
    assert "RTT 20 ms: grpc-tls-fresh (saturated at 83/s: offered 100/s)" in said
    summary = words.summary_rows(table)
    why = "over the budget or saturated (why)"
    assert summary[1][why] == "grpc-tls-fresh (saturated at 83/s: offered 100/s)"
    assert summary[0][why] == "none"
    assert "saturated" in words.LABELS


def test_a_saturated_point_is_drawn_at_the_top_edge_without_a_p99_marker():
    from lootlab.plots.conditions import rtt_chart

    rows = pd.DataFrame([row("grpc-tls-fresh", 4.0, rtt=0.0), row("mmap", 0.3, rtt=0.0),
                         _saturated("grpc-tls-fresh", rtt=20.0), row("mmap", 0.3, rtt=20.0)])
    fig = rtt_chart(rows, budget_ms=50.0)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["grpc-tls-fresh saturated at 83/s"]
    assert ax.get_ylim()[1] < 900.0          # the queue's 900 ms does not stretch the axis
    fresh = next(line for line in ax.lines if line.get_label() == "grpc-tls-fresh")
    assert math.isnan(fresh.get_ydata()[1])  # no p99 point, no line to it
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(n.startswith("triangle at the top: saturated") for n in names)


def _real_result(tmp_path):
    import functools

    import lootlab
    from lootlab import loadgen

    path = tmp_path / "loot.idx"
    lootlab.build_index(lootlab.generate_world(n=5_000, seed=1), path)
    return loadgen.run(functools.partial(lootlab.open_index, path), loadgen.constant(100, 0.5),
                       warmup=0.1, workload=WORKLOAD, label="mmap")


def test_pooled_row_carries_saturation_capacity_and_the_instruments_error(tmp_path):
    """Any trial saturated makes the row saturated; the capacity is the smallest a trial
    measured and the generator's error the largest, whatever health the results carry."""
    import copy
    from types import SimpleNamespace

    real = _real_result(tmp_path)

    def trial(saturated, capacity, error_us, scheduling):
        res = copy.copy(real)
        res.health = SimpleNamespace(valid=not saturated, upper_bound=False,
                                     reasons=("saturated: ...",) if saturated else (),
                                     bottleneck="none", saturated=saturated,
                                     capacity_per_s=capacity)
        res.percentile_us = lambda p, metric="latency", _e=error_us: (
            _e if metric == "generator_lag" else real.percentile_us(p, metric))
        res.env = {**(real.env or {}), "scheduling": scheduling}
        return res

    pooled = pool([trial(False, 120.0, 23.0, "SCHED_FIFO 1"),
                                trial(True, 83.0, 41.0, "SCHED_FIFO 1"),
                                trial(False, math.nan, 17.0, "nice -20")])
    assert pooled["saturated"] is True and pooled["valid"] is False
    assert pooled["capacity_per_s"] == 83.0
    assert pooled["generator_error_p99_ms"] == pytest.approx(0.041)
    assert pooled["scheduling"] == "SCHED_FIFO 1; nice -20"
    assert verdicts.fit(pooled, 50.0)[0] == "saturated"
    # results from before saturation was judged: never saturated, capacity unknown
    plain = pool([real])
    assert plain["saturated"] is bool(getattr(real.health, "saturated", False))
    assert plain["generator_error_p99_ms"] == pytest.approx(
        real.percentile_us(99, "generator_lag") / 1e3)


# --- the page's verdict: 1-3 sentences, each claim read back from the decision table ---------

def _sentences(text):
    import re
    return [t for t in re.split(r"(?<=\.)\s+(?=[A-Z0-9])", text) if t]


@st.composite
def _sweeps(draw):
    """RTT and CPU rows for 2-5 of the story's variants, each p99 anywhere from well under
    to well over a 50 ms budget, some INVALID or saturated."""
    names = draw(st.lists(st.sampled_from(STEPS), min_size=2, max_size=5, unique=True))
    rtts = draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 5.0, 20.0]), min_size=1, max_size=3,
                         unique=True))
    limits = draw(st.lists(st.sampled_from([0.25, 0.5, 1.0]), max_size=2, unique=True))
    p99 = st.floats(1.0, 200.0)
    def one(v, **where):
        kind = draw(st.sampled_from(["ok", "ok", "ok", "invalid", "saturated"]))
        if kind == "saturated":
            return _saturated(v, **{k: w for k, w in where.items() if k == "rtt"})
        p = draw(p99)
        return row(v, p, 0.9 * p, 1.1 * p, valid=kind == "ok", **where)
    rtt = pd.DataFrame([one(v, rtt=r) for r in rtts for v in names])
    cpu = pd.DataFrame([one(v, cpu=c) for c in limits for v in names]) if limits else None
    return rtt, cpu


@settings(max_examples=60, deadline=None)
@given(_sweeps())
def test_the_verdict_names_where_each_variant_fits_as_the_table_says(sweeps):
    from lootlab.report import whatif as words

    rtt, cpu = sweeps
    table = whatif.decision_table(rtt, cpu, budget_ms=50.0)
    text = words.verdict(table, 50.0)
    assert 1 <= len(_sentences(text)) <= 3, text
    first = _sentences(text)[0]
    # brute force from the table's own cells: where each variant was called a fit
    fits = {c: set(str(f).split(", ")) - {"none"} for c, f in zip(table["condition"],
                                                                  table["fits"])}
    judged = set().union(*({n.split(" (")[0] for n in str(cell).replace("; ", ", ")
                            .split(", ")} for col in ("fits", "over", "cannot_tell", "saturated")
                           for cell in table[col])) - {"none"}
    judged = {n for n in judged if n in STEPS}
    everywhere = sorted(v for v in judged if all(v in f for f in fits.values()))
    if everywhere:
        lead = first.split(" under every condition")[0]
        assert all(v in lead for v in everywhere), (everywhere, first)
    else:
        assert "no variant fits under every condition" in first
    for v in judged - set(everywhere):
        where = [c for c, f in fits.items() if v in f]
        clause = next(c for c in first.split("; ") if v in c)
        if where:
            assert clause.endswith("only at " + ", ".join(where)) or \
                ("only at " + ", ".join(where) + ".") in first, (v, where, first)
        else:
            assert "under none" in clause, (v, first)
