"""Run directories: everything a page shows, captured once, drawn as often as wanted.

Measuring takes minutes; drawing takes seconds.  A run directory keeps what was measured in
formats other tools already read, so a run opens outside lootlab too::

    RUN/manifest.json              schema version, what ran, when, on what machine, the parts
    RUN/<part>/part.json           one part per notebook: its parameters and artifacts
    RUN/<part>/results/<name>/     LoadResults: summary.json + latency.hlog per trial
                                   (HdrHistogram interval log: HistogramLogAnalyzer reads it)
    RUN/<part>/rows/<name>.parquet tables of measurements (pandas, DuckDB, Arrow read them)
    RUN/<part>/stacks/<name>.*     CPU profiles: collapsed stacks (inferno, flamegraph.pl)
                                   and speedscope JSON (speedscope.app)
    RUN/<part>/data/<name>.json    anything else: scalars, texts, small dicts

A run of another schema version is refused with one line: what it holds may not mean what
this lootlab draws.  Writes are atomic (a temporary file renamed), so a run stopped midway
leaves every artifact it lists whole.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import LootlabError

SCHEMA = "lootlab-run"
VERSION = 2
MANIFEST = "manifest.json"
PART = "part.json"
KINDS = ("results", "rows", "stacks", "data")


class RunDirError(LootlabError):
    """Not a run directory, a run of another schema version, or an artifact it lacks."""


def slug(name: str) -> str:
    """A file name for an artifact's name: "one rate: mmap at 200/s" -> "one_rate_mmap_at_200_s"."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "artifact"


def _jsonable(value: Any) -> Any:
    """JSON for numpy scalars, paths, NaN (as null) and dataclass-like values."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "item"):           # numpy scalar
        return _jsonable(value.item())
    return str(value)


def write_json(path: Path, doc: Any) -> None:
    """``doc`` as JSON at ``path``, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_jsonable(doc), indent=1))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path}: missing") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def schema() -> str:
    return f"{SCHEMA}/{VERSION}"


@dataclass
class Part:
    """One notebook's share of a run: its parameters and named artifacts of four kinds.

    ``measuring`` is False when the part is replayed (``lootlab report --from``): the
    notebook then skips its measuring cells and draws from what is stored here."""

    path: Path
    name: str
    measuring: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})

    # ---- writing --------------------------------------------------------------------
    def _add(self, kind: str, name: str) -> Path:
        if not self.measuring:
            raise RunDirError(f"{self.path}: replaying a stored run; nothing is written to it")
        names = self.artifacts.setdefault(kind, [])
        if name not in names:
            names.append(name)
        self._save()
        return self.path / kind / slug(name)

    def _save(self) -> None:
        write_json(self.path / PART, {"schema": schema(), "name": self.name,
                                      "params": self.params, "artifacts": self.artifacts})

    def put_results(self, name: str, results: Any) -> None:
        """One LoadResult or a list of trials, each saved as summary.json + latency.hlog."""
        trials = list(results) if isinstance(results, (list, tuple)) else [results]
        where = self._add("results", name)
        if where.exists():
            shutil.rmtree(where)
        for i, res in enumerate(trials):
            res.save(where / f"trial-{i}")

    def put_rows(self, name: str, frame: Any) -> None:
        """A table (DataFrame, or a list of dicts) as Parquet."""
        frame = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(list(frame))
        where = self._add("rows", name).with_suffix(".parquet")
        where.parent.mkdir(parents=True, exist_ok=True)
        tmp = where.with_name(f".{where.name}.tmp")
        _for_parquet(frame).to_parquet(tmp, index=False)
        os.replace(tmp, where)

    def put_data(self, name: str, value: Any) -> None:
        """Anything JSON can hold (NaN is stored as null)."""
        write_json(self._add("data", name).with_suffix(".json"), value)

    def put_stacks(self, name: str, stacks: Mapping[tuple[str, ...], int], *,
                   meta: Mapping[str, Any] | None = None) -> None:
        """A CPU profile (stack of frames, root first -> samples) as collapsed stacks
        ("a;b;c 12" per line) and speedscope JSON, with ``meta`` (what was sampled, how)
        beside them."""
        from ..profiling.flame import to_collapsed, to_speedscope

        base = self._add("stacks", name)
        base.parent.mkdir(parents=True, exist_ok=True)
        _write_text(base.with_suffix(".collapsed"), to_collapsed(stacks))
        write_json(base.with_suffix(".speedscope.json"), to_speedscope(stacks, name))
        write_json(base.with_suffix(".json"), dict(meta or {}))

    # ---- reading --------------------------------------------------------------------
    def has(self, kind: str, name: str) -> bool:
        return name in self.artifacts.get(kind, [])

    def names(self, kind: str) -> list[str]:
        return list(self.artifacts.get(kind, []))

    def _find(self, kind: str, name: str) -> Path:
        if not self.has(kind, name):
            stored = ", ".join(repr(n) for n in self.names(kind)) or "none"
            raise RunDirError(f"{self.path}: no {kind} named {name!r} (stored: {stored}); "
                              "was it measured with another lootlab?")
        return self.path / kind / slug(name)

    def results(self, name: str) -> list[Any]:
        """The LoadResults stored under ``name``, trials in the order run."""
        from ..loadgen.results import LoadResult

        where = self._find("results", name)
        trials = sorted(where.glob("trial-*"), key=lambda p: int(p.name.split("-")[1]))
        return [LoadResult.load(p) for p in trials]

    def rows(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self._find("rows", name).with_suffix(".parquet"))

    def data(self, name: str) -> Any:
        return read_json(self._find("data", name).with_suffix(".json"))

    def stacks(self, name: str) -> tuple[dict[tuple[str, ...], int], dict[str, Any]]:
        """(collapsed stacks, their meta) of a stored profile."""
        from ..profiling.flame import parse_collapsed

        base = self._find("stacks", name)
        stacks = parse_collapsed(base.with_suffix(".collapsed").read_text())
        return dict(stacks), read_json(base.with_suffix(".json"))


