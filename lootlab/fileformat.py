"""The index file format: header, section layout, checksums and the checks made at open.

See ``docs/FORMAT.md`` for the specification a reader can be written from.  Everything
here is pure (bytes in, values out); mapping the file is ``index.py``'s job.
"""

from __future__ import annotations

import os
import stat
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import InvalidIndexError
from .records import RECORD_SIZE, X_MAX, X_MIN, Y_MAX, Y_MIN, Z_MAX, Z_MIN

MAGIC = b"LOOTIDX\x00"
FORMAT_VERSION = 2
BYTE_ORDER_TAG = 0x01020304
HEADER_SIZE = 320
ALIGN = 64
SOURCE_VERSION_MAX = 126
DEFAULT_CELL_SHIFT = 5          # 32 x 32 block columns
HASH_MULTIPLIER = 0x9E3779B97F4A7C15
HASH_EMPTY = 0xFFFFFFFF
HASH_MAX_LOAD = 0.7
_MASK64 = (1 << 64) - 1

_HEADER = struct.Struct("<8sHHIHBBIQQQII6iQQQQQQH126sQ56s")
assert _HEADER.size == HEADER_SIZE
_HEADER_CRC_OFFSET = 20
_VERSION = struct.Struct("<8sH")   # magic and version: enough to tell an outdated file
EMPTY_BBOX = ((0, 0, 0), (-1, -1, -1))
_AXIS_RANGES = ((X_MIN, X_MAX), (Y_MIN, Y_MAX), (Z_MIN, Z_MAX))


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def hash_slots_for(count: int) -> int:
    """Power-of-two slot count keeping the load factor at or below ``HASH_MAX_LOAD``."""
    slots = 8
    while slots * HASH_MAX_LOAD < count:
        slots *= 2
    return slots


@dataclass(frozen=True)
class Layout:
    """Byte offsets of every section; a pure function of the three counts."""

    records_offset: int
    cells_offset: int
    hash_offset: int
    file_size: int

    @classmethod
    def of(cls, record_count: int, cell_count: int, hash_slots: int) -> "Layout":
        records = HEADER_SIZE
        cells = align(records + record_count * RECORD_SIZE)
        hashes = align(cells + cell_count * 8 + (cell_count + 1) * 8)
        end = hashes + hash_slots * 4
        return cls(records, cells, hashes, end)


@dataclass(frozen=True)
class Header:
    """The decoded 256-byte header."""

    record_count: int
    cell_shift: int
    cell_count: int
    hash_slots: int
    generation: int
    build_time_ns: int
    body_crc32: int
    bbox_min: tuple[int, int, int]
    bbox_max: tuple[int, int, int]
    source_version: str = ""
    version: int = FORMAT_VERSION
    max_probe: int = 0          # longest hash probe sequence of any record (0: empty index)
    lineage: int = 0            # random id a publisher keeps across generations (0: unset)

    @property
    def layout(self) -> Layout:
        return Layout.of(self.record_count, self.cell_count, self.hash_slots)

    @property
    def hash_bits(self) -> int:
        return self.hash_slots.bit_length() - 1

    def pack(self) -> bytes:
        src = self.source_version.encode("utf-8")
        if len(src) > SOURCE_VERSION_MAX:
            raise ValueError(f"source version is {len(src)} bytes; at most {SOURCE_VERSION_MAX}")
        lay = self.layout
        raw = bytearray(_HEADER.pack(
            MAGIC, self.version, HEADER_SIZE, BYTE_ORDER_TAG, RECORD_SIZE, self.cell_shift, 0,
            0, self.record_count, self.generation, self.build_time_ns, self.body_crc32,
            self.max_probe, *self.bbox_min, *self.bbox_max, lay.records_offset,
            lay.cells_offset, self.cell_count, lay.hash_offset, self.hash_slots, lay.file_size,
            len(src), src, self.lineage, b""))
        struct.pack_into("<I", raw, _HEADER_CRC_OFFSET, zlib.crc32(raw))
        return bytes(raw)

    def with_crc(self, body_crc32: int) -> "Header":
        return replace(self, body_crc32=body_crc32)

    def with_lineage(self, lineage: int) -> "Header":
        return replace(self, lineage=lineage)


