"""Repeated trials and verdicts only from valid runs.

Interleaving is checked on toy clients that log which variant answered; the summaries,
verdicts and sustainable-rate notes on hand-made per-trial rows, so every number is known.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lootlab.experiments import story
from lootlab.errors import LootlabError
from lootlab.experiments.latency import explain_miss, sustainable, sweep
from lootlab.experiments.trials import median_trial, summarize_trials
from lootlab.experiments.verdicts import separated
from lootlab.loadgen import hist
from lootlab.report.story_text import summary_rows, verdict

WORKLOAD = np.array([[0, 0, 0, 8]] * 16, dtype=np.int64)


class _Toy:
    """A client that notes its variant in a shared log the first time it answers."""

    def __init__(self, name: str, log: list[str]):
        self.name, self.log, self.seen = name, log, False

    def near(self, x: int, y: int, z: int, r: int) -> list:
        if not self.seen:
            self.seen = True
            self.log.append(self.name)
        return []

    def close(self) -> None:
        pass


def _factories(names: list[str], log: list[str]) -> dict:
    return {n: (lambda n=n: _Toy(n, log)) for n in names}


def test_run_steps_interleaves_trials_across_variants():
    log: list[str] = []
    run = story.run_steps(50, 0.2, variants=_factories(["v1", "v2"], log), trials=3,
                          warmup=0.05, workload=WORKLOAD)
    assert log == ["v1", "v2"] * 3
    assert list(run.trials["variant"]) == ["v1", "v2"] * 3
    assert list(run.trials["trial"]) == [0, 0, 1, 1, 2, 2]
    assert list(run.steps["variant"]) == ["v1", "v2"]
    assert (run.steps["trials"] == 3).all() and run.steps["pooled"].all()
    assert [len(run.results[v]) for v in ("v1", "v2")] == [3, 3]
    # the figure shown rests on every trial's samples: the pooled histogram's
    for _, step in run.steps.iterrows():
        trials = run.results[step["variant"]]
        merged = hist.merge([r.latency for r in trials])
        assert step["n"] == sum(r.samples() for r in trials) == merged.get_total_count()
        assert step["p50_ms"] == pytest.approx(hist.percentiles(merged, [50])[0] / 1e6)
    for col in ("p99_ms_lo", "p99_ms_hi", "p99_ci_low_ms", "p99_ci_high_ms", "invalid_trials"):
        assert col in run.steps
    assert (run.steps["p99_ms_lo"] <= run.steps["p99_ms"]).all()
    assert (run.steps["p99_ms"] <= run.steps["p99_ms_hi"]).all()
    with pytest.raises(LootlabError, match="at least 1"):
        story.run_steps(50, 0.2, variants=_factories(["v1"], log), trials=0)


def test_sweep_interleaves_trials_across_variants_and_rates():
    log: list[str] = []
    results: list = []
    frame = sweep(_factories(["a", "b"], log), [40, 80], 0.2, warmup=0.05, trials=2,
                  workload=WORKLOAD, results=results)
    assert log == ["a", "a", "b", "b"] * 2          # each run opens a fresh client
    assert list(zip(frame["trial"], frame["variant"], frame["offered_per_s"])) == [
        (t, v, r) for t in (0, 1) for v in ("a", "b") for r in (40.0, 80.0)]
    assert set(median_trial(results)) == {"a", "b"}
    assert (frame["n"] == frame["requests"]).all()


def _trial_rows(p99s: dict[str, list[float]], valid: dict[str, list[bool]] | None = None,
                rate: float = 100.0) -> pd.DataFrame:
    """Per-trial step rows in ``step_row``'s names, interleaved, with known numbers."""
    rows = []
    names = list(p99s)
    for t in range(len(p99s[names[0]])):
        for name in names:
            p99 = p99s[name][t]
            ok = True if valid is None else valid[name][t]
            rows.append({"variant": name, "change": story.STEPS.get(name, name), "trial": t,
                         "p50_ms": p99 / 3, "p99_ms": p99, "p999_ms": p99 * 2,
                         "service_p99_ms": p99 / 2, "n": 3000 + t, "p99_ci_low_ms": math.nan,
                         "p99_ci_high_ms": math.nan, "requests": 3000 + t,
                         "offered_per_s": rate, "achieved_per_s": rate, "errors": 0,
                         "valid": ok, "health": "ok" if ok else "the generator sent late",
                         "writeup_p99_ms": story.WRITEUP["p99_ms_by_step"].get(name, math.nan)})
    return pd.DataFrame(rows)


