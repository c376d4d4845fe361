"""The index file format: header, section layout, checksums and the checks made at open.

See ``docs/FORMAT.md`` for the specification a reader can be written from.  Everything
here is pure (bytes in, values out); mapping the file is ``index.py``'s job.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import InvalidIndexError
from .records import RECORD_SIZE

MAGIC = b"LOOTIDX\x00"
FORMAT_VERSION = 1
BYTE_ORDER_TAG = 0x01020304
HEADER_SIZE = 256
ALIGN = 64
SOURCE_VERSION_MAX = 126
DEFAULT_CELL_SHIFT = 5          # 32 x 32 block columns
HASH_MULTIPLIER = 0x9E3779B97F4A7C15
HASH_EMPTY = 0xFFFFFFFF
HASH_MAX_LOAD = 0.7
_MASK64 = (1 << 64) - 1

_HEADER = struct.Struct("<8sHHIHBBIQQQII6iQQQQQQH126s")
assert _HEADER.size == HEADER_SIZE
_HEADER_CRC_OFFSET = 20


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
            0, self.record_count, self.generation, self.build_time_ns, self.body_crc32, 0,
            *self.bbox_min, *self.bbox_max, lay.records_offset, lay.cells_offset,
            self.cell_count, lay.hash_offset, self.hash_slots, lay.file_size,
            len(src), src))
        struct.pack_into("<I", raw, _HEADER_CRC_OFFSET, zlib.crc32(raw))
        return bytes(raw)

    def with_crc(self, body_crc32: int) -> "Header":
        return replace(self, body_crc32=body_crc32)


def parse_header(buf: bytes | memoryview, path: str | Path, file_size: int) -> Header:
    """Decode and check a header against the file's real size; raise InvalidIndexError."""
    if file_size < HEADER_SIZE or len(buf) < HEADER_SIZE:
        raise InvalidIndexError(path, f"too small to be a lootlab index ({file_size} bytes; "
                                      f"the header alone is {HEADER_SIZE})")
    head = bytes(buf[:HEADER_SIZE])
    (magic, version, header_size, order, record_size, cell_shift, _flags, header_crc,
     count, generation, build_ns, body_crc, _res, x0, y0, z0, x1, y1, z1,
     rec_off, cells_off, cell_count, hash_off, hash_slots, size, src_len, src) = _HEADER.unpack(head)
    if magic != MAGIC:
        raise InvalidIndexError(path, f"not a lootlab index (magic {magic!r}, expected {MAGIC!r})")
    if order != BYTE_ORDER_TAG:
        raise InvalidIndexError(path, f"byte-order tag {order:#010x}: written for another byte order")
    if version != FORMAT_VERSION:
        raise InvalidIndexError(path, f"format version {version}; this lootlab reads version "
                                      f"{FORMAT_VERSION} (rebuild the index with `lootlab build`)")
    check = bytearray(head)
    struct.pack_into("<I", check, _HEADER_CRC_OFFSET, 0)
    if zlib.crc32(check) != header_crc:
        raise InvalidIndexError(path, "header checksum mismatch: the header is corrupt")
    if header_size != HEADER_SIZE or record_size != RECORD_SIZE:
        raise InvalidIndexError(path, f"header size {header_size} / record size {record_size}; "
                                      f"expected {HEADER_SIZE} / {RECORD_SIZE}")
    if not 0 <= cell_shift <= 26:
        raise InvalidIndexError(path, f"cell shift {cell_shift} is outside [0, 26]")
    if hash_slots < 8 or hash_slots & (hash_slots - 1) or hash_slots < count or count >= HASH_EMPTY:
        raise InvalidIndexError(path, f"hash table of {hash_slots} slots cannot hold {count} records")
    if cell_count > count:
        raise InvalidIndexError(path, f"{cell_count} cells for {count} records")
    if src_len > SOURCE_VERSION_MAX:
        raise InvalidIndexError(path, "source-version length out of range")
    header = Header(count, cell_shift, cell_count, hash_slots, generation, build_ns, body_crc,
                    (x0, y0, z0), (x1, y1, z1), src[:src_len].decode("utf-8", "replace"), version)
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
