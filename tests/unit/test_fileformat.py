"""The on-disk format: a golden file with known answers, and every way a file can be bad."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import lootlab
from lootlab import fileformat as ff
from lootlab.build import encode_index
from lootlab.cli import main

import _oracle as oracle
from make_golden import ROWS, golden_frame

GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden.idx"


def test_golden_file_opens_with_known_header_and_answers():
    with lootlab.open_index(GOLDEN, verify=True) as idx:
        assert len(idx) == 7 and idx.generation == 7 and idx.source_version == "golden-etag"
        h = idx.header
        assert (h.cell_shift, h.hash_slots, h.bbox_min, h.bbox_max) == (
            5, 16, (-33554432, -2048, -33554432), (33554431, 2047, 33554431))
        truth = oracle.dedupe(golden_frame())
        for row in ROWS:
            assert tuple(idx.get(*row[:3])) == oracle.get(truth, *row[:3])
        assert idx.get(1, 64, 0).item_id == 8          # the later duplicate won
        assert oracle.fields_equal(oracle.canonical(idx.near(0, 64, 0, 2)),
                                   oracle.near(truth, 0, 64, 0, 2))
        assert [r["item_id"] for r in idx.knn(0, 64, 0, 3)] == [1, 8, 3]


def test_writer_still_produces_the_golden_bytes():
    """Any change to the layout (not just to the reader) shows up here."""
    pieces, header, _, dups = encode_index(golden_frame(), generation=7,
                                           source_version="golden-etag")
    data = GOLDEN.read_bytes()
    assert dups == 1
    assert b"".join(bytes(p) for p in pieces) == data[ff.HEADER_SIZE:]
    ours, theirs = bytearray(header.pack()), bytearray(data[:ff.HEADER_SIZE])
    assert header.lineage == 0                     # unset: publish decides it
    for buf in (ours, theirs):      # build time, lineage and the header CRC legitimately differ
        buf[40:48] = bytes(8)
        buf[20:24] = bytes(4)
        buf[256:264] = bytes(8)
    assert ours == theirs


def _damaged(tmp_path: Path, edit) -> Path:
    data = bytearray(GOLDEN.read_bytes())
    edited = edit(data)
    if isinstance(edited, bytearray):
        data = edited
    out = tmp_path / "bad.idx"
    out.write_bytes(bytes(data))
    return out


def _reseal(data: bytearray) -> None:
    """Recompute the header CRC, so only the intended field is wrong."""
    struct.pack_into("<I", data, 20, 0)
    struct.pack_into("<I", data, 20, __import__("zlib").crc32(bytes(data[:ff.HEADER_SIZE])))


CASES = {
    "empty": (lambda d: bytearray(), "too small"),
    "not an index": (lambda d: bytearray(b"PAR1" + bytes(400)), "not a lootlab index"),
    "truncated body": (lambda d: d[:-10], "truncated"),
    "truncated header": (lambda d: d[:100], "too small"),
    "trailing bytes": (lambda d: d + b"junk", "trailing"),
    "wrong version": (lambda d: (struct.pack_into("<H", d, 8, 3), _reseal(d)), "format version 3"),
    "version 1 (older lootlab)": (lambda d: (struct.pack_into("<H", d, 8, 1), _reseal(d)),
                                  r"format version 1; .*rebuild"),
    "byte order": (lambda d: (struct.pack_into(">I", d, 12, ff.BYTE_ORDER_TAG), _reseal(d)),
                   "byte order"),
    "header corrupt": (lambda d: d.__setitem__(30, d[30] ^ 0xFF), "header checksum"),
    "bad section table": (lambda d: (struct.pack_into("<Q", d, 88, 64), _reseal(d)),
                          "section table"),
    "record count beyond file": (lambda d: (struct.pack_into("<Q", d, 24, 10**9),
                                            struct.pack_into("<Q", d, 112, 2**31), _reseal(d)),
                                 "cells for|truncated|section"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_files_raise_invalid_index_error_naming_file_and_problem(tmp_path, case):
    edit, problem = CASES[case]
    path = _damaged(tmp_path, edit)
    with pytest.raises(lootlab.InvalidIndexError, match=problem) as info:
        lootlab.open_index(path)
    assert str(path) in str(info.value)


def test_body_corruption_is_caught_by_verify(tmp_path):
    path = _damaged(tmp_path, lambda d: d.__setitem__(ff.HEADER_SIZE + 9, d[ff.HEADER_SIZE + 9] ^ 1))
    lootlab.open_index(path).close()                  # constant-time open checks the header only
    with pytest.raises(lootlab.InvalidIndexError, match="body checksum mismatch"):
        lootlab.open_index(path, verify=True)


def _scramble(start: str, end: str):
    def edit(d: bytearray) -> None:
        lay = ff.parse_header(bytes(d), "x", len(d)).layout
        a, b = getattr(lay, start), getattr(lay, end)
        d[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    return edit


def test_a_scrambled_cell_table_is_refused_at_open(tmp_path):
    path = _damaged(tmp_path, _scramble("cells_offset", "hash_offset"))
    with pytest.raises(lootlab.InvalidIndexError, match="cell"):
        lootlab.open_index(path)


def test_corrupt_offsets_never_crash_or_read_out_of_bounds(tmp_path):
    """Garbage in the hash table: point lookups may lose answers, never invent one, and the
    spatial queries, which never read the hash table, still answer in full."""
    path = _damaged(tmp_path, _scramble("hash_offset", "file_size"))
    truth = oracle.dedupe(golden_frame())
    with lootlab.open_index(path) as idx:
        for row in ROWS:
            rec = idx.get(*row[:3])
            assert rec is None or tuple(rec) == oracle.get(truth, *row[:3])
        got = oracle.canonical(idx.near(0, 0, 0, 2**27))
        full = oracle.canonical(oracle.as_results(truth))
        assert len(full) and set(map(tuple, got.tolist())) == set(map(tuple, full.tolist()))
        found, _ = idx.get_many(np.array([r[:3] for r in ROWS]))
        assert len(found) == len(ROWS)


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(lootlab.InvalidIndexError, match="no such file"):
        lootlab.open_index(tmp_path / "nope.idx")
    with pytest.raises(lootlab.InvalidIndexError, match="directory"):
        lootlab.open_index(tmp_path)


def test_cli_query_reports_a_bad_file_without_traceback(tmp_path):
    bad = _damaged(tmp_path, lambda d: d[:-1])
    result = CliRunner().invoke(main, ["query", str(bad), "get", "0", "0", "0"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "truncated" in result.stderr and str(bad) in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr


# -- header fields a query uses: every one range-checked at open -------

def _set(fmt: str, offset: int, *values):
    """An edit that stores ``values`` at ``offset`` and recomputes the header CRC."""
    def edit(d: bytearray) -> None:
        struct.pack_into(fmt, d, offset, *values)
        _reseal(d)
    return edit


X_MAX = (1 << 25) - 1
RESEALED = {   # name: (edit, the field the message must name)
    "bbox x max beyond packable": (_set("<i", 68, X_MAX + 1), "bounding box x"),
    "bbox x min below packable": (_set("<i", 56, -(1 << 25) - 1), "bounding box x"),
    "bbox x both below packable": (_set("<ii", 56, -(1 << 25) - 5, 0), "bounding box x"),
    "bbox y max beyond packable": (_set("<i", 72, 5000), "bounding box y"),
    "bbox z min above max": (_set("<6i", 56, -(1 << 25), -2048, 10, X_MAX, 2047, 0),
                             "bounding box z 10..0"),
    "bbox min above max": (_set("<6i", 56, 10, 10, 10, 0, 0, 0), "bounding box x"),
    "max probe 0": (_set("<I", 52, 0), "max probe length 0"),
    "max probe beyond N": (_set("<I", 52, 2**32 - 1), "max probe length"),
    "cell shift 27": (_set("<B", 18, 27), "cell shift 27"),
    "no cells for records": (_set("<Q", 96, 0), "0 cells for 7 records"),
    "hash slots not a power of two": (_set("<Q", 112, 24), "hash table of 24 slots"),
    "lineage unset": (_set("<Q", 256, 0), "lineage"),
}


@pytest.mark.parametrize("case", list(RESEALED))
def test_header_fields_out_of_range_are_refused_at_open(tmp_path, case):
    """Fields are checked even with the header CRC recomputed (it opened before, and then
    near() looped forever in C or knn raised a bare numpy OverflowError)."""
    edit, field = RESEALED[case]
    path = _damaged(tmp_path, edit)
    for verify in (False, True):
        with pytest.raises(lootlab.InvalidIndexError, match=field) as info:
            lootlab.open_index(path, verify=verify)
        assert str(path) in str(info.value)


def test_empty_index_needs_the_empty_bounding_box(tmp_path):
    import pandas as pd
    path = tmp_path / "e.idx"
    lootlab.build_index(pd.DataFrame(columns=lootlab.FIELDS, dtype="int64"), path)
    data = bytearray(path.read_bytes())
    _set("<6i", 56, -(1 << 25) - 1, 0, 0, 2**31 - 1, 0, 0)(data)
    path.write_bytes(bytes(data))
    with pytest.raises(lootlab.InvalidIndexError, match="bounding box .* empty index"):
        lootlab.open_index(path)


def _cells_of(d: bytearray) -> tuple[int, int, int]:
    h = ff.parse_header(bytes(d), "x", len(d))
    return h.layout.cells_offset, h.cell_count, h.record_count


def test_overlapping_cell_runs_are_refused_at_open(tmp_path):
    """Starts going back to 0 made every cell cover the whole file (cells x N rows)."""
    def overlap(d: bytearray) -> None:
        off, c, n = _cells_of(d)
        starts = [0 if i % 2 == 0 else n for i in range(c)] + [n]
        struct.pack_into(f"<{c + 1}q", d, off + 8 * c, *starts)
    path = _damaged(tmp_path, overlap)
    with pytest.raises(lootlab.InvalidIndexError, match="cell starts go backwards") as info:
        lootlab.open_index(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("damage,problem", [
    (lambda c, n: ([5] + [n] * c, None), "from 0 to the record count"),
    (lambda c, n: ([0] * c + [n + 1], None), "from 0 to the record count"),
    (lambda c, n: (None, "swap"), "not strictly ascending"),
])
def test_a_damaged_cell_table_is_refused_at_open(tmp_path, damage, problem):
    def edit(d: bytearray) -> None:
        off, c, n = _cells_of(d)
        starts, codes = damage(c, n)
        if starts is not None:
            struct.pack_into(f"<{c + 1}q", d, off + 8 * c, *starts)
        else:
            a, b = struct.unpack_from("<QQ", d, off)
            struct.pack_into("<QQ", d, off, b, a)
    with pytest.raises(lootlab.InvalidIndexError, match=problem):
        lootlab.open_index(_damaged(tmp_path, edit))


KERNEL_EXTREMES = """
import json, sys
import numpy as np
import lootlab
from lootlab import _kernels
from lootlab.records import RESULT_DTYPE
B = 1 << 25
out = np.empty(64, RESULT_DTYPE)
results = {}
for path in sys.argv[1:]:
    idx = lootlab.open_index(path)
    s = idx._current()
    for x0, x1 in [(-B - 1, -B - 1), (-B - 9, -B - 1), (-2**62, 2**62), (B, B + 10),
                   (2**62, 2**62 + 5), (-2**63, 2**63 - 1), (5, -5)]:
        for mode in (0, 1):
            n = _kernels.query_cells(s.raw, s.codes, s.starts, s.shift, x0, x1, x0, x1, mode,
                                     0, 0, 0, 2**62, 0, 0, out) if mode == 0 else \
                _kernels.query_cells(s.raw, s.codes, s.starts, s.shift, x0, x1, x0, x1, mode,
                                     -B, -2048, -B, B, 2047, B, out)
            results[f"{path} {x0} {x1} {mode}"] = (n, s.n)
