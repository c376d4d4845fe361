"""The decision page's measurements into a run directory and back (notebook 07).

Each experiment behind the page (freshness, memory per node, cold start, failure, CPU per
query, latency at one rate) returns a small dataclass of tables (``pandas.DataFrame``)
and a ``meta`` mapping.  ``store_run`` keeps every field of one under the experiment's name
("freshness: rows", "freshness: meta"), ``load_run`` gives them back as a ``Stored`` with
the same attribute names, so the page draws from the same objects whether it measured a
moment ago or replays a stored run (``lootlab report --from``).  Derived figures (a PBS
curve, a cost model, the decision table) are never stored: they are computed from the
stored rows when the page is drawn, so a new price or budget needs no new measurement.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from .rundir import Part, RunDirError

#: What a stored experiment's field names look like: "<experiment>: <field>".
SEP = ": "


class Stored:
    """One stored experiment: its tables and meta as attributes (``.rows``, ``.meta``...),
    the same names the measuring function's dataclass has."""

    def __init__(self, name: str, fields: dict[str, Any]):
        self.name = name
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        return f"<Stored {self.name}: {', '.join(self.fields)}>"


def store_run(part: Part, name: str, run: Any) -> None:
    """Every field of the dataclass ``run`` into ``part``: tables as rows, the rest (a
    meta mapping, numbers, texts) as data.  ``name`` must not contain ``SEP``."""
    if SEP in name:
        raise RunDirError(f"an experiment's name may not contain {SEP!r}: {name!r}")
    if not dataclasses.is_dataclass(run):
        raise RunDirError(f"{name}: expected an experiment's result (a dataclass), "
                          f"got {type(run).__name__}")
    for field in dataclasses.fields(run):
        value = getattr(run, field.name)
        key = f"{name}{SEP}{field.name}"
        if isinstance(value, pd.DataFrame):
            part.put_rows(key, value)
        else:
            part.put_data(key, value)


def store_runs(part: Part, name: str, runs: list[Any]) -> None:
    """Several runs of one experiment (e.g. freshness at several intervals) stored as one:
    each table field concatenated, each other field (a meta mapping) as the list of the
    runs' values."""
    if not runs:
        raise RunDirError(f"{name}: no runs to store")
    first = runs[0]
    joined: dict[str, Any] = {}
    for field in dataclasses.fields(first):
        values = [getattr(r, field.name) for r in runs]
        joined[field.name] = (pd.concat(values, ignore_index=True)
                              if isinstance(values[0], pd.DataFrame) else values)
    store_run(part, name, dataclasses.replace(first, **joined))


def stored_names(part: Part) -> list[str]:
    """The experiments stored in ``part`` (in the order first stored)."""
    names: list[str] = []
    for kind in ("rows", "data"):
        for key in part.names(kind):
            exp = key.split(SEP, 1)[0]
            if SEP in key and exp not in names:
                names.append(exp)
    return names


def load_run(part: Part, name: str) -> Stored:
    """What ``store_run`` kept under ``name``; a one-line ``RunDirError`` naming what the
    run holds when it has no such experiment."""
    fields: dict[str, Any] = {}
    prefix = f"{name}{SEP}"
    for key in part.names("rows"):
        if key.startswith(prefix):
            fields[key[len(prefix):]] = part.rows(key)
    for key in part.names("data"):
        if key.startswith(prefix):
            fields[key[len(prefix):]] = part.data(key)
    if not fields:
        held = ", ".join(map(repr, stored_names(part))) or "none"
        raise RunDirError(f"{part.path}: no experiment {name!r} stored (stored: {held}); "
                          "was it measured at this report size?")
    return Stored(name, fields)


def load_optional(part: Part, name: str) -> Stored | None:
    """``load_run``, or None when the run did not measure ``name`` (a page then says what is
    missing instead of failing)."""
    return load_run(part, name) if name in stored_names(part) else None


__all__ = ["SEP", "Stored", "load_optional", "load_run", "store_run", "store_runs",
           "stored_names"]
