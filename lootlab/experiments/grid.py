"""One grid runner: every experiment is cells x trials, run interleaved.

An experiment is a list of cells (a variant at a setting: a rate, a round-trip time, a CPU
limit) measured ``trials`` times.  The trials are interleaved, trial 1 of every cell, then
trial 2 of every cell..., so slow drift on the machine (another job starting, the CPU
warming) hits every cell alike instead of making the cells measured last look slower.
Each (trial, cell) is one ``loadgen.run``, with the same schedule seed for every cell of a
trial (``seed + trial``), so cells differ only by what they are meant to differ by.

The runner returns the results grouped per cell (its trials in order) and in the order run;
``experiments.rows`` turns them into rows, ``loadgen.pooling`` pools a cell's trials.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import LootlabError

#: The schedules a grid offers each cell (open loop, one rate for the whole run).
SCHEDULES = ("constant", "poisson")


@dataclass(frozen=True)
class Cell:
    """One setting of the experiment: what ``loadgen.run`` drives and how.

    ``label``: the name its results carry (``LoadResult.variant``); ``target``: a
    zero-argument client factory, or a variant name (``lootlab.targets.client_factory``
    makes its factory when the cell runs); ``rate`` and ``schedule``: this cell's offered
    rate and schedule kind (None: the grid's); ``options``: this cell's ``loadgen.run``
    keywords (``network``, ``cpu_limit``, ``concurrency``...; a None value is left out, so
    the run's default holds); ``title``: what progress shows ("mmap (RTT 5 ms)", default
    the label); ``key``: what the caller tells its cells apart by (a rate, an RTT...)."""

    label: str
    target: Any
    rate: float | None = None
    schedule: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    title: str = ""
    key: Any = None


@dataclass
class GridRun:
    """What a grid measured: per cell (in the order given) its trials' results, and the
    (trial, cell index) of every run in the order run."""

    cells: list[Cell]
    results: list[list[Any]]
    order: list[tuple[int, int]] = field(default_factory=list)

    @property
    def runs(self) -> list[Any]:
        """Every result in the order run (trial 1 of every cell, then trial 2...)."""
        seen = [0] * len(self.cells)
        out = []
        for _, i in self.order:
            out.append(self.results[i][seen[i]])
            seen[i] += 1
        return out

    def pooled(self, index: int) -> dict[str, Any]:
        """Cell ``index``'s trials pooled into one histogram (``loadgen.pooling.pooled``)."""
        from ..loadgen.pooling import pooled
        return pooled(self.results[index])


def schedule_of(kind: str, rate: float, duration: float, seed: int) -> Any:
    """The open-loop schedule a cell runs: ``kind`` at ``rate`` for ``duration`` seconds."""
    from ..loadgen import schedules

    if kind == "constant":
        return schedules.constant(rate, duration, seed)
    if kind == "poisson":
        return schedules.poisson(rate, duration, seed)
    raise LootlabError(f"a grid runs {' or '.join(map(repr, SCHEDULES))} schedules, "
                       f"not {kind!r}")


def factory_of(target: Any) -> Any:
    """What ``loadgen.run`` drives: a variant name becomes its client factory
    (``lootlab.targets.client_factory``); a factory stays as it is."""
    if isinstance(target, str):
        from ..targets import client_factory
        return client_factory(target)
    return target


def _check(cells: Sequence[Cell], trials: int, duration: float, rate: float | None) -> None:
    if trials < 1:
        raise LootlabError(f"trials must be at least 1, not {trials!r}")
    if not duration > 0:
        raise LootlabError(f"duration must be a positive number of seconds, not {duration!r}")
    for cell in cells:
        r = cell.rate if cell.rate is not None else rate
        if r is None or not (math.isfinite(r) and r > 0):
            raise LootlabError(f"{cell.title or cell.label}: the rate must be a positive "
                               f"number of requests/s, not {r!r}")


def run_grid(cells: Sequence[Cell], *, duration: float, trials: int = 1,
             rate: float | None = None, schedule: str = "constant", seed: int = 0,
             on_run: Callable[[str], None] | None = None,
             skip: Callable[[Cell, int], bool] | None = None,
             after: Callable[[Cell, int, Any], None] | None = None,
             runner: Callable[..., Any] | None = None, **run_options: Any) -> GridRun:
    """Run every cell ``trials`` times, interleaved, one ``loadgen.run`` per (trial, cell).

    ``run_options`` go to every run, a cell's ``options`` over them.  ``on_run`` hears the
    cell's title before each run (a progress bar's ``start``); ``skip(cell, trial)`` True
    leaves that run out (a sweep that stops a variant after a miss); ``after(cell, trial,
    result)`` sees each result as it comes.  ``runner`` replaces ``loadgen.run`` (a test's
    fake; by default the one ``lootlab.loadgen`` holds when the grid runs)."""
    _check(cells, trials, duration, rate)
    if runner is None:
        from .. import loadgen
        runner = loadgen.run
    out = GridRun(list(cells), [[] for _ in cells])
    for trial in range(trials):
        for i, cell in enumerate(out.cells):
            if skip is not None and skip(cell, trial):
                continue
            if on_run is not None:
                on_run(cell.title or cell.label)
            sched = schedule_of(cell.schedule or schedule,
                                float(cell.rate if cell.rate is not None else rate),
                                duration, seed + trial)
            options = {**run_options, **cell.options}
            res = runner(factory_of(cell.target), sched, label=cell.label,
                         **{k: v for k, v in options.items() if v is not None})
            out.results[i].append(res)
            out.order.append((trial, i))
            if after is not None:
                after(cell, trial, res)
    return out


__all__ = ["Cell", "GridRun", "SCHEDULES", "factory_of", "run_grid", "schedule_of"]