print(json.dumps(results))
"""


def test_c_kernel_loops_are_bounded_whatever_the_bounds(tmp_path):
    """Bounds outside the packable range once made a ``uint64_t row <= r1`` loop endless
    (r1 = UINT64_MAX with cell shift 0): now signed and clamped, so every call returns."""
    pytest.importorskip("lootlab._kernels")
    paths = []
    for shift in (0, 5, 26):
        p = tmp_path / f"s{shift}.idx"
        lootlab.build_index(golden_frame(), p, cell_shift=shift)
        paths.append(str(p))
    proc = subprocess.run([sys.executable, "-c", KERNEL_EXTREMES, *paths], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for case, (count, n) in json.loads(proc.stdout).items():
        assert 0 <= count <= n, case


def test_c_kernel_reads_each_record_at_most_once_with_overlapping_runs(tmp_path):
    """Even when handed a cell table whose runs overlap (bypassing the open check), one
    query returns at most N rows, each record once."""
    kernels = pytest.importorskip("lootlab._kernels")
    from lootlab.records import RESULT_DTYPE
    p = tmp_path / "w.idx"
    lootlab.build_index(lootlab.generate_world(3000, seed=5), p, cell_shift=2)
    snap = lootlab.open_index(p)._current()
    n, c = snap.n, len(snap.codes)
    starts = np.array([0 if i % 2 == 0 else n for i in range(c)] + [n], np.int64)
    out = np.empty(n + 1, RESULT_DTYPE)
    b = 1 << 25
    for mode, params in ((0, (0, 0, 0, 2**60, 0, 0)), (1, (-b, -2048, -b, b, 2047, b))):
        count = kernels.query_cells(snap.raw, snap.codes, starts, snap.shift, -b, b - 1, -b,
                                    b - 1, mode, *params, out)
        assert count == n                                   # all records, each once
        keys = np.unique(out[:count][["x", "y", "z"]])
        assert len(keys) == n


# -- the hash table: a miss costs at most the recorded longest probe ---------------

def _fill_hash_table(d: bytearray) -> None:
    """No empty slot left: every slot names record 0 (body only; header CRC still valid)."""
    h = ff.parse_header(bytes(d), "x", len(d))
    off = h.layout.hash_offset
    d[off:off + 4 * h.hash_slots] = bytes(4 * h.hash_slots)


class _Counting:
    """Counts the probes of ``get`` (each one a ``_U32.unpack_from``)."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def unpack_from(self, *args):
        self.calls += 1
        return self.real.unpack_from(*args)


