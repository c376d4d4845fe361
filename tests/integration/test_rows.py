"""One measurement row (``lootlab.experiments.rows``): every experiment's rows have the same
columns in the same names and units, and a pooled row is its trials' histograms pooled.

The experiments run against a fake ``loadgen.run`` that hands back copies of one real
(small, no-op client) ``LoadResult``, so each builder path is exercised in well under a
second and the rows can be compared column by column.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from lootlab import loadgen
from lootlab.experiments import story
from lootlab.experiments import whatif
from lootlab.experiments import latency
from lootlab.experiments.rows import COLUMNS, Measurement, measure, pool
from lootlab.loadgen import hist

WORKLOAD = np.array([[0, 0, 0, 8]] * 16, dtype=np.int64)


class _Noop:
    def near(self, x: int, y: int, z: int, r: int) -> list:
        return []

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def result():
    return loadgen.run(_Noop, loadgen.constant(400, 0.5), warmup=0.0, workload=WORKLOAD,
                       label="noop")


@pytest.fixture()
def fake_run(result, monkeypatch):
    """``loadgen.run`` replaced: a copy of the real result, labelled as asked."""
    def run(target, schedule, **kw):
        res = copy.copy(result)
        res.variant = kw.get("label", "noop")
        return res
    monkeypatch.setattr(loadgen, "run", run)


def test_every_builder_gives_the_same_columns(result, fake_run):
    frames = {
        "measure": Measurement.to_frame([measure(result)]),
        "pool": Measurement.to_frame([pool([result, result])]),
        "story trials": story.run_steps(400, 0.5, variants={"a": _Noop}, trials=2).trials,
        "sweep": latency.sweep({"a": _Noop}, [200, 400], 0.5, workload=WORKLOAD,
                               p99_target_us=1e6),
        "max_sustainable": latency.max_sustainable(_Noop, 1e6, start_rate=200, max_rate=400,
                                                   duration=0.5, workload=WORKLOAD)[1]
        .drop(columns="attempt"),
        "rtt sweep": whatif.rtt_sweep(["mmap"], [0, 5], rate=400, duration=0.5),
        "cpu sweep": whatif.cpu_sweep(["mmap"], [None, 0.5], rate=400, duration=0.5),
    }
    want = list(Measurement.to_frame([measure(result)]).columns)
    assert want[:len(COLUMNS)] == list(COLUMNS)
    for name, frame in frames.items():
        assert list(frame.columns) == want, name
    # one set of names and units: latency in ms, rates per second, the variant as "variant"
    old = {"step", "rate", "achieved_rate", "p50_us", "p99_us", "p999_us", "p99_ci_low_us",
           "p99_ci_high_us", "p99_target_us"}
    assert not old & set(want)
    assert not [c for c in want if c.endswith("_us")]
    assert {"offered_per_s", "achieved_per_s", "capacity_per_s"} <= set(want)


def test_a_pooled_row_is_its_trials_pooled(result):
    """Against the histograms themselves: n and the percentiles of the merged histogram,
    requests and errors summed, the lowest and highest trial's p99 beside the pooled one."""
    other = loadgen.run(_Noop, loadgen.constant(200, 0.5, seed=1), warmup=0.0,
                        workload=WORKLOAD, label="noop")
    row = pool([result, other])
    merged = hist.merge([result.latency, other.latency])
    assert row.n == merged.get_total_count() == result.samples() + other.samples()
    assert row.p99_ms == pytest.approx(hist.percentiles(merged, [99])[0] / 1e6)
    assert row.p50_ms == pytest.approx(hist.percentiles(merged, [50])[0] / 1e6)
    assert row.requests == result.requests + other.requests and row.trials == 2
    p99s = sorted(r.latency_us(99) / 1e3 for r in (result, other))
    assert (row.p99_ms_lo, row.p99_ms_hi) == pytest.approx(p99s)
    assert row.achieved_per_s == min(result.achieved_rate, other.achieved_rate)
    assert row.valid == (result.health.valid and other.health.valid) and row.pooled


def test_one_trial_pooled_is_that_trial(result):
    one, pooled = measure(result, trial=3), pool([result], trial=3)
    for col in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "n", "requests",
                "p99_ci_low_ms", "p99_ci_high_ms", "p99_enough", "valid", "health"):
        a, b = one[col], pooled[col]
        assert a == pytest.approx(b) or (isinstance(a, float) and math.isnan(a)
                                         and math.isnan(b)), col
    assert one.trial == pooled.trial == 3 and not one.pooled


def test_a_row_reads_as_a_mapping_and_carries_its_context(result):
    row = story.step_row("mmap", result, trial=1)
    assert row["variant"] == row.variant == "mmap" and row["trial"] == 1
    assert row["writeup_p99_ms"] == 34.0 and row.get("change") == story.STEPS["mmap"]
    assert set(row) == set(COLUMNS) | {f"split_{p}_ms" for p in row.split_ms}
    moved = row.with_context(rtt_ms=5.0, measured_once=True)
    assert (moved.rtt_ms, moved.measured_once, row.measured_once) == (5.0, True, False)
