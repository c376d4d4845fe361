"""Benchmark of the core index against in-memory and on-disk peers, in one run.

    python -m lootlab.benchmarks.index_peers [--records 350000] [--queries 5000] [--keys 1000000]

Prints one table, every ratio measured in the same run: ``near`` (r = 64 around overlay
positions) and ``box`` (the cube of half-side 64) p50 / p99 for LootIndex,
``scipy.spatial.cKDTree`` (built in memory; indices only, and with the records gathered as
raw 32-byte rows) and an SQLite R*Tree on a file; ``get`` beside a dict and LMDB;
``get_many`` beside numpy and the machine's memory-latency limit (see index_lookups.py);
open time of the default-size index and of one 10x larger; build times.  Spatial queries
run in interleaved blocks (the same 250 positions for every subject in rotating order), so
machine noise hits all alike while each pays for its own garbage collection.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ..build import build_index
from ..console import handle_errors
from ..index import kernels_available, open_index
from ..overlay import overlay_queries
from ..records import FIELDS, RESULT_DTYPE
from ..world import generate_world
from .index_lookups import Row, measure_get, measure_get_many, verdict

BLOCK = 250
WIDTH = 110


@dataclass
class IndexBench:
    """What one run measured: the rows, and how (for the table's header and notes)."""

    rows: list[Row]
    setup: dict[str, str]
    notes: list[str] = field(default_factory=list)


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


def _spatial(world: pd.DataFrame, idx, con, qs: list, warmup: int) -> list[Row]:
    """near and box p50/p99 of LootIndex and its peers, interleaved blocks."""
    from scipy.spatial import cKDTree

    tree = cKDTree(world[["x", "y", "z"]].to_numpy(np.float64))
    table = np.zeros(len(world), RESULT_DTYPE)
    for name in FIELDS:
        table[name] = world[name].to_numpy()
    rows32 = table.view(np.dtype("V32"))          # gather raw rows: one memcpy each
    clock = time.perf_counter_ns
    s: dict[str, list[int]] = {k: [] for k in ("ln", "kn", "knr", "sq", "lb", "kb", "kbr")}

    def loot(x: int, y: int, z: int, r: int) -> None:
        t0 = clock(); idx.near(x, y, z, r); s["ln"].append(clock() - t0)
        t0 = clock(); idx.box((x - r, y - r, z - r), (x + r, y + r, z + r))
        s["lb"].append(clock() - t0)

    def kdtree(x: int, y: int, z: int, r: int) -> None:
        for p, a, b in ((2.0, "kn", "knr"), (np.inf, "kb", "kbr")):
            t0 = clock(); hits = tree.query_ball_point((x, y, z), r, p=p); t1 = clock()
            rows32.take(np.asarray(hits, dtype=np.intp)).view(RESULT_DTYPE); t2 = clock()
            s[a].append(t1 - t0); s[b].append(t2 - t0)

    def rtree(x: int, y: int, z: int, r: int) -> None:
        t0 = clock()
        con.execute(_SQL_NEAR, (x - r, x + r, y - r, y + r, z - r, z + r,
                                x, x, y, y, z, z, r * r)).fetchall()
        s["sq"].append(clock() - t0)

    for q in qs[:warmup]:                                  # warm-up, discarded
        loot(*q), kdtree(*q)
    s = {k: [] for k in s}
    subjects = [loot, kdtree, rtree]
    for b, start in enumerate(range(0, len(qs), BLOCK)):
        for k in range(3):
            run_one = subjects[(b + k) % 3]
            for q in qs[start:start + BLOCK]:
                run_one(*q)
    pct = {k: (float(np.percentile(v, 50)) / 1e3, float(np.percentile(v, 99)) / 1e3)
           for k, v in s.items()}
    kernel = "C kernel" if kernels_available() else "numpy"
    rows = []
    for measure, names in (("near p50/99", [("ln", f"LootIndex.near ({kernel})"),
                                            ("kn", "cKDTree.query_ball_point, indices only"),
                                            ("knr", "cKDTree + records (take of V32 rows)"),
                                            ("sq", "SQLite R*Tree (file), rows")]),
                           ("box p50/99", [("lb", f"LootIndex.box ({kernel})"),
                                           ("kb", "cKDTree ball p=inf, indices only"),
                                           ("kbr", "cKDTree p=inf + take of V32 rows")])):
        ours = pct[names[0][0]][1]
        for key, subject in names:
            p50, p99 = pct[key]
            rows.append(Row(measure, subject, p99, "µs", lead=p99 / ours,
                            text=f"{_num(p50)} / {_num(p99)} µs"))
        peer = pct[names[1][0]][1]
        rows[-len(names)].target = "p99 <= cKDTree's"
        rows[-len(names)].met = verdict(ours <= peer)
    return rows


def run(records: int = 350_000, queries: int = 5_000, seed: int = 0, *, keys: int = 1_000_000,
        get_rounds: int = 30, repeats: int = 5, big_factor: int = 10) -> IndexBench:
    """Measure everything in one run; ``big_factor=0`` skips the larger index's open time."""
    load_before = os.getloadavg()
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lootlab-bench-") as tmp:
        tmp_path = Path(tmp)
        world = generate_world(records, seed)
        t = time.perf_counter()
        rep = build_index(world, tmp_path / "loot.idx")
        build_s = time.perf_counter() - t
        rows.append(Row("build", f"LootIndex ({records:,} records, {rep.bytes / 2**20:.1f} MiB)",
                        build_s * 1e3, "ms", target="<= 1000 ms", met=verdict(build_s <= 1)))
        from scipy.spatial import cKDTree
        t = time.perf_counter()
        cKDTree(world[["x", "y", "z"]].to_numpy(np.float64))
        rows.append(Row("build", "cKDTree (in memory, at every start)",
                        (time.perf_counter() - t) * 1e3, "ms"))
        con = _sqlite_rtree(world, tmp_path / "loot.sqlite")
        idx = open_index(tmp_path / "loot.idx")
        qs = overlay_queries(idx, queries, seed=seed).tolist()
        rows += _spatial(world, idx, con, qs, warmup=min(200, len(qs)))
        con.close()
        get_rows, get_notes = measure_get(idx, tmp_path, rounds=get_rounds, seed=seed + 1)
        rows += get_rows
        notes += get_notes
        rows += measure_get_many(idx, tmp_path / "loot.idx", n=keys, repeats=repeats)
        sizes = [("default", tmp_path / "loot.idx", rep.bytes)]
        if big_factor:
            big_world = generate_world(records * big_factor, seed + 1)
            big = build_index(big_world, tmp_path / "big.idx")
            del big_world
            sizes.append((f"{big_factor}x", tmp_path / "big.idx", big.bytes))
        for label, path, size in sizes:
            opens = []
            for _ in range(50):
                t0 = time.perf_counter_ns(); open_index(path).close()
                opens.append(time.perf_counter_ns() - t0)
            med = float(np.median(opens)) / 1e3
            rows.append(Row("open median", f"open_index {label} ({size / 2**20:.0f} MiB)", med,
                            "µs", target="<= 1000 µs", met=verdict(med <= 1000)))
        idx.close()
    load_after = os.getloadavg()
    setup = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(), "numpy": np.__version__,
        "records": f"{records:,}", "load": f"{load_before[0]:.2f} before, {load_after[0]:.2f} "
                                          f"after (1-min load average)",
        "how": (f"near/box: {len(qs):,} overlay queries, blocks of {BLOCK} interleaved across "
                f"subjects, percentiles of single calls; get: median of {get_rounds} blocks of "
                f"1,000 calls (per-call mean, Python loop included); get_many: median of "
                f"{repeats} interleaved runs of {keys:,} keys, half of them misses"),
    }
    return IndexBench(rows, setup, notes)