def test_a_miss_in_a_full_hash_table_costs_at_most_the_longest_probe(tmp_path, monkeypatch):
    """Both paths: the numpy one (slot reads counted) and the C one (its probe counter)."""
    import lootlab.index as index_mod
    import lootlab.lookups as lookups_mod
    big = tmp_path / "big.idx"
    lootlab.build_index(lootlab.generate_world(20_000, seed=3), big)
    data = bytearray(big.read_bytes())
    _fill_hash_table(data)
    path = tmp_path / "full.idx"
    path.write_bytes(bytes(data))
    idx = lootlab.open_index(path)
    h = idx.header
    assert 1 <= h.max_probe < 64 and h.hash_slots == 32768
    misses = [(7, 2000, 7), (-9, -2000, 11), (12345, 0, -54321)]
    with index_mod.numpy_only():
        counter = _Counting(lookups_mod._U32)
        monkeypatch.setattr(lookups_mod, "_U32", counter)
        for p in misses:
            assert idx.get(*p) is None
        assert 0 < counter.calls <= len(misses) * h.max_probe            # not 3 x 32768
        snap = idx._current()
        real, reads = snap.table, []

        class CountingTable:
            def __getitem__(self, i):
                reads.append(1)
                return real[i]
        monkeypatch.setattr(snap, "table", CountingTable(), raising=False)
        found, _ = idx.get_many(np.array(misses * 30))
        assert not found.any() and 0 < len(reads) <= h.max_probe
        monkeypatch.setattr(snap, "table", real, raising=False)
    if not index_mod.kernels_available():
        return
    assert idx.get(*misses[0]) is None
    lookup = idx._bound[1]
    before = lookup.probes
    for p in misses:
        assert idx.get(*p) is None
    assert 0 < lookup.probes - before <= len(misses) * h.max_probe
    before = lookup.probes
    found, _ = idx.get_many(np.array(misses * 30))
    assert not found.any() and 0 < lookup.probes - before <= 90 * h.max_probe


