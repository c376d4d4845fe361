"""The point-lookup half of ``python -m lootlab.benchmarks.index_peers``: ``get`` and ``get_many``
beside their peers, each with its best idiom (stated in its row).

``get``: one call -> one record, hits only.  Every subject runs the same positions in blocks
of ``block`` calls timed as a whole (a clock per call would cost as much as the call); the
blocks of all subjects are interleaved in rotating order, and a figure is the median over
``rounds`` blocks of the per-call mean, Python ``for`` loop included (the "empty loop" row
is that loop alone).

``get_many``: ``n`` keys, half of them misses, the found mask and the records aligned with the
keys.  Each subject runs ``repeats`` times, interleaved; a figure is the median rate.  The
"memory-latency limit" is one random 8-byte read per key (``np.take`` at shuffled indices)
from an array the size of the index file, mapped from it.
"""

from __future__ import annotations

import mmap
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..index import LootIndex
from ..records import RESULT_DTYPE, Y_MAX, LootRecord, pack_keys

_LMDB_KEY = struct.Struct("<iii")
_LMDB_META = struct.Struct("<IIHBBI")


@dataclass
class Row:
    """One line of the benchmark table (``lead``: how many times faster LootIndex is)."""

    measure: str
    subject: str
    value: float
    unit: str
    lead: float | None = None
    target: str = ""
    met: str = ""
    text: str = ""          # the value as printed, when it is more than one number


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def _lmdb_env(records: list[tuple], path: Path):  # -> lmdb.Environment | None
    """An LMDB environment holding every record under its packed (x, y, z), or None."""
    try:
        import lmdb
    except ImportError:
        return None
    env = lmdb.open(str(path), map_size=64 * 2**20 + 256 * len(records), sync=False,
                    metasync=False, readahead=False)
    with env.begin(write=True) as txn:
        txn.cursor().putmulti((_LMDB_KEY.pack(*r[:3]), _LMDB_META.pack(*r[3:])) for r in records)
    return env


def _block_timer(fn: Callable[[], None]) -> Callable[[], float]:
    def timed() -> float:
        t0 = time.perf_counter_ns()
        fn()
        return time.perf_counter_ns() - t0
    return timed


def measure_get(idx: LootIndex, tmp: Path, *, block: int = 1000, rounds: int = 30,
                seed: int = 1) -> tuple[list[Row], list[str]]:
    """Rows for one ``get`` and its peers, and notes (e.g. LMDB missing)."""
    notes: list[str] = []
    sample = idx.sample(block, seed=seed)
    pos = list(zip(sample["x"].tolist(), sample["y"].tolist(), sample["z"].tolist()))
    everything = idx.box((-2**25, -2048, -2**25), (2**25 - 1, 2047, 2**25 - 1))
    records = [tuple(r) for r in everything[["x", "y", "z", "item_id", "value", "quantity",
                                              "rarity", "flags", "tick"]].tolist()]
    table = {r[:3]: LootRecord(*r) for r in records}
    get = idx.get

    def loot() -> None:
        for x, y, z in pos:
            get(x, y, z)

    def floor() -> None:
        for x, y, z in pos:
            table[x, y, z]

    def empty() -> None:
        for x, y, z in pos:
            pass

    subjects = {"LootIndex.get(x, y, z) -> LootRecord": loot,
                "dict[x, y, z] -> LootRecord (the floor)": floor}
    env = _lmdb_env(records, tmp / "lmdb")
    txn = None
    if env is None:
        notes.append("lmdb is not importable (pip install lmdb): the LMDB rows are skipped")
    else:
        txn = env.begin(buffers=False)
        tget, pack, unpack = txn.get, _LMDB_KEY.pack, _LMDB_META.unpack
        packed = [pack(x, y, z) for x, y, z in pos]

        def lmdb_get() -> None:
            for k in packed:
                tget(k)

        def lmdb_full() -> None:
            for x, y, z in pos:
                unpack(tget(pack(x, y, z)))

        subjects["LMDB txn.get(pre-packed 12-byte key)"] = lmdb_get
        subjects["LMDB Struct pack + txn.get + unpack"] = lmdb_full
    subjects["empty for loop (reference)"] = empty
    timers = {name: _block_timer(fn) for name, fn in subjects.items()}
    times: dict[str, list[float]] = {name: [] for name in subjects}
    names = list(subjects)
    for fn in subjects.values():
        fn()                                                     # warm-up, discarded
    for r in range(rounds):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            times[name].append(timers[name]() / len(pos))
    if txn is not None:
        txn.abort()
        env.close()
    med = {name: float(np.median(v)) / 1e3 for name, v in times.items()}
    ours = med[names[0]]
    rows = []
    for name in names:
        rows.append(Row("get median", name, med[name], "µs",
                        lead=med[name] / ours if "empty" not in name else None))
    full = med.get("LMDB Struct pack + txn.get + unpack")
    rows[0].target = "<= LMDB pack+get+unpack"
    rows[0].met = verdict(None if full is None else ours <= full)
    rows[1].target = "stretch: Loot <= dict"
    rows[1].met = verdict(ours <= med[names[1]])
    return rows, notes


