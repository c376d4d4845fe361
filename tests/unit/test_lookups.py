"""Point lookups: the C ``get``/``get_many`` (``lootlab._kernels.Lookup``) and the
numpy path against a dict oracle, on keys that collide in the hash; hostile files and
buffers in child processes (a bad read would be a signal); get's fast road keeps the swap
contract; the index benchmark's table on a small run."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lootlab
from lootlab import fileformat as ff
from lootlab.index import kernels_available, numpy_only
from lootlab.records import X_MAX, X_MIN, Y_MAX, Y_MIN, pack_keys

ROOT = Path(__file__).resolve().parents[2]
_TMP = tempfile.TemporaryDirectory(prefix="lootlab-lookups-")
PATHS = ("C", "numpy")


def on(path: str):
    from contextlib import nullcontext
    return numpy_only() if path == "numpy" else nullcontext()


def home_slots(xyz: np.ndarray, slots: int) -> np.ndarray:
    keys = pack_keys(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    bits = slots.bit_length() - 1
    return (keys * np.uint64(ff.HASH_MULTIPLIER)) >> np.uint64(64 - bits)


@st.composite
def colliding(draw) -> tuple[pd.DataFrame, np.ndarray]:
    """A world whose keys crowd into a few home slots (including the table's last ones, so
    probes wrap), with duplicate positions and extreme coordinates; and misses with the
    same home slots."""
    n = draw(st.integers(1, 40))
    slots = ff.hash_slots_for(n)
    targets = draw(st.lists(st.sampled_from([0, 1, slots - 2, slots - 1]) |
                            st.integers(0, slots - 1), min_size=1, max_size=3, unique=True))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    edge_xz = np.array([X_MIN, X_MIN + 1, -1, 0, 1, X_MAX - 1, X_MAX])
    edge_y = np.array([Y_MIN, Y_MIN + 1, -1, 0, 1, Y_MAX - 1, Y_MAX])
    pool = np.empty((0, 3), np.int64)
    while len(pool) < 2 * n + 8:
        m = 8192
        cand = np.stack([rng.integers(X_MIN, X_MAX + 1, m), rng.integers(Y_MIN, Y_MAX + 1, m),
                         rng.integers(X_MIN, X_MAX + 1, m)], axis=1)
        edge = rng.random((m, 3)) < 0.3                 # some coordinates at the edges
        cand[:, 0] = np.where(edge[:, 0], rng.choice(edge_xz, m), cand[:, 0])
        cand[:, 1] = np.where(edge[:, 1], rng.choice(edge_y, m), cand[:, 1])
        cand[:, 2] = np.where(edge[:, 2], rng.choice(edge_xz, m), cand[:, 2])
        cand = cand[np.isin(home_slots(cand, slots), targets)]
        pool = np.unique(np.concatenate([pool, cand]), axis=0)
    pool = pool[rng.permutation(len(pool))]
    present, misses = pool[:n], pool[n:]
    meta = rng.integers(0, [2**32, 2**32, 2**16, 256, 256, 2**32], size=(n, 6))
    rows = np.concatenate([present, meta], axis=1)
    dup = rows[rng.integers(0, n, draw(st.integers(0, 5)))].copy()    # later rows win
    dup[:, 3:] = rng.integers(0, [2**32, 2**32, 2**16, 256, 256, 2**32], size=(len(dup), 6))
    df = pd.DataFrame(np.concatenate([rows, dup]), columns=lootlab.FIELDS)
    return df, misses


def truth_of(df: pd.DataFrame) -> dict[tuple[int, int, int], tuple]:
    """The dict oracle: the last row of each position wins."""
    return {tuple(r[:3]): tuple(r) for r in df.to_numpy().tolist()}


def build(df: pd.DataFrame) -> lootlab.LootIndex:
    d = Path(tempfile.mkdtemp(dir=_TMP.name))
    lootlab.build_index(df, d / "t.idx")
    return lootlab.open_index(d / "t.idx", verify=True)


def test_the_lookup_kernel_is_built():
    assert kernels_available()
    from lootlab import _kernels
    assert hasattr(_kernels, "Lookup")


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=40, deadline=None)
@given(colliding())
def test_get_and_get_many_match_a_dict_on_colliding_keys(path, world):
    df, misses = world
    truth = truth_of(df)
    idx = build(df)
    assert len(idx) == len(truth)
    probes = [p for p in truth] + [tuple(p) for p in misses.tolist()]
    with on(path):
        for p in probes:
            rec = idx.get(*p)
            assert (tuple(rec) if rec is not None else None) == truth.get(p)
            if rec is not None:
                assert type(rec) is lootlab.LootRecord and all(type(v) is int for v in rec)
        xyz = np.array(probes * 2, np.int64)                  # every key twice
        found, recs = idx.get_many(xyz)
    for i, p in enumerate(probes * 2):
        assert bool(found[i]) == (p in truth)
        got = tuple(int(recs[i][f]) for f in lootlab.FIELDS)
        assert got == truth.get(p, (0,) * 9)                  # misses are zero rows
    if path == "C":
        lookup = idx._bound[1]
        before = lookup.probes
        for p in misses.tolist():
            idx.get(*p)
        assert lookup.probes - before <= len(misses) * idx.header.max_probe


def test_get_takes_numpy_ints_and_integral_floats_and_returns_python_ints(tmp_path):
    df = lootlab.generate_world(200, seed=5)
    lootlab.build_index(df, tmp_path / "w.idx")
    x, y, z = (int(v) for v in df.iloc[-1][["x", "y", "z"]])
    with lootlab.open_index(tmp_path / "w.idx") as idx:
        want = idx.get(x, y, z)
        assert want is not None
        for args in ((np.int64(x), np.int32(y), np.int16(z)), (float(x), float(y), float(z))):
            for path in PATHS:
                with on(path):
                    rec = idx.get(*args)
                assert rec == want and all(type(v) is int for v in rec)
        for bad in ((True, y, z), (x, y, 2**70), (x, Y_MAX + 1, z), (x, 0.5, z)):
            with pytest.raises(lootlab.QueryError):
                idx.get(*bad)


# -- hostile files and buffers: a child process per batch, so a bad read is a signal -------

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import lootlab
    spec = json.load(open(sys.argv[1]))
    out = []
    for case in spec:
        idx = lootlab.open_index(case["path"])
        pts = case["probes"]
        got = [None if r is None else list(r) for r in map(lambda p: idx.get(*p), pts)]
        found, recs = idx.get_many(np.array(pts, np.int64))
        many = [[int(recs[i][f]) for f in lootlab.FIELDS] if found[i] else None
                for i in range(len(pts))]
        lookup = idx._bound[1]
        out.append({"get": got, "many": many, "probes": lookup.probes,
                    "max_probe": lookup.max_probe, "slots": idx.header.hash_slots})
    print(json.dumps(out))
""")