def test_max_probe_is_the_longest_probe_sequence_of_the_built_table(tmp_path):
    """The builder's figure is exact: every record is found within it, and one needs all of it."""
    path = tmp_path / "w.idx"
    lootlab.build_index(lootlab.generate_world(5000, seed=8), path)
    with lootlab.open_index(path) as idx:
        snap = idx._current()
        keys, table, mask = snap.keys, snap.table, snap.hash_mask
        home = (keys * np.uint64(ff.HASH_MULTIPLIER)) >> np.uint64(snap.hash_shift)
        home = home.astype(np.int64)
        where = np.empty(len(keys), np.int64)
        occupied = np.flatnonzero(table != ff.HASH_EMPTY)
        where[table[occupied].astype(np.int64)] = occupied
        longest = int(((where - home) & mask).max()) + 1
        assert idx.header.max_probe == longest


# -- non-regular files at the path never block ----------------------------------

FIFO_SCRIPT = """
import json, os, sys, time
import lootlab
good, fifo_dir = sys.argv[1], sys.argv[2]
out = {}
fifo = os.path.join(fifo_dir, "fifo.idx")
os.mkfifo(fifo)
try:
    lootlab.open_index(fifo)
    out["open"] = "opened"
except lootlab.LootlabError as exc:
    out["open"] = str(exc)
reader = lootlab.open_index(good, refresh_interval=0)
before = reader.generation
other = os.path.join(os.path.dirname(good), "other-fifo")
os.mkfifo(other)
os.replace(other, good)                     # a FIFO published over a live reader's path
out["len_after"] = len(reader)              # refresh runs here: it must not block
out["swap_error"] = str(reader.last_swap_error)
out["generation"] = [before, reader.generation]
try:
    lootlab.build_index(lootlab.generate_world(50, seed=1), fifo)
    out["build"] = "built"
except lootlab.LootlabError as exc:
    out["build"] = str(exc)
out["still_fifo"] = __import__("stat").S_ISFIFO(os.stat(fifo).st_mode)
print(json.dumps(out))
"""


