"""The one grid runner (``lootlab.experiments.grid``): trials interleaved across cells, each
cell's results grouped in trial order, per-cell options over the common ones.

The property test drives the grid with a fake ``loadgen.run`` that records what it was asked
and checks it against a brute-force oracle (two nested loops); one test runs the real
load generator on a no-op client at a small rate, so the default runner is checked too.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.errors import LootlabError
from lootlab.experiments.grid import Cell, run_grid


class _Recorder:
    """A fake ``loadgen.run``: each call returns what it was asked, in call order."""

    def __init__(self) -> None:
        self.calls: list[SimpleNamespace] = []

    def __call__(self, target, schedule, **options):
        got = SimpleNamespace(target=target, schedule=schedule, options=options,
                              variant=options["label"], call=len(self.calls))
        self.calls.append(got)
        return got


@settings(max_examples=60, deadline=None)
@given(rates=st.lists(st.sampled_from([5.0, 10.0, 20.0]), min_size=1, max_size=5),
       trials=st.integers(1, 4), seed=st.integers(0, 1000), data=st.data())
def test_trials_are_interleaved_and_grouped_per_cell(rates, trials, seed, data):
    n = len(rates)
    skipped = data.draw(st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, trials - 1)),
                                max_size=n * trials))
    cells = [Cell(f"c{i}", target=("factory", i), rate=r, title=f"cell {i}",
                  options={"concurrency": i + 1, "cpu_limit": None})
             for i, r in enumerate(rates)]
    fake, heard = _Recorder(), []
    grid = run_grid(cells, duration=1.0, trials=trials, seed=seed, runner=fake,
                    on_run=heard.append, skip=lambda c, t: (cells.index(c), t) in skipped,
                    warmup=0.0, concurrency=99)
    # the oracle: trial-major, cells in the order given, the skipped ones left out
    want = [(t, i) for t in range(trials) for i in range(n) if (i, t) not in skipped]
    assert grid.order == want
    assert heard == [f"cell {i}" for _, i in want]
    assert [(c.variant, c.target) for c in fake.calls] == [(f"c{i}", ("factory", i))
                                                           for _, i in want]
    for call, (t, i) in zip(fake.calls, want):
        assert call.schedule.seed == seed + t            # one seed per trial, every cell
        assert len(call.schedule) == round(rates[i])     # the cell's own rate, for 1 s
        assert call.options["concurrency"] == i + 1      # the cell's option wins
        assert "cpu_limit" not in call.options           # None: the run's default holds
    for i in range(n):                                   # grouped per cell, in trial order
        assert [r.call for r in grid.results[i]] == [k for k, (_, j) in enumerate(want)
                                                     if j == i]
    assert [r.call for r in grid.runs] == list(range(len(want)))


def test_a_grid_refuses_what_it_cannot_run():
    cell = Cell("a", object, rate=10.0)
    fake = _Recorder()
    with pytest.raises(LootlabError, match="trials must be at least 1"):
        run_grid([cell], duration=1.0, trials=0, runner=fake)
    with pytest.raises(LootlabError, match="rate must be a positive"):
        run_grid([Cell("a", object)], duration=1.0, runner=fake)
    with pytest.raises(LootlabError, match="duration must be a positive"):
        run_grid([cell], duration=0.0, runner=fake)
    with pytest.raises(LootlabError, match="'constant' or 'poisson'"):
        run_grid([cell], duration=1.0, schedule="ramp", runner=fake)
    assert fake.calls == []


def test_a_variant_name_is_run_as_its_client_factory():
    from lootlab import targets

    fake = _Recorder()
    run_grid([Cell("mmap", "mmap", rate=10.0)], duration=1.0, runner=fake)
    (call,) = fake.calls
    assert isinstance(call.target, targets.ClientFactory) and call.target.name == "mmap"


class _Noop:
    def near(self, x: int, y: int, z: int, r: int) -> list:
        return []

    def close(self) -> None:
        pass


def test_the_default_runner_is_the_load_generator():
    """Two no-op cells at 40/s, two trials each: real ``LoadResult``s carrying the cell's
    label, as many requests as the schedule, grouped per cell."""
    workload = np.array([[0, 0, 0, 8]] * 16, dtype=np.int64)
    cells = [Cell("a", _Noop, rate=40.0), Cell("b", _Noop, rate=40.0)]
    grid = run_grid(cells, duration=0.25, trials=2, warmup=0.0, workload=workload)
    assert [[r.variant for r in rs] for rs in grid.results] == [["a", "a"], ["b", "b"]]
    assert [r.variant for r in grid.runs] == ["a", "b", "a", "b"]
    assert all(r.requests == 10 for r in grid.runs)
    assert grid.pooled(0)["n"] == sum(r.samples() for r in grid.results[0])
