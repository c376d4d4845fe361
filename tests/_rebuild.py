"""Helpers for the rebuild, swap and fault tests: generation tables with a brute-force
oracle, and the child processes the fault tests run (``python tests/_rebuild.py MODE ...``).

A "generation table" ``gen_table(base, g)`` is a deterministic subset of a small world
whose ``tick`` column is ``g``: any answer a reader gets names the table it came from
(its ticks), and can be checked against a brute-force scan of exactly that table.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import lootlab  # noqa: E402
from lootlab.records import FIELDS  # noqa: E402

PYTHON = sys.executable
SCRIPT = str(Path(__file__).resolve())


def small_world(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    return lootlab.generate_world(n, seed=seed)


def gen_table(base: pd.DataFrame, g: int, keep: float = 0.8) -> pd.DataFrame:
    """Generation ``g``: a seeded ~80 % subset of ``base`` with tick = g."""
    mask = np.random.default_rng([g, 77]).random(len(base)) < keep
    out = base[mask].reset_index(drop=True).copy()
    out["tick"] = g
    return out


def canon(rows: pd.DataFrame | np.ndarray) -> list[tuple]:
    """Rows as a sorted list of FIELDS tuples (order-free comparison)."""
    if isinstance(rows, pd.DataFrame):
        arr = rows[FIELDS].to_numpy(np.int64)
    else:
        arr = np.stack([np.asarray(rows[f], np.int64) for f in FIELDS], axis=1) if len(rows) \
            else np.zeros((0, len(FIELDS)), np.int64)
    return sorted(map(tuple, arr.tolist()))


def brute_near(table: pd.DataFrame, x: int, y: int, z: int, r: int) -> pd.DataFrame:
    d2 = ((table["x"].to_numpy(np.int64) - x) ** 2 + (table["y"].to_numpy(np.int64) - y) ** 2
          + (table["z"].to_numpy(np.int64) - z) ** 2)
    return table[d2 <= r * r]


def index_rows(path: Path) -> pd.DataFrame:
    """Every record of the index at ``path`` (via a box over the whole packable range)."""
    with lootlab.open_index(path, verify=True, refresh_interval=None) as idx:
        return idx.box((-(1 << 25), -2048, -(1 << 25)), ((1 << 25) - 1, 2047, (1 << 25) - 1)).to_pandas()


class Checker:
    """Runs overlay-like queries against an index and checks every answer against the
    brute-force answer of the one generation its ticks name.  Thread-safe per instance."""

    def __init__(self, index_path: Path, base: pd.DataFrame, seed: int, radius: int = 40):
        self.index = lootlab.open_index(index_path, refresh_interval=0.005)
        self.base = base
        self.rng = np.random.default_rng(seed)
        self.radius = radius
        self.tables: dict[int, pd.DataFrame] = {}
        self.rowmaps: dict[int, dict[tuple, tuple]] = {}
        self.queries = self.mismatches = self.mixed = self.backwards = self.empty = 0
        self.batches = 0
        self.errors: list[str] = []
        self.last_tick = 0
        self.last_generation = 0
        self.ticks_seen: set[int] = set()

    def table(self, g: int) -> pd.DataFrame:
        if g not in self.tables:
            self.tables[g] = gen_table(self.base, g)
            self.rowmaps[g] = {r[:3]: r for r in canon(self.tables[g])}
        return self.tables[g]

    def _saw(self, g: int) -> None:
        if g < self.last_tick:
            self.backwards += 1
        self.last_tick = max(self.last_tick, g)
        self.ticks_seen.add(g)

    def step(self) -> None:
        try:
            gen = self.index.generation
            if gen < self.last_generation:
                self.backwards += 1
            self.last_generation = max(gen, self.last_generation)
            row = self.base.iloc[int(self.rng.integers(len(self.base)))]
            x, y, z = int(row.x), int(row.y), int(row.z)
            res = self.index.near(x, y, z, self.radius)
            self.queries += 1
            ticks = np.unique(res["tick"])
            if len(ticks) > 1:
                self.mixed += 1
            elif len(ticks) == 1:
                g = int(ticks[0])
                self._saw(g)
                if canon(res) != canon(brute_near(self.table(g), x, y, z, self.radius)):
                    self.mismatches += 1
            else:
                self.empty += 1
            # a batch: get_many over 64 base positions must come from one generation
            pts = self.base[["x", "y", "z"]].to_numpy(np.int64)[self.rng.integers(len(self.base), size=64)]
            found, recs = self.index.get_many(pts)
            self.batches += 1
            ticks = np.unique(recs["tick"][found])
            if len(ticks) > 1:
                self.mixed += 1
            elif len(ticks) == 1:
                g = int(ticks[0])
                self._saw(g)
                self.table(g)
                rows = self.rowmaps[g]
                expected = [rows.get(tuple(p)) for p in pts.tolist()]
                if not np.array_equal(found, [e is not None for e in expected]) or \
                        canon(recs[found]) != sorted(e for e in expected if e is not None):
                    self.mismatches += 1
        except Exception as exc:  # any error is a failure of the test, reported by count
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def summary(self) -> dict:
        return {"queries": self.queries, "batches": self.batches, "mismatches": self.mismatches,
                "mixed": self.mixed, "backwards": self.backwards, "empty": self.empty,
                "errors": self.errors[:5], "n_errors": len(self.errors),
                "ticks_seen": len(self.ticks_seen), "last_generation": self.last_generation}


# -- child process modes -------------------------------------------------------------------

def _reader(index: str, n: int, seed: int, stop_file: str, deadline: float) -> None:
    """Query in a tight loop until ``stop_file`` exists; print a JSON summary."""
    checker = Checker(Path(index), small_world(n), seed)
    print("ready", flush=True)
    end = time.monotonic() + deadline
    while not os.path.exists(stop_file) and time.monotonic() < end:
        checker.step()
    print(json.dumps(checker.summary()), flush=True)


def _churn_worker(directory: str) -> None:
    """A rebuild worker that builds back to back (an update each cycle) until killed."""
    from lootlab.rebuild import Rebuilder

    d = Path(directory)
    worker = Rebuilder(d / "src.parquet", d / "loot.idx", interval=0)
    print("ready " + json.dumps(sorted(p.name for p in worker.removed_temp_files)), flush=True)
    base = pd.read_parquet(d / "src.parquet")
    rng = np.random.default_rng(os.getpid())
    i = 0
    while True:
        i += 1
        rows = base.iloc[rng.integers(len(base), size=50)].copy()
        rows["value"] = i
        worker.apply(rows)
        result = worker.run_once()
        if result.outcome == "failed":
            print("failed " + str(result.error), flush=True)


def _hang_in_fsync(directory: str) -> None:
    """Build once, but stop dead in the first fsync of the temp file (parent SIGKILLs us)."""
    from lootlab.rebuild import Rebuilder

    d = Path(directory)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(".loot.idx.tmp-"):
            real_fsync(fd)
            print("in-fsync", flush=True)
            time.sleep(600)
        real_fsync(fd)

    os.fsync = fsync
    worker = Rebuilder(d / "src.parquet", d / "loot.idx", interval=0)
    worker.apply([{"x": 1, "y": 1, "z": 1, "item_id": 1, "value": 1, "quantity": 1,
                   "rarity": 1, "flags": 0, "tick": 1}])
    worker.run_once()


def _one_cycle(directory: str, fsize_limit: str) -> None:
    """One cycle from src.parquet, optionally under RLIMIT_FSIZE; print the result as JSON."""
    import resource

    from lootlab.rebuild import Rebuilder

    d = Path(directory)
    if int(fsize_limit) > 0:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(fsize_limit), int(fsize_limit)))
    result = Rebuilder(d / "src.parquet", d / "loot.idx", interval=0).run_once()
    print(json.dumps({"outcome": result.outcome, "error": result.error,
                      "generation": result.generation}), flush=True)


def _sigbus(index: str) -> None:
    """Map the index, say so, then read every page forever (the parent truncates the file)."""
    idx = lootlab.open_index(index, refresh_interval=None)
    snap = idx._current()
    print("mapped", flush=True)
    view = np.frombuffer(snap.mm, np.uint8)
    while True:
        int(view[::4096].sum())   # touches one byte of every page
        time.sleep(0.001)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "reader":
        _reader(args[0], int(args[1]), int(args[2]), args[3], float(args[4]))
    elif mode == "churn-worker":
        _churn_worker(args[0])
    elif mode == "hang-in-fsync":
        _hang_in_fsync(args[0])
    elif mode == "one-cycle":
        _one_cycle(args[0], args[1])
    elif mode == "sigbus":
        _sigbus(args[0])
    else:
        raise SystemExit(f"unknown mode {mode}")


# -- fixtures shared by the test modules (import them by name) -----------------------------
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def loopback_s3():
    """A real moto S3 server on 127.0.0.1 for the module; faults reset after each use."""
    from lootlab.s3local import LoopbackS3

    with LoopbackS3() as s3:
        yield s3


@pytest.fixture
def s3(loopback_s3):
    loopback_s3.fault = None
    yield loopback_s3
    loopback_s3.fault = None