def _for_parquet(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing types (a text and None, lists) stored as text, so Arrow accepts
    them; numbers and booleans keep their types."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            kinds = {type(v) for v in out[col] if v is not None and v == v}
            if kinds - {str} and not kinds <= {bool} and not kinds <= {int, float}:
                out[col] = [None if v is None else (v if isinstance(v, str) else json.dumps(
                    _jsonable(v))) for v in out[col]]
    out.columns = [str(c) for c in out.columns]
    return out


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class Run:
    """A run directory: its manifest and its parts."""

    path: Path
    manifest: dict[str, Any]

    @property
    def parts(self) -> list[str]:
        return list(self.manifest.get("parts", []))

    def part(self, name: str, *, measuring: bool = True,
             params: Mapping[str, Any] | None = None) -> Part:
        """The part ``name``: a fresh one to measure into (an older one of that name is
        replaced, so a stale artifact can never be drawn), or the stored one to replay."""
        where = self.path / slug(name)
        if not measuring:
            return load_part(where)
        if where.exists():
            shutil.rmtree(where)
        part = Part(where, name, True, dict(params or {}))
        part._save()
        self.manifest = read_json(self.path / MANIFEST)
        if name not in self.parts:
            self.note(parts=[*self.parts, name])
        return part

    def note(self, **fields: Any) -> None:
        """Add fields to the manifest (the environment, how long it took...).  Read again
        first: the notebooks, other processes, add their parts to it meanwhile."""
        self.manifest = {**read_json(self.path / MANIFEST), **fields}
        write_json(self.path / MANIFEST, self.manifest)


def create(path: str | Path, *, what: str, params: Mapping[str, Any] | None = None,
           env: Mapping[str, Any] | None = None, parts: Iterable[str] = ()) -> Run:
    """A new run directory at ``path`` (its manifest; parts are added as they measure).
    An earlier run there is replaced: its parts are removed."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: not a directory")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    manifest = {"schema": schema(), "what": what,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "params": dict(params or {}), "env": dict(env or {}), "parts": list(parts)}
    write_json(path / MANIFEST, manifest)
    return Run(path, manifest)


def _check_schema(doc: Any, where: Path) -> None:
    got = doc.get("schema") if isinstance(doc, dict) else None
    if got != schema():
        raise RunDirError(f"{where}: a run of schema {got!r}; this lootlab reads {schema()!r} "
                          "(measure it again with this lootlab)")


def open_run(path: str | Path) -> Run:
    """The run directory at ``path``; one-line errors for anything else."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path}: no such run directory")
    if not path.is_dir():
        raise RunDirError(f"{path}: not a directory (give a run directory holding {MANIFEST})")
    if not (path / MANIFEST).exists():
        if (path / "run" / MANIFEST).exists():      # a report's folder, not its run
            raise RunDirError(f"{path}: a report's folder, not a run directory: its run is "
                              f"{path / 'run'}")
        raise RunDirError(f"{path}: not a lootlab run directory (no {MANIFEST}; "
                          "`lootlab report` writes one under OUT/run)")
    manifest = read_json(path / MANIFEST)
    _check_schema(manifest, path / MANIFEST)
    # absolute: a replay hands it to notebooks that run in another directory
    return Run(path.resolve(), manifest)


def load_part(path: str | Path) -> Part:
    """A stored part, for replay: its artifacts are read, never written."""
    path = Path(path)
    doc = read_json(path / PART)
    _check_schema(doc, path / PART)
    artifacts = {k: list(doc.get("artifacts", {}).get(k, [])) for k in KINDS}
    return Part(path, str(doc.get("name", path.name)), False, dict(doc.get("params", {})),
                artifacts)


def open_part(run_dir: str | Path, name: str, *, replay: bool = False,
              params: Mapping[str, Any] | None = None, what: str = "") -> Part:
    """The part ``name`` of the run at ``run_dir`` (created when measuring into a
    directory that holds no run yet): what a notebook calls first."""
    path = Path(run_dir)
    if replay:
        return open_run(path).part(name, measuring=False)
    run = open_run(path) if (path / MANIFEST).exists() else create(
        path, what=what or f"notebook {name}")
    return run.part(name, params=params)