def _get_many_keys(idx: LootIndex, n: int, seed: int) -> np.ndarray:
    """(n, 3) int64 positions of random records, every second one moved off by one in y."""
    s = idx.sample(n, seed=seed)
    keys = np.stack([s["x"], s["y"], s["z"]], axis=1).astype(np.int64)
    y = keys[::2, 1]
    keys[::2, 1] = np.where(y < Y_MAX, y + 1, y - 1)
    return keys


def measure_get_many(idx: LootIndex, path: Path, *, n: int = 1_000_000, repeats: int = 5,
                     seed: int = 7) -> list[Row]:
    """Rows for ``get_many`` of ``n`` keys and its peers (throughput, M keys/s)."""
    keys = _get_many_keys(idx, n, seed)
    everything = idx.box((-2**25, -2048, -2**25), (2**25 - 1, 2047, 2**25 - 1))
    skeys = pack_keys(everything["x"], everything["y"], everything["z"])
    order = np.argsort(skeys)
    skeys = skeys[order]
    rows32 = np.ascontiguousarray(everything[order]).view(np.dtype("V32"))
    last = len(skeys) - 1
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    words = np.frombuffer(mm, np.uint64, count=len(mm) // 8)
    rng = np.random.default_rng(seed)
    shuffled = (rng.permutation(len(words))[:n] if len(words) >= n
                else rng.integers(0, len(words), n))

    def loot() -> None:
        idx.get_many(keys)

    def gather() -> None:
        k = pack_keys(keys[:, 0], keys[:, 1], keys[:, 2])
        at = np.searchsorted(skeys, k)
        np.minimum(at, last, out=at)
        found = skeys.take(at) == k
        out = rows32.take(at)
        out.view(np.uint64).reshape(-1, 4)[~found] = 0
        out.view(RESULT_DTYPE)

    def mask_only() -> np.ndarray:
        k = pack_keys(keys[:, 0], keys[:, 1], keys[:, 2])
        at = np.searchsorted(skeys, k)
        np.minimum(at, last, out=at)
        return skeys.take(at) == k

    def limit() -> None:
        words.take(shuffled)

    subjects = {"LootIndex.get_many(xyz)": loot,
                "numpy pack+searchsorted+take V32 rows": gather,
                "numpy pack+searchsorted, mask only": mask_only,
                "limit: np.take of 1 word/key, shuffled": limit}
    names = list(subjects)
    rates: dict[str, list[float]] = {name: [] for name in names}
    if len(skeys):
        for fn in subjects.values():
            fn()                                                 # warm-up, discarded
        for r in range(repeats):
            for k in range(len(names)):
                name = names[(r + k) % len(names)]
                t0 = time.perf_counter()
                subjects[name]()
                rates[name].append(n / (time.perf_counter() - t0) / 1e6)
    words = shuffled = None          # release the view before unmapping
    mm.close()
    if not len(skeys):
        return []
    med = {name: float(np.median(v)) for name, v in rates.items()}
    ours = med[names[0]]
    rows = [Row("get_many", name, med[name], "M keys/s", lead=ours / med[name])
            for name in names]
    rows[0].target = ">= 1.5x numpy gather"
    rows[0].met = verdict(ours >= 1.5 * med[names[1]])
    rows[3].target = "stretch: within 1.2x"
    rows[3].met = verdict(ours * 1.2 >= med[names[3]])
    return rows