def test_median_and_spread_of_hand_made_trials():
    trials = _trial_rows({"grpc-tls-fresh": [40.0, 10.0, 25.0], "mmap": [1.0, 3.0, 2.0]},
                         valid={"grpc-tls-fresh": [True, False, True], "mmap": [True] * 3})
    trials.loc[0, "p99_ci_low_ms"], trials.loc[0, "p99_ci_high_ms"] = 38.0, 45.0
    trials.loc[0, "errors"] = 2
    steps = story.summarize_steps(trials)
    fresh, mmap = steps.iloc[0], steps.iloc[1]
    assert (fresh["p99_ms"], fresh["p99_ms_lo"], fresh["p99_ms_hi"]) == (25.0, 10.0, 40.0)
    assert (mmap["p99_ms"], mmap["p99_ms_lo"], mmap["p99_ms_hi"]) == (2.0, 1.0, 3.0)
    assert fresh["p99_ci_low_ms"] == 38.0 and fresh["p99_ci_high_ms"] == 45.0
    assert fresh["n"] == 3000 and fresh["requests"] == 9003 and fresh["errors"] == 2
    assert fresh["trials"] == 3 and fresh["invalid_trials"] == 1 and not fresh["valid"]
    assert mmap["valid"] and mmap["invalid_trials"] == 0
    assert fresh["health"] == "the generator sent late" and mmap["health"] == "ok"
    assert math.isnan(steps["p99_change_ms"].iloc[0])
    assert steps["p99_change_ms"].iloc[1] == -23.0
    # an even count: the median is the middle two's mean, the spread still min..max
    even = summarize_trials(pd.DataFrame({"k": ["a"] * 4, "x": [4.0, 1.0, 3.0, 2.0]}),
                            ["k"], ["x"])
    assert list(even.loc[0, ["x", "x_lo", "x_hi", "trials"]]) == [2.5, 1.0, 4.0, 4]
    row, _ = summary_rows(steps)
    assert row["p99 (ms)"] == "25 [10–40]" and row["trials"] == 3 and row["samples"] == 3000
    assert row["run"] == "INVALID (1 of 3)"
    assert all(len(str(v)) < 30 for v in row.values())


def test_verdict_refuses_a_ratio_when_a_run_is_invalid_and_says_what_to_do():
    trials = _trial_rows({"grpc-tls-fresh": [40.0, 41.0, 42.0], "mmap": [1.0, 1.1, 1.2]},
                         valid={"grpc-tls-fresh": [True] * 3, "mmap": [True, False, False]})
    text = verdict(story.summarize_steps(trials))
    assert "x lower" not in text and "went from" not in text
    assert "No ratio between grpc-tls-fresh and mmap is named" in text
    assert "mmap (2 of 3 trials INVALID: rerun on a quieter machine)" in text
    # a saturated step (achieved below offered) is told to lower the rate instead
    trials.loc[trials["variant"] == "mmap", "achieved_per_s"] = 60.0
    text = verdict(story.summarize_steps(trials))
    assert "mmap (2 of 3 trials INVALID: lower the rate)" in text


def test_verdict_refuses_largest_gain_when_spreads_overlap():
    # fresh -> resumed -> mmap: every consecutive pair overlaps (resumed spans 5..35)
    trials = _trial_rows({"grpc-tls-fresh": [30.0, 40.0, 34.0],
                          "grpc-tls-resumed": [5.0, 35.0, 20.0], "mmap": [3.0, 6.0, 4.0]})
    steps = story.summarize_steps(trials)
    assert not separated(steps.iloc[0], steps.iloc[1])
    assert not separated(steps.iloc[1], steps.iloc[2])
    text = verdict(steps)
    assert "largest gain that stands clear" not in text
    assert "No gain stands clear of trial-to-trial noise" in text
    # first and last are far apart, all valid: that ratio is named
    assert "34.0 ms (grpc-tls-fresh) to 4.00 ms (mmap), 8.5x lower (median of 3 trials)" in text
    # a per-trial 95 % interval widens the band: overlapping intervals refuse the ratio
    trials.loc[trials["variant"] == "mmap", "p99_ci_high_ms"] = 31.0
    text = verdict(story.summarize_steps(trials))
    assert "x lower" not in text and "less than the spread between trials" in text


def test_verdict_names_ratio_and_gain_when_all_valid_and_separated():
    trials = _trial_rows({"grpc-tls-fresh": [40.0, 41.0, 39.0],
                          "grpc-tls-pooled": [12.0, 13.0, 11.0], "mmap": [0.5, 0.6, 0.4]})
    text = verdict(story.summarize_steps(trials))
    assert "40.0 ms (grpc-tls-fresh) to 0.50 ms (mmap), 80.0x lower (median of 3 trials)" in text
    assert "The largest gain that stands clear of trial-to-trial noise was grpc-tls-pooled" in text
    assert "28.0 ms lower" in text
    assert "No ratio" not in text and "INVALID" not in text and "ran once" not in text