def _hostile(base: Path, kind: str, out: Path, rng: np.random.Generator) -> None:
    data = bytearray(base.read_bytes())
    h = ff.parse_header(bytes(data[:ff.HEADER_SIZE]), base, len(data))
    off, s, n = h.layout.hash_offset, h.hash_slots, h.record_count
    table = np.frombuffer(data, np.uint32, count=s, offset=off).copy()
    if kind == "past-the-end":          # every record number one past the end or beyond
        table[table != ff.HASH_EMPTY] = n + rng.integers(0, 1000, (table != ff.HASH_EMPTY).sum())
        table[::7] = ff.HASH_EMPTY - 1
    elif kind == "full":                # no empty slot: every slot names record 0
        table[:] = 0
    elif kind == "random":
        table[:] = rng.integers(0, 2**32, s, dtype=np.uint64).astype(np.uint32)
        table[::3] = rng.integers(0, n, len(table[::3]))
    data[off:off + 4 * s] = table.tobytes()
    if kind in ("full", "random"):      # and the longest-probe field lies: as high as allowed
        h = replace(h, max_probe=n)
    elif kind == "probe-too-short":
        h = replace(h, max_probe=1)
    data[:ff.HEADER_SIZE] = h.pack()    # a valid header CRC: the file opens without verify
    out.write_bytes(bytes(data))


