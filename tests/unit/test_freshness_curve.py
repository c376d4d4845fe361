"""The freshness rows and the PBS curve, against brute-force oracles (no processes).

The curve says which share of reads see a change t seconds after it was made: measured,
it is the empirical CDF of staleness; modelled for an interval not run, it is a poll wait
uniform in [0, interval) plus a measured rest.  The oracles count pairs one by one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.experiments.freshness_curve import model_share, pbs_curve, rest_seconds
from lootlab.experiments.freshness_rows import staleness_rows, summarize

positive = st.floats(min_value=0.001, max_value=30.0, allow_nan=False)


def rows_of(interval: float, stale: list[float], poll_wait: list[float],
            kind: str = "reader") -> pd.DataFrame:
    return pd.DataFrame({"kind": kind, "interval_s": interval, "staleness_s": stale,
                         "poll_wait_s": poll_wait})


def oracle_measured(stale: list[float], t: float) -> float:
    """Count the reads that see their change by ``t`` (NaN: never)."""
    return sum(1 for s in stale if not math.isnan(s) and s <= t) / len(stale)


def oracle_model(rest: list[float], interval: float, t: float, steps: int = 4000) -> float:
    """Pairs (poll wait on a fine even grid over [0, interval), measured rest) that add up
    to at most ``t``, counted one by one."""
    waits = (np.arange(steps) + 0.5) * interval / steps
    return sum(int(np.count_nonzero(waits + r <= t)) for r in rest) / (steps * len(rest))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(positive, st.floats(0.0, 1.0)), min_size=1, max_size=25))
def test_measured_curve_is_the_empirical_cdf(pairs):
    stale = [s for s, _ in pairs]
    waits = [s * f for s, f in pairs]
    curve = pbs_curve(rows_of(2.0, stale, waits), intervals=(), points=57)
    assert set(curve["basis"]) == {"measured"} and not curve["extrapolated"].any()
    for t, share in zip(curve["t_s"], curve["share"]):
        assert share == pytest.approx(oracle_measured(stale, t))
    assert (curve["reads"] == len(stale)).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(positive, st.floats(0.0, 1.0)), min_size=1, max_size=12),
       st.sampled_from([1.0, 10.0, 60.0]))
def test_model_matches_a_brute_force_count(pairs, interval):
    stale = [s for s, _ in pairs]
    waits = [s * f for s, f in pairs]
    rest = [s - w for s, w in zip(stale, waits)]
    rows = rows_of(2.0, stale, waits)
    curve = pbs_curve(rows, intervals=(interval,), points=31)
    model = curve[curve["interval_s"] == interval]
    assert model["extrapolated"].all() and set(model["basis"]) == {"model"}
    for t, share in zip(model["t_s"], model["share"]):
        assert share == pytest.approx(oracle_model(rest, interval, t), abs=2e-3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(positive, st.floats(0.0, 1.0)), min_size=1, max_size=20))
def test_every_curve_rises_from_its_start_to_one(pairs):
    stale = [s for s, _ in pairs]
    rows = rows_of(1.0, stale, [s * f for s, f in pairs])
    curve = pbs_curve(rows, intervals=(1, 10, 60), validate=True)
    for _, c in curve.groupby(["interval_s", "basis"]):
        share = c.sort_values("t_s")["share"].to_numpy()
        assert (np.diff(share) >= -1e-12).all(), "a share of reads can only grow with time"
        assert share[-1] == pytest.approx(1.0), "every change is seen in the end"
        assert 0.0 <= share.min() and share.max() <= 1.0


def test_extrapolated_flags_only_the_intervals_not_run():
    stale = [0.4, 1.1, 0.9, 1.6, 2.2, 0.7]
    two = rows_of(2.0, stale, [s - 0.2 for s in stale])
    one = rows_of(1.0, [s / 2 for s in stale], [s / 2 - 0.2 for s in stale])
    curve = pbs_curve(pd.concat([one, two]), intervals=(1, 10, 60), measured_intervals=(1, 2))
    flags = curve.groupby("interval_s")["extrapolated"].agg(["min", "max"])
    assert flags.loc[1.0].tolist() == [False, False]
    assert flags.loc[2.0].tolist() == [False, False]
    assert flags.loc[10.0].tolist() == [True, True]
    assert flags.loc[60.0].tolist() == [True, True]
    # the model stands on every measured read of both intervals
    assert (curve.loc[curve["extrapolated"], "reads"] == 2 * len(stale)).all()
    # a model at a longer interval is never fresher than one at a shorter
    t = np.linspace(0, 80, 200)
    rest = rest_seconds(pd.concat([one, two]))
    assert (model_share(rest, 60.0, t) <= model_share(rest, 10.0, t) + 1e-12).all()


def test_measured_intervals_must_be_in_the_rows():
    rows = rows_of(2.0, [1.0, 2.0], [0.5, 1.0])
    with pytest.raises(ValueError, match="interval"):
        pbs_curve(rows, measured_intervals=(1.0, 2.0))
    with pytest.raises(ValueError):
        pbs_curve(rows_of(2.0, [1.0], [0.5], kind="remote"))   # no "reader" rows at all


def test_a_read_that_never_saw_its_change_keeps_the_curve_below_one():
    curve = pbs_curve(rows_of(2.0, [1.0, float("nan")], [0.5, float("nan")]), intervals=(),
                      t_max=100.0)
    assert curve["share"].max() == pytest.approx(0.5)


def test_remote_reads_have_their_own_curve():
    rows = pd.concat([rows_of(2.0, [1.0, 1.0], [0.5, 0.5]),
                      rows_of(2.0, [3.0, 3.0], [0.5, 0.5], kind="remote")])
    remote = pbs_curve(rows, intervals=(), kind="remote", t_max=4.0, points=5)
    assert remote["share"].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


# -- the rows ---------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0, 5), st.floats(0, 1), st.floats(0, 2),
                          st.lists(st.floats(0, 1), min_size=3, max_size=3)),
                min_size=1, max_size=6))
def test_rows_add_up_and_every_reader_is_the_latest(spec):
    changes, cycles, seen = [], [], []
    t = 1000.0
    for i, (gap, wait, fetch, build, lags) in enumerate(spec):
        made = t + gap
        committed = made + 0.01
        poll = committed + wait
        published = poll + fetch + build
        changes.append({"change": i, "made_at": made, "committed_at": committed})
        cycles.append({"generation": i + 2, "poll_at": poll, "fetched_at": poll + fetch,
                       "published_at": published, "new_changes": [i]})
        for k, lag in enumerate(lags):
            seen.append((f"reader-{k}" if k < 2 else "remote-0", i, published + lag, i + 2))
        seen.append(("reader-0", i, published + 99.0, i + 3))   # a later read: not the first
        t = published + max(lags)
    rows = staleness_rows(changes, cycles, seen, ["reader-0", "reader-1"], ["remote-0"],
                          source="s3", interval=2.0)
    parts = rows[["upload_s", "poll_wait_s", "fetch_s", "build_publish_s", "refresh_s"]]
    assert np.allclose(parts.sum(axis=1), rows["staleness_s"])
    for i, (_, _, _, _, lags) in enumerate(spec):
        mine = rows[rows["change"] == i].set_index("reader")
        made = changes[i]["made_at"]
        published = cycles[i]["published_at"]
        for k, label in enumerate(["reader-0", "reader-1", "remote-0"]):
            assert mine.loc[label, "seen_at"] == pytest.approx(published + lags[k])
        assert mine.loc["every", "staleness_s"] == pytest.approx(
            published + max(lags[:2]) - made)
        assert mine.loc["remote-0", "kind"] == "remote"
        assert mine["generation"].tolist() == [i + 2] * 4


def test_a_change_never_served_has_no_staleness():
    changes = [{"change": 0, "made_at": 10.0, "committed_at": 10.1}]
    cycles = [{"generation": 2, "poll_at": 11.0, "fetched_at": 11.1, "published_at": 11.5,
               "new_changes": [0]}]
    rows = staleness_rows(changes, cycles, [("reader-0", 0, 12.0, 2)],
                          ["reader-0", "reader-1"], interval=2.0)
    by = rows.set_index("reader")
    assert by.loc["reader-0", "seen"] and not by.loc["reader-1", "seen"]
    assert math.isnan(by.loc["every", "staleness_s"]) and not by.loc["every", "seen"]
    summary = summarize(rows).set_index("kind")
    assert summary.loc["reader", "seen_count"] == 1
    assert summary.loc["every_reader", "seen_count"] == 0
    assert math.isnan(summary.loc["every_reader", "median_s"])
    assert summary.loc["reader", "one_poll_plus_build_s"] == pytest.approx(2.0 / 2 + (11.5 - 11.0))