def _sweep_rows(p99s: dict[float, list[float]], valid: dict[float, list[bool]] | None = None,
                variant: str = "mmap") -> pd.DataFrame:
    rows = []
    for rate, values in p99s.items():
        for t, p99 in enumerate(values):
            rows.append({"variant": variant, "offered_per_s": rate, "trial": t,
                         "achieved_per_s": rate, "p99_ms": p99,
                         "valid": True if valid is None else valid[rate][t]})
    return pd.DataFrame(rows)


def test_sustainable_without_a_passing_rate_explains_itself():
    slow = _sweep_rows({100.0: [15.0, 12.0, 20.0], 400.0: [30.0, 31.0, 32.0]}, variant="slow")
    table = sustainable(slow, 10e3)
    assert math.isnan(table.loc[0, "sustainable_per_s"])
    assert table.loc[0, "note"] == ("no rate met p99 <= 10 ms: even 100/s gave p99 15 ms; "
                                    "lower the rate or relax the target")
    invalid = _sweep_rows({100.0: [1.0] * 3, 400.0: [2.0] * 3},
                          valid={100.0: [True, False, True], 400.0: [False] * 3},
                          variant="bad")
    table = sustainable(invalid, 10e3)
    assert math.isnan(table.loc[0, "sustainable_per_s"])
    assert table.loc[0, "note"].startswith("runs INVALID at every rate swept (2 of 2)")
    assert "rerun on a quieter machine" in table.loc[0, "note"]
    # the median trial decides, so one slow trial of three does not sink a rate
    good = pd.concat([_sweep_rows({100.0: [1.0, 50.0, 2.0], 400.0: [40.0] * 3}),
                      _sweep_rows({100.0: [1.0] * 3}, variant="top")])
    table = sustainable(good, 10e3).set_index("variant")
    assert table.loc["mmap", "sustainable_per_s"] == 100.0
    assert table.loc["mmap", "p99_ms_there"] == 2.0
    assert table.loc["mmap", "note"] == "missed the target at 400/s: p99 40 ms over 10 ms"
    assert "limit may be higher" in table.loc["top", "note"]
    every = sustainable(pd.concat([slow, invalid, good]), 10e3)
    assert list(every["variant"]) == ["slow", "bad", "mmap", "top"]
    for _, row in every.iterrows():
        assert not math.isnan(row["sustainable_per_s"]) or len(row["note"]) > 20
    assert explain_miss(slow[slow["trial"] == 0], 10e3).startswith("no rate met")


def test_step_chart_draws_the_spread_across_trials_as_error_bars():
    from matplotlib.container import ErrorbarContainer

    from lootlab.plots.steps import step_chart

    steps = story.summarize_steps(_trial_rows({"grpc-tls-fresh": [30.0, 40.0, 34.0],
                                               "mmap": [3.0, 6.0, 4.0]}))
    ax = step_chart(steps).axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2                                  # p50 and p99
    segments = bars[1].lines[2][0].get_segments()          # p99: one vertical line per step
    assert [tuple(seg[:, 1]) for seg in segments] == [(30.0, 40.0), (3.0, 6.0)]
    assert "median of 3 trials" in ax.get_legend_handles_labels()[1][1]


def test_one_rate_rows_and_verdict_name_invalid_variants_and_thin_tails():
    from lootlab.report.story_text import one_rate_rows, one_rate_verdict

    frame = pd.DataFrame([{"variant": v, "offered_per_s": 200.0, "trial": t, "n": 1000,
                           "p50_ms": 0.1 * (t + 1), "p99_ms": 1.0 * (t + 1),
                           "p999_ms": 5.0, "valid": not (v == "b" and t == 2)}
                          for t in range(3) for v in ("a", "b")])
    a, b = one_rate_rows(frame)
    # one unit for the table's one quantity: p50 beside p99 never in another unit
    assert {c.split(" (")[1] for c in a if c.startswith("p")} == {"ms)"}
    assert a["p99 (ms)"] == "2 [1–3]" and a["p50 (ms)"].startswith("0.2 [0.1")
    assert a["p99.9 (ms)"] == "too few samples (n=1,000)" and a["run"] == "valid"
    assert b["run"] == "INVALID (1 of 3)"
    big = frame.assign(p50_ms=frame["p50_ms"] * 1e4, p99_ms=frame["p99_ms"] * 1e4,
                       p999_ms=5e4)                     # seconds read in seconds
    assert one_rate_rows(big)[0]["p50 (s)"] == "2 [1–3]"
    text = one_rate_verdict(frame)
    assert text.startswith("Of 2 variants, 1 had INVALID runs: b (1 of 3).")
    assert "rerun on a quieter machine or lower the rate" in text
    frame["valid"] = True
    assert one_rate_verdict(frame) == ("All runs valid; 3 trials per variant, "
                                       "[lowest-highest trial] beside each figure.")
    assert "no spread" in one_rate_verdict(frame[frame["trial"] == 0])