def test_a_hostile_hash_table_never_crashes_loops_or_answers_wrongly(tmp_path):
    df = lootlab.generate_world(3000, seed=8)
    base = tmp_path / "base.idx"
    lootlab.build_index(df, base)
    truth = truth_of(df)
    rng = np.random.default_rng(16)
    present = list(truth)[:300]
    misses = [(x, y + 3 if y < 2000 else y - 3, z) for x, y, z in present[:200]]
    misses = [p for p in misses if p not in truth] + [(X_MIN, Y_MIN, X_MIN), (X_MAX, Y_MAX, X_MAX)]
    probes = present + misses
    spec = []
    for kind in ("past-the-end", "full", "random", "probe-too-short"):
        path = tmp_path / f"{kind}.idx"
        _hostile(base, kind, path, rng)
        spec.append({"kind": kind, "path": str(path), "probes": [list(p) for p in probes]})
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "spec.json")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for case, res in zip(spec, json.loads(proc.stdout)):
        for answers in (res["get"], res["many"]):
            for p, got in zip(probes, answers):
                # a damaged table may lose a record, never give another position's
                assert got is None or tuple(got) == truth[p], (case["kind"], p, got)
        bound = min(res["max_probe"], res["slots"])
        assert res["probes"] <= 2 * len(probes) * bound, case["kind"]   # get + get_many
        if case["kind"] in ("random", "probe-too-short"):   # the check above saw answers
            found = len(present) - [res["get"][i] for i in range(len(present))].count(None)
            assert found > 0, case["kind"]
        if case["kind"] == "past-the-end":
            assert res["get"] == [None] * len(probes)
        if case["kind"] == "full":    # all but record 0's position pay the whole bound
            assert res["max_probe"] == 3000 and res["probes"] >= 2 * (len(probes) - 1) * 3000


GUARDED = textwrap.dedent("""
    import ctypes, mmap, sys
    import numpy as np
    from lootlab import _kernels
    from lootlab.records import LootRecord, RESULT_DTYPE, pack_keys
    PAGE = mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    keep = []

    def guarded(nbytes, dtype):
        # nbytes of memory that end exactly where an inaccessible page starts
        size = -(-nbytes // PAGE) * PAGE
        mm = mmap.mmap(-1, size + PAGE)
        buf = (ctypes.c_char * (size + PAGE)).from_buffer(mm)
        assert libc.mprotect(ctypes.addressof(buf) + size, PAGE, 0) == 0
        keep.append((mm, buf))
        return np.frombuffer(mm, dtype, count=nbytes // np.dtype(dtype).itemsize,
                             offset=size - nbytes)

    n, slots = 1000, 2048
    words = guarded(24 * n, np.uint64).reshape(n, 3)
    xyz = np.stack([np.arange(n), np.full(n, 5), -np.arange(n)], axis=1).astype(np.int64)
    words[:, 0] = pack_keys(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    words[:, 1] = np.arange(n)
    words[:, 2] = 7
    table = guarded(4 * slots, np.uint32)
    mode = sys.argv[1]
    if mode == "past-the-end":
        table[:] = n                       # one past the last record, no empty slot
    else:                                  # a true table: every key where it belongs
        table[:] = 0xFFFFFFFF
        home = (words[:, 0] * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - 11)
        for i, s in enumerate(home.tolist()):
            while table[s] != 0xFFFFFFFF:
                s = (s + 1) % slots
            table[s] = i
    lk = _kernels.Lookup(words, table, 10**9, LootRecord)   # the probe bound clamps to S
    assert lk.max_probe == slots and lk.records == n
    hits = sum(lk.find(*p) is not None for p in xyz.tolist())
    found = np.empty(n, bool); out = np.empty(n, RESULT_DTYPE)
    assert lk.get_many(xyz, found, out) == -1
    print(hits, int(found.sum()), int(out["item_id"].sum()) if mode == "true" else 0, lk.probes)
""")