def _num(v: float) -> str:
    return f"{v:,.2f}" if v < 10 else f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


def _value(row: Row) -> str:
    if row.text:
        return row.text
    return f"{_num(row.value)} {row.unit}"


def render(bench: IndexBench, width: int = WIDTH) -> str:
    """The table as text, at most ``width`` columns: header, rows, how it was measured."""
    head = ["measure", "subject (idiom)", "value", "lead", "target", "met"]
    cells = [[r.measure, r.subject, _value(r), "" if r.lead is None else f"{_num(r.lead)}x",
              r.target, r.met] for r in bench.rows]
    widths = [max(len(c[i]) for c in cells + [head]) for i in range(len(head))]
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    if excess > 0:                      # keep to the terminal: shorten the subjects
        widths[1] -= excess
        for c in cells:
            c[1] = c[1] if len(c[1]) <= widths[1] else c[1][:widths[1] - 1] + "…"
    lines = ["  ".join(c[i].ljust(widths[i]) if i in (0, 1, 4) else c[i].rjust(widths[i])
                       for i in range(len(head))).rstrip() for c in [head] + cells]
    lines.insert(1, "-" * min(width, len(max(lines, key=len))))
    s = bench.setup
    top = [f"# lootlab index benchmark: {s['machine']}, Python {s['python']}, numpy {s['numpy']}",
           f"# {s['records']} records; load {s['load']}"]
    foot = _wrap("lead: how many times faster LootIndex is than the row (the ratio of per-call "
                 "times or p99s; for get_many of rates); below 1 the row is faster.", width)
    foot += _wrap(s["how"], width)
    for note in bench.notes:
        foot += _wrap(note, width)
    return "\n".join(top + lines + foot)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap
    return textwrap.wrap(text, width=width)


@click.command(cls=handle_errors("python -m lootlab.benchmarks.index_peers"),
               help=__doc__.splitlines()[0])
@click.option("--records", type=int, default=350_000, show_default=True)
@click.option("--queries", type=int, default=5_000, show_default=True)
@click.option("--keys", type=int, default=1_000_000, show_default=True,
              help="get_many batch size")
@click.option("--seed", type=int, default=0)
def main(records: int, queries: int, keys: int, seed: int) -> None:
    print(render(run(records, queries, seed, keys=keys)))


if __name__ == "__main__":
    main(prog_name="python -m lootlab.benchmarks.index_peers")