def open_regular(path: str | Path) -> int:
    """Open ``path`` read-only without ever blocking; refuse anything but a regular file.

    A FIFO at the path would block a plain ``open`` forever (and a reader's refresh with
    it), so: stat first (no open at all for a FIFO, socket or device), then open with
    O_NONBLOCK and re-check the descriptor, in case the path was swapped in between.
    Raises OSError for a missing file, InvalidIndexError for a non-regular one.
    """
    _require_regular(os.stat(path).st_mode, path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        _require_regular(os.fstat(fd).st_mode, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def _require_regular(mode: int, path: str | Path) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise InvalidIndexError(path, f"is {kind}, not an index file")


def read_version(path: str | Path) -> int | None:
    """The format version of a lootlab index at ``path`` (any version), or None if it is none."""
    try:
        fd = open_regular(path)
    except (OSError, InvalidIndexError):
        return None
    try:
        head = os.pread(fd, _VERSION.size, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(head) < _VERSION.size:
        return None
    magic, version = _VERSION.unpack(head)
    return version if magic == MAGIC else None


def parse_header(buf: bytes | memoryview, path: str | Path, file_size: int) -> Header:
    """Decode and check a header against the file's real size; raise InvalidIndexError.

    Every field a query uses is range-checked here, so no header value can make a query
    loop past a table, overflow an integer type or allocate more than the file holds.
    """
    head = bytes(buf[:HEADER_SIZE])
    if file_size < 16 or len(head) < 16:
        raise _too_small(path, file_size)
    magic, version = _VERSION.unpack_from(head)
    if magic != MAGIC:
        raise InvalidIndexError(path, f"not a lootlab index (magic {magic!r}, expected {MAGIC!r})")
    (order,) = struct.unpack_from("<I", head, 12)
    if order != BYTE_ORDER_TAG:
        raise InvalidIndexError(path, f"byte-order tag {order:#010x}: written for another byte order")
    if version != FORMAT_VERSION:
        raise InvalidIndexError(path, f"format version {version}; this lootlab reads version "
                                      f"{FORMAT_VERSION} (rebuild the index with `lootlab build`)")
    if file_size < HEADER_SIZE or len(head) < HEADER_SIZE:
        raise _too_small(path, file_size)
    (_, _, header_size, _, record_size, cell_shift, _flags, header_crc, count, generation,
     build_ns, body_crc, max_probe, x0, y0, z0, x1, y1, z1, rec_off, cells_off, cell_count,
     hash_off, hash_slots, size, src_len, src, lineage, _res) = _HEADER.unpack(head)
    check = bytearray(head)
    struct.pack_into("<I", check, _HEADER_CRC_OFFSET, 0)
    if zlib.crc32(check) != header_crc:
        raise InvalidIndexError(path, "header checksum mismatch: the header is corrupt")
    if header_size != HEADER_SIZE or record_size != RECORD_SIZE:
        raise InvalidIndexError(path, f"header size {header_size} / record size {record_size}; "
                                      f"expected {HEADER_SIZE} / {RECORD_SIZE}")
    _check_counts(path, count, cell_shift, cell_count, hash_slots, max_probe)
    _check_bbox(path, count, (x0, y0, z0), (x1, y1, z1))
    if src_len > SOURCE_VERSION_MAX:
        raise InvalidIndexError(path, f"source-version length {src_len} is above "
                                      f"{SOURCE_VERSION_MAX}")
    if lineage == 0:
        raise InvalidIndexError(path, "lineage id is 0 (unset): not written by a lootlab publisher")
    header = Header(count, cell_shift, cell_count, hash_slots, generation, build_ns, body_crc,
                    (x0, y0, z0), (x1, y1, z1), src[:src_len].decode("utf-8", "replace"), version,
                    max_probe, lineage)
    lay = header.layout
    if (rec_off, cells_off, hash_off, size) != (lay.records_offset, lay.cells_offset,
                                                lay.hash_offset, lay.file_size):
        raise InvalidIndexError(path, "section table does not match the record counts")
    if file_size < size:
        raise InvalidIndexError(path, f"truncated: the header says {size} bytes, "
                                      f"the file has {file_size}")
    if file_size > size:
        raise InvalidIndexError(path, f"{file_size - size} unexpected trailing bytes "
                                      f"(header says {size} bytes)")
    return header


def _too_small(path: str | Path, file_size: int) -> InvalidIndexError:
    return InvalidIndexError(path, f"too small to be a lootlab index ({file_size} bytes; "
                                   f"the header alone is {HEADER_SIZE})")


def _check_counts(path: str | Path, count: int, cell_shift: int, cell_count: int,
                  hash_slots: int, max_probe: int) -> None:
    """Record, cell and hash-table sizes: consistent with each other and with the format."""
    if not 0 <= cell_shift <= 26:
        raise InvalidIndexError(path, f"cell shift {cell_shift} is outside [0, 26]")
    if count >= HASH_EMPTY:
        raise InvalidIndexError(path, f"record count {count} is above {HASH_EMPTY - 1}")
    if hash_slots < 8 or hash_slots & (hash_slots - 1) or hash_slots < count:
        raise InvalidIndexError(path, f"hash table of {hash_slots} slots cannot hold {count} records")
    if cell_count > count or (count > 0) != (cell_count > 0):
        raise InvalidIndexError(path, f"{cell_count} cells for {count} records")
    # a record's probe sequence only crosses occupied slots, so it is at most N long
    if not (1 <= max_probe <= count if count else max_probe == 0):
        raise InvalidIndexError(path, f"max probe length {max_probe} is outside "
                                      f"[{min(1, count)}, {count}] for {count} records")


def _check_bbox(path: str | Path, count: int, lo: tuple[int, int, int],
                hi: tuple[int, int, int]) -> None:
    """Bounding box: within the packable range with min <= max, or the empty form."""
    if not count:
        if (lo, hi) != EMPTY_BBOX:
            raise InvalidIndexError(path, f"bounding box {lo}..{hi} of an empty index is not "
                                          f"the empty form {EMPTY_BBOX[0]}..{EMPTY_BBOX[1]}")
        return
    for axis, a, b, (low, high) in zip("xyz", lo, hi, _AXIS_RANGES):
        if not low <= a <= b <= high:
            raise InvalidIndexError(path, f"bounding box {axis} {a}..{b} is not a range "
                                          f"within [{low}, {high}]")


def cell_table_problem(codes: np.ndarray, starts: np.ndarray, count: int) -> str | None:
    """What is wrong with a cell table (None: nothing): codes strictly ascending, starts
    non-decreasing from 0 to N.

    O(C) vectorised (C is about N / 30): it is what lets every query trust that its runs
    are disjoint, so no answer exceeds N rows, however the table was damaged.  Returns
    rather than raises so no traceback keeps views of the caller's mapping alive.
    """
    if len(codes) and not bool(np.all(codes[1:] > codes[:-1])):
        return "cell codes are not strictly ascending: the cell table is corrupt"
    if len(starts) != len(codes) + 1 or int(starts[0]) != 0 or int(starts[-1]) != count:
        return (f"cell starts do not run from 0 to the record count {count}: the cell table "
                f"is corrupt")
    if not bool(np.all(starts[1:] >= starts[:-1])):
        return "cell starts go backwards (overlapping cell runs): the cell table is corrupt"
    return None


def body_crc32(buf: bytes | memoryview, header: Header) -> int:
    """CRC32 of everything after the header, in 4 MiB steps (no big copies)."""
    view = memoryview(buf)
    crc = 0
    end = header.layout.file_size
    for start in range(HEADER_SIZE, end, 1 << 22):
        crc = zlib.crc32(view[start:min(end, start + (1 << 22))], crc)
    return crc & 0xFFFFFFFF


def verify_body(buf: bytes | memoryview, header: Header, path: str | Path) -> None:
    actual = body_crc32(buf, header)
    if actual != header.body_crc32:
        raise InvalidIndexError(path, f"body checksum mismatch (header {header.body_crc32:#010x}, "
                                      f"data {actual:#010x}): the file is corrupt")


def hash_slot(key: int, hash_bits: int) -> int:
    return ((key * HASH_MULTIPLIER) & _MASK64) >> (64 - hash_bits)