@pytest.mark.parametrize("mode", ["past-the-end", "true"])
def test_the_kernel_never_reads_past_its_buffers(mode):
    """Records and table end where an inaccessible page begins: a read one record past the
    end, or one slot past the table (a probe that does not wrap), would be SIGSEGV."""
    proc = subprocess.run([sys.executable, "-c", GUARDED, mode], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    hits, found, values, probes = map(int, proc.stdout.split())
    if mode == "past-the-end":
        assert (hits, found) == (0, 0) and probes == 2 * 1000 * 2048
    else:
        assert (hits, found, values) == (1000, 1000, sum(range(1000)))


def test_the_lookup_refuses_inconsistent_buffers():
    from lootlab import _kernels
    words, table = np.zeros((4, 3), np.uint64), np.full(8, 0xFFFFFFFF, np.uint32)
    with pytest.raises(ValueError):
        _kernels.Lookup(words, table[:6], 1, lootlab.LootRecord)      # not a power of two
    with pytest.raises(ValueError):
        _kernels.Lookup(words.reshape(-1)[:10], table, 1, lootlab.LootRecord)   # 80 bytes
    with pytest.raises(TypeError):
        _kernels.Lookup(words, table, 1, dict)
    lk = _kernels.Lookup(words, table, -5, lootlab.LootRecord)
    assert lk.max_probe == 0 and lk.find(0, 0, 0) is None
    found, out = np.ones(2, bool), np.ones(2, lootlab.records.RESULT_DTYPE)
    assert lk.get_many(np.zeros((2, 3), np.int64), found, out) == -1 and not found.any()
    with pytest.raises(ValueError):
        lk.get_many(np.zeros((3, 3), np.int64), found, out)            # lengths disagree
    assert _kernels.Lookup(words, table[:0], 5, lootlab.LootRecord).find(0, 0, 0) is None


def test_get_many_names_the_first_row_out_of_range_on_the_c_path(tmp_path):
    lootlab.build_index(lootlab.generate_world(50, seed=1), tmp_path / "w.idx")
    pts = np.zeros((10, 3), np.int64)
    pts[6, 1] = Y_MAX + 1
    pts[8, 1] = Y_MIN - 1
    with lootlab.open_index(tmp_path / "w.idx") as idx:
        for path in PATHS:
            with on(path), pytest.raises(lootlab.QueryError, match="row 6"):
                idx.get_many(pts)


# -- the fast road keeps the swap contract ----------------------------------------------

def _one(value: int) -> pd.DataFrame:
    return pd.DataFrame([[1, 2, 3, 1, value, 1, 1, 1, 1]], columns=lootlab.FIELDS)


def test_get_sees_a_new_generation_as_refresh_interval_says(tmp_path):
    path = tmp_path / "w.idx"
    lootlab.build_index(_one(10), path)
    every = lootlab.open_index(path, refresh_interval=0)       # looks on every query
    never = lootlab.open_index(path, refresh_interval=None)    # only on refresh()
    soon = lootlab.open_index(path, refresh_interval=0.05)
    assert every.get(1, 2, 3).value == never.get(1, 2, 3).value == soon.get(1, 2, 3).value == 10
    lootlab.build_index(_one(20), path)
    assert every.get(1, 2, 3).value == 20
    assert never.get(1, 2, 3).value == 10 and never.get_many([[1, 2, 3]])[1][0]["value"] == 10
    never.refresh()
    assert never.get(1, 2, 3).value == 20
    import time
    deadline = time.monotonic() + 60
    while soon.get(1, 2, 3).value != 20:
        assert time.monotonic() < deadline, "get never saw the new generation"
        time.sleep(0.01)
    assert soon.get_many([[1, 2, 3]])[1][0]["value"] == 20


def test_a_closed_index_refuses_get_and_releases_its_mapping(tmp_path):
    import gc
    path = tmp_path / "w.idx"
    lootlab.build_index(_one(10), path)
    idx = lootlab.open_index(path, refresh_interval=None)
    assert idx.get(1, 2, 3).value == 10 and idx.get_many([[1, 2, 3]])[0].all()
    idx.close()
    with pytest.raises(ValueError, match="closed"):
        idx.get(1, 2, 3)
    gc.collect()
    with open("/proc/self/maps") as f:
        assert str(path) not in f.read()


# -- the benchmark's table ----------------------------------------------------------------

def test_the_index_benchmark_table_on_a_small_run(monkeypatch):
    from lootlab.benchmarks import index_peers as bench
    b = bench.run(3000, 500, keys=5000, get_rounds=3, repeats=1, big_factor=0)
    text = bench.render(b)
    lines = text.splitlines()
    assert max(map(len, lines)) <= bench.WIDTH
    for subject in ("LootIndex.get(", "dict[x, y, z]", "LMDB txn.get", "LMDB Struct pack",
                    "LootIndex.get_many", "searchsorted+take", "mask only", "limit: np.take",
                    "cKDTree + records (take of V32 rows)", "cKDTree ball p=inf",
                    "SQLite R*Tree"):
        assert sum(subject in line for line in lines) == 1, subject
    verdicts = [r.met for r in b.rows if r.target]
    assert len(verdicts) >= 8 and set(verdicts) <= {"PASS", "MISS"}
    assert "load" in text and "median of 3 blocks" in text
    get = {r.subject: r for r in b.rows if r.measure == "get median"}
    ours = get["LootIndex.get(x, y, z) -> LootRecord"].value
    full = get["LMDB Struct pack + txn.get + unpack"]
    assert full.lead == pytest.approx(full.value / ours)
    monkeypatch.setitem(sys.modules, "lmdb", None)          # import lmdb -> ImportError
    b = bench.run(2000, 250, keys=2000, get_rounds=1, repeats=1, big_factor=0)
    text = bench.render(b)
    assert "LMDB" not in "".join(r.subject for r in b.rows)
    assert "lmdb is not importable" in text
    assert [r.met for r in b.rows if r.subject.startswith("LootIndex.get(")] == ["n/a"]
