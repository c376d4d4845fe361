"""The failure experiment's derivations against brute-force oracles: counts per window,
end-to-end staleness from the change and served logs, time since the last good check."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.experiments import failure_windows as fw


def _changes(gaps: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"t": np.cumsum(gaps), "seq": np.arange(len(gaps))})


def _served(points: list[tuple[float, int]]) -> pd.DataFrame:
    points = sorted(points)
    return pd.DataFrame({"t": [p[0] for p in points], "seq": [p[1] for p in points]})


def oracle_staleness(t: float, changes: pd.DataFrame, served: pd.DataFrame) -> float:
    """Walk the logs by hand: what was served last by t, then the oldest change after it."""
    seq = None
    for when, s in zip(served["t"], served["seq"]):
        if when <= t:
            seq = s
    if seq is None:
        return math.nan
    oldest = None
    for when, s in zip(changes["t"], changes["seq"]):
        if s > seq and when <= t and (oldest is None or when < oldest):
            oldest = when
    return 0.0 if oldest is None else t - oldest


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.floats(0.05, 2.0), min_size=1, max_size=8),
       served=st.lists(st.tuples(st.floats(0.0, 12.0), st.integers(0, 7)), min_size=1,
                       max_size=8),
       times=st.lists(st.floats(0.0, 15.0), min_size=1, max_size=20))
def test_staleness_matches_a_walk_through_the_logs(gaps, served, times):
    changes, srv = _changes(gaps), _served(served)
    got = fw.staleness_at(np.array(times), changes, srv)
    want = [oracle_staleness(t, changes, srv) for t in times]
    np.testing.assert_allclose(got, want, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(starts=st.lists(st.floats(-1.0, 7.0), max_size=60), data=st.data())
def test_window_counts_match_a_loop(starts, data):
    oks = data.draw(st.lists(st.booleans(), min_size=len(starts), max_size=len(starts)))
    duration = 5.0
    got = fw.count_windows(np.array(starts), np.array(oks, bool), 0.0, duration)
    assert list(got["t_s"]) == [0.0, 1.0, 2.0, 3.0, 4.0]
    for i in range(5):
        inside = [ok for s, ok in zip(starts, oks) if i <= s < i + 1 and s < duration]
        assert got["ok_count"][i] == sum(inside)
        assert got["error_count"][i] == len(inside) - sum(inside)


def test_staleness_grows_one_second_per_second_while_nothing_new_is_served():
    changes = _changes([0.0] + [1.0] * 9)        # change k at t = k
    served = _served([(0.0, 0), (1.5, 1), (2.5, 2)])   # then the source goes away
    t = np.array([3.5, 4.5, 6.5])
    np.testing.assert_allclose(fw.staleness_at(t, changes, served), t - 3.0)
    rows = fw.count_windows(np.array([]), np.array([], bool), 0.0, 8.0)
    peaks = fw.window_max(lambda x: fw.staleness_at(x, changes, served), 0.0, rows)
    assert np.all(np.diff(peaks[3:]) > 0.99)


def test_unconfirmed_counts_from_the_last_good_check():
    cycles = pd.DataFrame({"t": [1.0, 2.0, 3.0, 4.0],
                           "outcome": ["built", "unchanged", "failed", "failed"]})
    got = fw.unconfirmed_at(np.array([0.5, 1.5, 3.5, 5.0]), cycles)
    np.testing.assert_allclose(got, [math.nan, 0.5, 1.5, 3.0], equal_nan=True)


def test_fresh_again_is_the_first_serve_of_everything_made_before_the_end():
    changes = _changes([1.0] * 6)                # t = 1..6, seq 0..5
    served = _served([(0.0, 0), (4.2, 2), (5.3, 4), (6.4, 5)])
    assert fw.fresh_again(changes, served, 4.0) == 5.3     # seq 3 (made at 4.0) first at 5.3
    assert fw.fresh_again(changes, served, 5.5) == 5.5     # already serving seq 4
    assert fw.fresh_again(changes, served, 6.0) == 6.4
    assert math.isnan(fw.fresh_again(changes, served[served["t"] < 6], 6.0))


def test_first_ok_after_and_phases():
    calls = pd.DataFrame({"start": [0.0, 0.4, 1.0, 2.0, 3.0],
                          "end": [0.1, 0.6, 1.1, 2.1, 3.1],
                          "ok": [True, True, False, False, True]})
    # the query in flight at 0.5 was answered, but it was sent before: not a recovery
    assert fw.first_ok_after(calls, 0.5) == 3.1
    rows = fw.count_windows(np.array([]), np.array([], bool), 0.0, 4.0)
    assert fw.phase_of(rows, 1.0, 3.0) == ["before", "during", "during", "after"]
