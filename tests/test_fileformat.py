"""The on-disk format: a golden file with known answers, and every way a file can be bad."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lootlab
from lootlab import fileformat as ff
from lootlab.build import encode_index

import _oracle as oracle
from make_golden import ROWS, golden_frame

GOLDEN = Path(__file__).parent / "fixtures" / "golden.idx"


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
    for buf in (ours, theirs):      # build time and the header CRC legitimately differ
        buf[40:48] = bytes(8)
        buf[20:24] = bytes(4)
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
    "wrong version": (lambda d: (struct.pack_into("<H", d, 8, 2), _reseal(d)), "format version 2"),
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


def test_corrupt_offsets_never_crash_or_read_out_of_bounds(tmp_path):
    """Garbage in the cell table and hash table: answers may be lost, never invented."""
    def scramble(d: bytearray) -> None:
        h = ff.parse_header(bytes(d), "x", len(d))
        lay = h.layout
        rng = np.random.default_rng(0)
        d[lay.cells_offset:lay.file_size] = rng.integers(0, 256, lay.file_size - lay.cells_offset,
                                                         dtype=np.uint8).tobytes()
    path = _damaged(tmp_path, scramble)
    truth = oracle.dedupe(golden_frame())
    with lootlab.open_index(path) as idx:
        for row in ROWS:
            rec = idx.get(*row[:3])
            assert rec is None or tuple(rec) == oracle.get(truth, *row[:3])
        got = oracle.canonical(idx.near(0, 0, 0, 2**27))
        full = oracle.canonical(oracle.as_results(truth))
        assert set(map(tuple, got.tolist())) <= set(map(tuple, full.tolist()))
        found, _ = idx.get_many(np.array([r[:3] for r in ROWS]))
        assert len(found) == len(ROWS)


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(lootlab.InvalidIndexError, match="no such file"):
        lootlab.open_index(tmp_path / "nope.idx")
    with pytest.raises(lootlab.InvalidIndexError, match="directory"):
        lootlab.open_index(tmp_path)


def test_cli_query_reports_a_bad_file_without_traceback(tmp_path):
    bad = _damaged(tmp_path, lambda d: d[:-1])
    proc = subprocess.run([sys.executable, "-m", "lootlab.cli", "query", str(bad), "get", "0", "0", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "truncated" in proc.stderr and str(bad) in proc.stderr
    assert "Traceback" not in proc.stderr
