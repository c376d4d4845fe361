"""Every row of the sustainable-rate table says what limited its variant.

Synthetic sweep rows (one trial per point, so a point is its own median): a variant that
met the p99 target below the highest rate tried names the next rate up and what happened
there; one that met it at its top rate says nothing above was tried.  The oracle walks the
rows by hand (``verdicts.meets_target`` is the one rule of what "met" means).
"""

from __future__ import annotations

import math

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.experiments import verdicts
from lootlab.experiments.latency import sustainable

TARGET_MS = 10.0
RATES = (100.0, 200.0, 400.0, 800.0, 1600.0)


def _row(variant: str, rate: float, p99: float, *, valid: bool = True,
         achieved: float | None = None) -> dict:
    return {"variant": variant, "offered_per_s": rate, "trial": 0, "p99_ms": p99,
            "achieved_per_s": rate if achieved is None else achieved, "valid": valid}


def _table(rows: list[dict]) -> pd.DataFrame:
    return sustainable(pd.DataFrame(rows), TARGET_MS * 1e3).set_index("variant")


def test_a_variant_that_met_the_target_below_its_top_rate_says_what_stopped_it():
    table = _table([_row("slow", 100, 2.0), _row("slow", 200, 3.0), _row("slow", 400, 25.0),
                    _row("slow", 800, 90.0),
                    _row("bad", 100, 2.0), _row("bad", 200, 2.5, valid=False),
                    _row("behind", 100, 1.0), _row("behind", 200, 1.0, achieved=150.0)])
    assert table.loc["slow", "sustainable_per_s"] == 200
    assert table.loc["slow", "note"] == "missed the target at 400/s: p99 25 ms over 10 ms"
    assert table.loc["bad", "note"].startswith("runs INVALID at 200/s")
    assert table.loc["behind", "note"] == "could not keep up at 200/s: completed 150/s"


def test_a_variant_that_met_the_target_at_its_top_rate_says_nothing_above_was_tried():
    table = _table([_row("top", 100, 1.0), _row("top", 800, 2.0),
                    _row("short", 100, 1.0), _row("short", 200, 2.0),
                    _row("bumpy", 100, 40.0), _row("bumpy", 800, 2.0)])
    assert table.loc["top", "note"] == ("met the target at the highest rate swept (800/s) "
                                        "and at every rate tried: the limit may be higher")
    assert table.loc["short", "note"].endswith("not tried above 200/s: the limit may be higher")
    assert "not at every rate below" in table.loc["bumpy", "note"]


def _limit(rows: pd.DataFrame) -> tuple[float, pd.Series | None]:
    """Oracle: the variant's highest rate meeting the target, and the row just above it."""
    met = [r["offered_per_s"] for _, r in rows.iterrows()
           if verdicts.meets_target(r, TARGET_MS)]
    if not met:
        return math.nan, None
    above = rows[rows["offered_per_s"] > max(met)].sort_values("offered_per_s")
    return max(met), (above.iloc[0] if len(above) else None)


_point = st.tuples(st.sampled_from([0.5, 5.0, 9.9, 10.1, 40.0]), st.booleans(),
                   st.sampled_from([1.0, 0.995, 0.5]))


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]),
                       st.dictionaries(st.sampled_from(RATES), _point, min_size=1),
                       min_size=1))
@settings(max_examples=150, deadline=None)
def test_every_row_carries_a_note_naming_what_limited_it(sweeps):
    rows = [_row(v, rate, p99, valid=valid, achieved=rate * done)
            for v, points in sweeps.items() for rate, (p99, valid, done) in points.items()]
    frame = pd.DataFrame(rows)
    table = _table(rows)
    assert sorted(table.index) == sorted(sweeps)
    highest = frame["offered_per_s"].max()
    for variant, row in table.iterrows():
        note = row["note"]
        assert isinstance(note, str) and len(note) > 20, (variant, note)
        mine = frame[frame["variant"] == variant]
        rate, above = _limit(mine)
        if math.isnan(rate):
            assert math.isnan(row["sustainable_per_s"])
            continue
        assert row["sustainable_per_s"] == rate
        if above is None:
            assert "the limit may be higher" in note
            if rate < highest:
                assert f"not tried above {rate:,.0f}/s" in note
            continue
        at = f"{above['offered_per_s']:,.0f}/s"
        assert at in note, (note, at)
        if not verdicts.kept_up(above, verdicts.TARGET_KEEP_UP):
            assert note.startswith("could not keep up")
        elif not above["valid"]:
            assert note.startswith("runs INVALID")
        else:
            assert note.startswith("missed the target")