def test_a_fifo_at_the_index_path_is_refused_without_blocking(tmp_path):
    good = tmp_path / "loot.idx"
    lootlab.build_index(golden_frame(), good, generation=3)
    proc = subprocess.run([sys.executable, "-c", FIFO_SCRIPT, str(good), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "fifo.idx: is a FIFO (named pipe), not an index file" in out["open"]
    assert out["len_after"] == 7 and out["generation"] == [3, 3]
    assert "FIFO" in out["swap_error"]
    assert "not a regular file" in out["build"] and out["still_fifo"]


@pytest.mark.timeout(60)     # an open that blocks on the FIFO fails here, not at 600 s
def test_cli_query_of_a_fifo_is_one_line_and_exit_1(tmp_path):
    fifo = tmp_path / "q.idx"
    os.mkfifo(fifo)
    result = CliRunner().invoke(main, ["query", str(fifo), "get", "0", "0", "0"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.strip().count("\n") == 0 and "FIFO" in result.stderr, result.stderr


# -- the public surface ------------------------------------------------------------

def test_verify_method_is_callable_and_catches_body_corruption(tmp_path):
    with lootlab.open_index(GOLDEN) as idx:
        assert idx.verify() is None
        assert idx.verify_on_open is False
    bad = _damaged(tmp_path, lambda d: d.__setitem__(ff.HEADER_SIZE + 3, d[ff.HEADER_SIZE + 3] ^ 4))
    with lootlab.open_index(bad) as idx:
        with pytest.raises(lootlab.InvalidIndexError, match="body checksum mismatch"):
            idx.verify()
