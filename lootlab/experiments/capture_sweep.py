"""The latency-against-rate page's measurements into a run directory and back (notebook 02).

Notebook 02 measures into its part of a run (``lootlab.experiments.rundir.Part``) with the
``store_*`` functions and draws only from what the ``load_*`` functions read back, in a
measuring run and in a replay alike, so both draw the same page.  What is derived from the
rows (the sustainable rate, the median of each point's trials) is not stored: it is computed
from the stored rows when the page is drawn.

Names are stable, because ``lootlab compare`` pairs two runs' results by name: a set of
runs at offered rates ("one rate", "sweep") keeps its rows under its own name and its
``LoadResult``s one name per variant and rate ("sweep: mmap at 800/s"), that cell's trials
in the order run; the spike is "spike: <variant>".  The facts a sentence names (which
server answered) go through ``capture_latency.store_setup`` as on the other latency pages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from .rundir import Part, RunDirError

if TYPE_CHECKING:
    from ..loadgen.results import LoadResult

ONE_RATE = "one rate"
SWEEP = "sweep"
SPIKE_PREFIX = "spike: "


@dataclass
class StoredRates:
    """Runs at offered rates as stored: the rows (one per trial, variant and rate, in
    ``experiments.rows`` columns, in the order run) and the ``LoadResult`` behind each row,
    ``results[i]`` being the run of ``rows.iloc[i]``."""

    rows: pd.DataFrame
    results: list[LoadResult] = field(default_factory=list, repr=False)


def rate_name(kind: str, variant: str, rate: float) -> str:
    """"sweep: mmap at 800/s": the name of one variant's runs at one rate."""
    return f"{kind}: {variant} at {float(rate):g}/s"


def by_rate(kind: str, results: Iterable[Any]) -> dict[str, list[Any]]:
    """``results`` named per variant and offered rate (``rate_name``), the repeats of a
    name being its trials in the order run: one name per cell, as ``lootlab compare``
    pairs them across runs."""
    named: dict[str, list[Any]] = {}
    for res in results:
        named.setdefault(rate_name(kind, res.variant, res.offered_rate), []).append(res)
    return named


def store_rates(part: Part, kind: str, rows: pd.DataFrame, results: Iterable[Any]) -> None:
    """Runs at offered rates (``experiments.latency.sweep``'s rows and the ``LoadResult``s
    it collected, one per row in the same order) into ``part``: the rows under ``kind``
    ("one rate", "sweep"), the results one name per variant and rate (``by_rate``)."""
    results = list(results)
    if len(results) != len(rows):
        raise RunDirError(f"{kind}: {len(rows)} rows but {len(results)} results; a sweep "
                          "gives one result per row (pass its results= list)")
    part.put_rows(kind, rows)
    for name, trials in by_rate(kind, results).items():
        part.put_results(name, trials)


def load_rates(part: Part, kind: str) -> StoredRates:
    """What ``store_rates`` kept for ``kind``, the results put back in the order run (the
    rows' order: a name's k-th row is its k-th stored trial).  A one-line ``RunDirError``
    when the run holds no such rows or a row's results are missing."""
    rows = part.rows(kind)
    stored: dict[str, list[Any]] = {}
    taken: dict[str, int] = {}
    results = []
    for variant, rate in zip(rows["variant"], rows["offered_per_s"]):
        name = rate_name(kind, variant, rate)
        if name not in stored:
            stored[name] = part.results(name)
        k = taken.get(name, 0)
        if k >= len(stored[name]):
            raise RunDirError(f"{part.path}: {kind!r} has more rows for {name!r} than its "
                              f"{len(stored[name])} stored trials")
        results.append(stored[name][k])
        taken[name] = k + 1
    return StoredRates(rows=rows, results=results)


def store_spike(part: Part, result: Any) -> None:
    """The spike's one ``LoadResult`` (its per-second histograms draw the timeline) under
    "spike: <variant>"."""
    part.put_results(SPIKE_PREFIX + result.variant, result)


def load_spike(part: Part) -> LoadResult:
    """The spike ``store_spike`` kept (a one-line ``RunDirError`` unless there is exactly
    one: a page drawing one of several would draw a guess)."""
    names = [n for n in part.names("results") if n.startswith(SPIKE_PREFIX)]
    if len(names) != 1:
        raise RunDirError(f"{part.path}: {len(names)} spike runs stored "
                          f"({', '.join(map(repr, names)) or 'none'}); the page draws one")
    (spike,) = part.results(names[0])
    return spike


__all__ = ["ONE_RATE", "SPIKE_PREFIX", "SWEEP", "StoredRates", "by_rate", "load_rates",
           "load_spike", "rate_name", "store_rates", "store_spike"]
