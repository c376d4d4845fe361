"""The answers that lead the latency and memory pages, and the charts beside them.

Each answer is checked against the rule written out by hand on hand-made rows (which
variant is lowest, by how much, when an order may be called; what the spike did and when it
came back), every sentence starts with a capital, and the charts draw what the words say:
the latency-vs-rate lines run left to right, the spike's offered rate is drawn over what
completed, and one long GC pause no longer squashes every box to a line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.experiments import latency, page_verdicts
from lootlab.experiments.page_verdicts import (
    memory_answer,
    one_rate_answer,
    sig,
    spike_answer,
    sweep_answer,
    sweep_points,
)
from lootlab.plots.latency import latency_vs_throughput, spike_timeline
from lootlab.plots.profiling import gc_pause_chart
from lootlab.profiling import GcEvent, GcStats
from lootlab.report.front_page import sentences

VARIANTS = ["grpc-tls-pooled", "grpc-tls-packed", "grpc-plain", "mmap"]


def _capitals(text: str) -> None:
    for sentence in sentences(text):
        assert sentence[0].isupper(), sentence
        assert sentence.endswith("."), sentence


# --- one rate -------------------------------------------------------------------------------

def _one_rate_rows(p99s, spreads, valid) -> list[pd.Series]:
    return [pd.Series({"variant": v, "offered_per_s": 200.0, "p99_ms": p, "p99_ms_lo": p * (1 - s),
                       "p99_ms_hi": p * (1 + s), "valid": ok, "n": 3000, "saturated": False})
            for v, p, s, ok in zip(VARIANTS, p99s, spreads, valid)]


@given(st.lists(st.floats(0.05, 50.0), min_size=4, max_size=4),
       st.lists(st.sampled_from([0.01, 0.3]), min_size=4, max_size=4),
       st.lists(st.booleans(), min_size=4, max_size=4))
@settings(max_examples=80, deadline=None)
def test_one_rate_names_the_lowest_p99_only_clear_of_noise(p99s, spreads, valid):
    rows = _one_rate_rows(p99s, spreads, valid)
    text = one_rate_answer(rows)
    _capitals(text)
    ok = sorted((r for r in rows if r["valid"]), key=lambda r: r["p99_ms"])
    for r in rows:
        assert (f"{r['variant']} (INVALID runs)" in text) == (not r["valid"])
    if len(ok) >= 2:
        low, nxt = ok[0], ok[1]
        apart = low["p99_ms_hi"] < nxt["p99_ms_lo"]
        if apart:
            ratio = nxt["p99_ms"] / low["p99_ms"]
            assert (f"the lowest p99 was {low['variant']}'s" in text
                    and f"{ratio:.1f}x lower than the next, {nxt['variant']}" in text)
        else:
            assert "within trial-to-trial noise" in text and "lowest p99 was" not in text


def test_one_rate_pools_the_trials_like_its_table():
    """The answer and the table read the same rows: the medians of hand-made trials."""
    frame = pd.DataFrame([{"variant": v, "trial": t, "offered_per_s": 200.0,
                           "p50_ms": p / 3, "p99_ms": p * (1 + 0.01 * t), "p999_ms": p * 2,
                           "valid": True, "n": 3000}
                          for t in range(3) for v, p in zip(VARIANTS, [5.0, 2.0, 5.2, 0.2])])
    rows = page_verdicts.one_rate_summary(frame)
    assert [round(r["p99_ms"], 4) for r in rows] == [5.05, 2.02, 5.252, 0.202]
    text = one_rate_answer(rows)
    from lootlab.report.story_text import one_rate_rows

    table = one_rate_rows(frame)
    (p99_col,) = [c for c in table[0] if c.startswith("p99 (")]
    unit = p99_col.removeprefix("p99 (").removesuffix(")")      # one unit for the table
    cells = {r["variant"]: r[p99_col] for r in table}            # single figures: 3 trials
    low, nxt = (str(cells[v]).split(" [")[0] for v in ("mmap", "grpc-tls-packed"))
    assert text.startswith(f"At 200 requests/s the lowest p99 was mmap's ({low} {unit}), "
                           f"10.0x lower than the next, grpc-tls-packed ({nxt} {unit})")


# --- the sweep ------------------------------------------------------------------------------

def _sweep_rows() -> pd.DataFrame:
    rows = []
    for rate, (p99, done, sat) in {200: (5.0, 200, False), 800: (350.0, 776, True),
                                   3200: (11_000.0, 657, True)}.items():
        rows.append({"variant": "grpc-tls-pooled", "trial": 0, "offered_per_s": float(rate),
                     "achieved_per_s": float(done), "p50_ms": p99 / 4, "p99_ms": p99,
                     "valid": not sat, "saturated": sat, "n": 3000})
    for rate in (200, 800, 3200):
        rows.append({"variant": "mmap", "trial": 0, "offered_per_s": float(rate),
                     "achieved_per_s": float(rate), "p50_ms": 0.05, "p99_ms": 0.2,
                     "valid": True, "saturated": False, "n": 3000})
    return pd.DataFrame(rows)


def test_the_sweep_answer_gives_each_sustainable_rate_and_what_happened_above_it():
    rows = _sweep_rows()
    points = sweep_points(rows)
    assert list(points["saturated"]) == [False, True, True, False, False, False]
    table = latency.sustainable(rows, 10_000.0)
    text = sweep_answer(table, points, 10.0)
    _capitals(text)
    assert text == ("With p99 at most 10 ms, the sustainable rates were: mmap at least 3,200 "
                    "requests/s (the highest rate swept); grpc-tls-pooled 200 requests/s (at "
                    "800/s it saturated, completing 780/s).")


def test_latency_against_rate_runs_left_to_right_and_says_what_a_queue_completed():
    """Against the achieved rate the saturated points (776/s, then 657/s) would send the line
    back left; against the offered rate each line's x only grows, and the points that did
    not keep up say what they completed."""
    fig = latency_vs_throughput(sweep_points(_sweep_rows()), target_ms=10.0)
    ax = fig.axes[0]
    for line in ax.get_lines():
        x = np.asarray(line.get_xdata(), float)
        if len(x) > 1:
            assert (np.diff(x) > 0).all(), x
    said = [t.get_text() for t in ax.texts]
    assert said.count("saturated:\n780/s done") == 1 and "saturated:\n660/s done" in said
    assert ax.get_xlabel().startswith("offered rate")


# --- the spike ------------------------------------------------------------------------------

def _timeline(p99_us, offered, completed=None) -> pd.DataFrame:
    completed = offered if completed is None else completed
    return pd.DataFrame({"variant": "mmap", "second": range(len(p99_us)), "offered": offered,
                         "completed": completed, "count": completed,
                         "p50_us": [p / 3 for p in p99_us], "p99_us": p99_us,
                         "max_us": [p * 1.5 for p in p99_us]})


BASE = [200, 200, 200, 1000, 1000, 200, 200, 200, 200, 200]


@given(st.lists(st.floats(50.0, 5_000.0), min_size=10, max_size=10))
@settings(max_examples=60, deadline=None)
def test_the_spike_answer_says_whether_p99_rose_and_when_it_came_back(p99):
    text = spike_answer(_timeline(p99, BASE))
    _capitals(text)
    assert "completed 2,000 of the 2,000 requests offered" in text
    level, peak = max(p99[:3]), max(p99[3:5])
    if peak <= 1.5 * level:
        assert "never rose above 1.5x its level before the burst" in text
        return
    back = next((s for s in range(5, 10) if p99[s] <= 1.5 * level), None)
    if back is None:
        assert "not back by the end of the run: a queue outlasted the burst" in text
    else:
        assert f"back within 1.5x of it {back - 4} s after the burst" in text


def test_an_invalid_spike_says_so_first():
    text = spike_answer(_timeline([100.0] * 10, BASE), valid=False, why="a sender was late")
    assert text.startswith("The spike run was INVALID (a sender was late)")
    _capitals(text)


def test_the_spike_chart_draws_offered_over_completed():
    fig = spike_timeline(_timeline([100.0] * 10, BASE))
    top = fig.axes[0]
    offered = next(line for line in top.get_lines() if line.get_label().endswith("offered (dashed)"))
    completed = [c for c in top.collections if c.get_label().endswith("completed (filled)")]
    assert completed and offered.get_zorder() > max(c.get_zorder() for c in completed)
    assert offered.get_linestyle() != "-"
    assert fig.get_size_inches()[0] <= 8


# --- memory ---------------------------------------------------------------------------------

def test_the_memory_answer_reads_its_rows_with_the_tables_figures():
    memory = pd.DataFrame({"variant": ["grpc-tls-pooled", "grpc-tls-packed", "mmap"],
                           "allocs_per_op": [4049.364, 397.479, 55.538]})
    gc = pd.DataFrame({"variant": ["grpc-tls-pooled", "grpc-tls-packed", "mmap"],
                       "ops": [3000] * 3, "collections": [168, 2, 0],
                       "pause_max_ms": [31.809593, 0.097396, 0.0]})
    replicas = pd.DataFrame({"variant": "mmap", "k": [1, 2, 4],
                             "pss_total_MiB": [71.1, 137.8, 263.77],
                             "pss_per_replica_MiB": [71.1, 68.9, 65.94],
                             "index_pss_total_MiB": [4.6, 6.2, 7.3945],
                             "index_rss_per_replica_MiB": [9.246] * 3})
    text = memory_answer(memory, gc, replicas)
    _capitals(text)
    assert text == (
        "Per query, mmap made 55.5 allocations, 73x fewer than grpc-tls-pooled (4,050). "
        "Over 3,000 queries the garbage collector ran 0 times for mmap against 168 for "
        "grpc-tls-pooled, whose longest pause was 31.8 ms. Together 4 replicas of mmap took "
        "264 MiB of PSS, 65.9 MiB each; the index file was 7.39 MiB of that PSS in all while "
        "each replica's RSS counted 9.25 MiB of it: its pages are shared.")


@pytest.mark.parametrize("x, said", [(4049.364, "4,050"), (55.538, "55.5"), (7.3945, "7.39"),
                                     (0.0974, "0.0974"), (0.0, "0")])
def test_a_sentence_prints_three_significant_figures_like_the_tables(x, said):
    assert sig(x) == said


def _gc(variant: str, pauses_ms: list[float]) -> GcStats:
    return GcStats(variant, 3000, [GcEvent(0, i, int(p * 1e6), 1, 0)
                                   for i, p in enumerate(pauses_ms)])


def test_one_long_gc_pause_does_not_squash_the_other_boxes():
    rng = np.random.default_rng(0)
    pooled = list(rng.uniform(0.12, 0.16, 160)) + [31.8]
    fig = gc_pause_chart({"grpc-tls-pooled": _gc("grpc-tls-pooled", pooled),
                          "grpc-tls-packed": _gc("grpc-tls-packed", [0.03, 0.05, 0.09]),
                          "mmap": _gc("mmap", [])})
    ax = fig.axes[0]
    assert ax.get_xlim()[1] < 1.0           # the axis ends near the boxes, not at 31.8 ms
    said = [t.get_text() for t in ax.texts]
    assert any(t.startswith("1 beyond the axis, up to 31.8 ms") for t in said), said
    assert "no collection during the loop" in said
    # without an outlier nothing is clipped
    plain = gc_pause_chart({"a": _gc("a", [0.1, 0.2, 0.3])}).axes[0]
    assert not any("beyond the axis" in t.get_text() for t in plain.texts)


@given(st.lists(st.booleans(), min_size=2, max_size=4), st.integers(1, 3))
@settings(max_examples=20, deadline=None)
def test_the_one_rate_validity_words_start_with_a_capital(valid, trials):
    from lootlab.report.story_text import one_rate_verdict

    frame = pd.DataFrame([{"variant": v, "offered_per_s": 200.0, "trial": t, "n": 1000,
                           "p99_ms": 1.0, "valid": ok or t > 0}
                          for t in range(trials) for v, ok in zip(VARIANTS, valid)])
    text = one_rate_verdict(frame)
    for sentence in sentences(text):
        assert sentence[0].isupper(), sentence
