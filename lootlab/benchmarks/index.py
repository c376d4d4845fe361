"""Benchmark of the core index against in-memory and on-disk alternatives, in one run.

    python -m lootlab.benchmarks.index [--records 350000] [--queries 5000]

Prints one table: ``near`` p50/p99 (r = 64 around overlay positions) for LootIndex,
``scipy.spatial.cKDTree`` (built in memory; indices only, and with the records gathered)
and an SQLite R*Tree on a file; ``get`` median; ``get_many`` throughput; open time of
the default-size index and of one 10x larger; build times.  Queries run in
interleaved blocks (the same 250 positions for LootIndex, cKDTree and SQLite in rotating
order), so machine noise hits all alike while each pays for its own garbage collection.
"""

from __future__ import annotations

import platform
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ..build import build_index
from ..cli._util import handle_errors
from ..index import open_index
from ..overlay import overlay_queries
from ..world import generate_world


@dataclass
class Row:
    measure: str
    subject: str
    value: float
    unit: str
    target: str = ""
    met: str = ""


def _pct(samples: list[int], p: float) -> float:
    return float(np.percentile(np.asarray(samples) / 1e3, p))


def _sqlite_rtree(df: pd.DataFrame, path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    con.execute("CREATE VIRTUAL TABLE loot_rtree USING rtree_i32(id, x0, x1, y0, y1, z0, z1)")
    con.execute("CREATE TABLE loot(id INTEGER PRIMARY KEY, x, y, z, item_id, value, quantity, "
                "rarity, flags, tick)")
    rows = df.reset_index(drop=True)
    con.executemany("INSERT INTO loot_rtree VALUES (?,?,?,?,?,?,?)",
                    ((i, x, x, y, y, z, z) for i, x, y, z in
                     zip(range(len(rows)), rows.x.tolist(), rows.y.tolist(), rows.z.tolist())))
    con.executemany("INSERT INTO loot VALUES (?,?,?,?,?,?,?,?,?,?)",
                    ((i, *r) for i, r in enumerate(rows.itertuples(index=False, name=None))))
    con.commit()
    return con


_SQL_NEAR = ("SELECT l.* FROM loot_rtree r JOIN loot l ON l.id = r.id WHERE r.x0 >= ? AND "
             "r.x1 <= ? AND r.y0 >= ? AND r.y1 <= ? AND r.z0 >= ? AND r.z1 <= ? AND "
             "(l.x-?)*(l.x-?)+(l.y-?)*(l.y-?)+(l.z-?)*(l.z-?) <= ?")


def run(records: int = 350_000, queries: int = 5_000, seed: int = 0) -> pd.DataFrame:
    from scipy.spatial import cKDTree

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="lootlab-bench-") as tmp:
        tmp_path = Path(tmp)
        world = generate_world(records, seed)
        t = time.perf_counter()
        rep = build_index(world, tmp_path / "loot.idx")
        build_s = time.perf_counter() - t
        rows.append(Row("build", f"LootIndex ({records:,} records, {rep.bytes / 2**20:.1f} MiB)",
                        build_s * 1e3, "ms", "<= 1000 ms", "yes" if build_s <= 1 else "NO"))

        pts = world[["x", "y", "z"]].to_numpy(np.float64)
        t = time.perf_counter()
        tree = cKDTree(pts)
        rows.append(Row("build", "cKDTree (in memory, every start)",
                        (time.perf_counter() - t) * 1e3, "ms"))
        table = np.asarray(world.to_records(index=False))
        con = _sqlite_rtree(world, tmp_path / "loot.sqlite")

        idx = open_index(tmp_path / "loot.idx")
        qs = overlay_queries(idx, queries, seed=seed).tolist()
        lo_s, kd_s, kdr_s, sq_s = [], [], [], []
        clock = time.perf_counter_ns

        def loot(x: int, y: int, z: int, r: int) -> None:
            t0 = clock(); idx.near(x, y, z, r); lo_s.append(clock() - t0)

        def kdtree(x: int, y: int, z: int, r: int) -> None:
            t0 = clock(); hits = tree.query_ball_point((x, y, z), r); t1 = clock()
            table[np.asarray(hits, dtype=np.intp)]; t2 = clock()
            kd_s.append(t1 - t0); kdr_s.append(t2 - t0)

        def rtree(x: int, y: int, z: int, r: int) -> None:
            t0 = clock()
            con.execute(_SQL_NEAR, (x - r, x + r, y - r, y + r, z - r, z + r,
                                    x, x, y, y, z, z, r * r)).fetchall()
            sq_s.append(clock() - t0)

        for x, y, z, r in qs[:200]:                         # warm-up, discarded
            idx.near(x, y, z, r), tree.query_ball_point((x, y, z), r)
        subjects = [loot, kdtree, rtree]
        # Blocks of the same 250 queries for each subject in rotating order: machine noise
        # falls on all alike, while each subject pays for its own garbage (GC) and caches.
        for b, start in enumerate(range(0, len(qs), 250)):
            for k in range(3):
                run_one = subjects[(b + k) % 3]
                for q in qs[start:start + 250]:
                    run_one(*q)
        kd99 = _pct(kd_s, 99)
        for name, s in [("LootIndex.near (mmap)", lo_s), ("cKDTree.query_ball_point", kd_s),
                        ("cKDTree + gather records", kdr_s), ("SQLite R*Tree (file)", sq_s)]:
            rows.append(Row("near p50", name, _pct(s, 50), "µs"))
            met = ("yes" if _pct(s, 99) <= kd99 else "NO") if name.startswith("Loot") else ""
            rows.append(Row("near p99", name, _pct(s, 99), "µs",
                            "<= cKDTree p99" if met else "", met))

        sample = idx.sample(20_000, seed=seed + 1)
        pos = list(zip(sample["x"].tolist(), sample["y"].tolist(), sample["z"].tolist()))
        get = idx.get
        times = []
        for x, y, z in pos:
            t0 = clock(); get(x, y, z); times.append(clock() - t0)
        # the clock's own cost is not the index's: subtract the median empty interval
        empty = [(-clock() + clock()) for _ in range(20_000)]
        get_med = (np.median(times) - np.median(empty)) / 1e3
        rows.append(Row("get median", "LootIndex.get", get_med, "µs", "<= 2 µs",
                        "yes" if get_med <= 2 else "NO"))

        keys = np.stack([idx.sample(1_000_000, seed=7)[a] for a in "xyz"], axis=1)
        keys[::2, 1] += 1                                   # half of them miss
        idx.get_many(keys[:1000])
        t = time.perf_counter()
        found, _ = idx.get_many(keys)
        rate = len(keys) / (time.perf_counter() - t)
        rows.append(Row("get_many", f"LootIndex.get_many (1 M keys, {found.mean():.0%} hits)",
                        rate / 1e6, "M keys/s", ">= 5 M keys/s", "yes" if rate >= 5e6 else "NO"))

        big_world = generate_world(records * 10, seed + 1)
        big = build_index(big_world, tmp_path / "big.idx")
        del big_world
        for label, path, size in [("default", tmp_path / "loot.idx", rep.bytes),
                                  ("10x", tmp_path / "big.idx", big.bytes)]:
            opens = []
            for _ in range(50):
                t0 = clock(); open_index(path).close(); opens.append(clock() - t0)
            med = np.median(opens) / 1e3
            rows.append(Row("open median", f"open_index {label} ({size / 2**20:.0f} MiB)", med,
                            "µs", "<= 1000 µs", "yes" if med <= 1000 else "NO"))
        con.close()
    return pd.DataFrame([r.__dict__ for r in rows])


@click.command(cls=handle_errors("python -m lootlab.benchmarks.index"),
               help=__doc__.splitlines()[0])
@click.option("--records", type=int, default=350_000)
@click.option("--queries", type=int, default=5_000)
@click.option("--seed", type=int, default=0)
def main(records: int, queries: int, seed: int) -> None:
    df = run(records, queries, seed)
    print(f"# lootlab index benchmark — {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, numpy {np.__version__}")
    with pd.option_context("display.float_format", "{:,.2f}".format, "display.width", 160):
        print(df.to_string(index=False))


if __name__ == "__main__":
    main(prog_name="python -m lootlab.benchmarks.index")
