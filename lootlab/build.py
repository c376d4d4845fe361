"""Records -> index file: validate, de-duplicate, order spatially, hash, publish atomically."""

from __future__ import annotations

import os
import secrets
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import fileformat as ff
from .errors import InvalidIndexError, LootlabError
from .records import RECORD_DTYPE, pack_keys
from .tables import columns_of, read_table, validate_columns

_BIAS = 1 << 25  # shifts x and z into [0, 2**26) before cutting them into cells


class PublishError(LootlabError):
    """Writing or publishing an index failed; whatever was published before is untouched."""


@dataclass(frozen=True)
class BuildReport:
    """What a build produced, for logs, the CLI and the rebuild worker."""

    path: str
    records: int
    input_rows: int
    duplicates_replaced: int
    bytes: int
    seconds: float
    crc32: int
    generation: int
    cells: int
    source_version: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def cell_codes(x: np.ndarray, z: np.ndarray, cell_shift: int) -> np.ndarray:
    """Column-cell code of each position: row (x cell) in the high bits, z cell below."""
    cx = (np.asarray(x, np.int64) + _BIAS) >> cell_shift
    cz = (np.asarray(z, np.int64) + _BIAS) >> cell_shift
    return ((cx << 26) | cz).astype(np.uint64)


def temp_path_for(path: Path) -> Path:
    """Temporary name in the same directory (so ``os.replace`` is atomic)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def is_temp_of(candidate: Path, path: Path) -> bool:
    return candidate.name.startswith(f".{path.name}.tmp-")


def read_header(path: str | Path) -> ff.Header | None:
    """The header of the index at ``path`` (read, not mapped), or None when there is no valid one."""
    try:
        with open(path, "rb") as f:
            head = f.read(ff.HEADER_SIZE)
            size = os.fstat(f.fileno()).st_size
        return ff.parse_header(head, path, size)
    except (OSError, InvalidIndexError):
        return None


def read_generation(path: str | Path) -> int | None:
    """The generation of the index at ``path``, or None when there is no valid one."""
    header = read_header(path)
    return header.generation if header else None


def _dedupe_later_wins(keys: np.ndarray) -> np.ndarray:
    """Row numbers to keep: for each key, its last row in input order."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    last = np.ones(len(keys), dtype=bool)
    last[:-1] = sorted_keys[:-1] != sorted_keys[1:]
    return order[last]


def _hash_table(keys: np.ndarray, slots: int) -> np.ndarray:
    """Open-addressing table (linear probing) of record numbers, built vectorised."""
    table = np.full(slots, ff.HASH_EMPTY, dtype=np.uint32)
    bits = slots.bit_length() - 1
    pos = ((keys * np.uint64(ff.HASH_MULTIPLIER)) >> np.uint64(64 - bits)).astype(np.int64)
    pending = np.arange(len(keys), dtype=np.int64)
    mask = slots - 1
    while pending.size:
        p = pos[pending]
        free = np.flatnonzero(table[p] == ff.HASH_EMPTY)
        slots_won, first = np.unique(p[free], return_index=True)
        table[slots_won] = pending[free[first]]
        placed = np.zeros(pending.size, dtype=bool)
        placed[free[first]] = True
        pending = pending[~placed]
        pos[pending] = (pos[pending] + 1) & mask
    return table


def encode_index(records: pd.DataFrame | np.ndarray, *, generation: int, source_version: str = "",
                 cell_shift: int = ff.DEFAULT_CELL_SHIFT) -> tuple[list[bytes | memoryview], ff.Header, int, int]:
    """Validate and lay out records; returns (body pieces, header, input rows, duplicates)."""
    cols = validate_columns(columns_of(records))
    n_in = len(cols["x"])
    keys = pack_keys(cols["x"], cols["y"], cols["z"])
    keep = _dedupe_later_wins(keys)
    codes = cell_codes(cols["x"][keep], cols["z"][keep], cell_shift)
    keep = keep[np.lexsort((keys[keep], codes))]
    codes = cell_codes(cols["x"][keep], cols["z"][keep], cell_shift)
    n = len(keep)

    rec = np.empty(n, RECORD_DTYPE)
    rec["key"] = keys[keep]
    for name in RECORD_DTYPE.names[1:]:
        rec[name] = cols[name][keep]

    change = np.ones(n, dtype=bool)
    change[1:] = codes[1:] != codes[:-1]
    cell_starts = np.flatnonzero(change)
    cell_list = codes[cell_starts].astype("<u8")
    starts = np.append(cell_starts, n).astype("<u8")
    slots = ff.hash_slots_for(n)
    table = _hash_table(rec["key"], slots).astype("<u4")

    if n:
        bmin = tuple(int(cols[a][keep].min()) for a in ("x", "y", "z"))
        bmax = tuple(int(cols[a][keep].max()) for a in ("x", "y", "z"))
    else:
        bmin, bmax = (0, 0, 0), (-1, -1, -1)
    header = ff.Header(n, cell_shift, len(cell_list), slots, generation, time.time_ns(), 0,
                       bmin, bmax, source_version)
    lay = header.layout
    pieces: list[bytes | memoryview] = [memoryview(rec).cast("B")]
    pad1 = lay.cells_offset - lay.records_offset - rec.nbytes
    pieces += [bytes(pad1), cell_list.tobytes(), starts.tobytes()]
    pad2 = lay.hash_offset - lay.cells_offset - cell_list.nbytes - starts.nbytes
    pieces += [bytes(pad2), table.tobytes()]
    crc = 0
    for piece in pieces:
        crc = zlib.crc32(piece, crc)
    return pieces, header.with_crc(crc & 0xFFFFFFFF), n_in, n_in - n


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(pieces: list[bytes | memoryview], header: ff.Header, path: Path) -> None:
    """Write to a temp file beside ``path``, fsync, validate, rename over, fsync the dir.

    Never writes to ``path`` itself: readers may have it mapped (SIGBUS otherwise).
    """
    tmp = temp_path_for(path)
    try:
        with open(tmp, "xb") as f:
            f.write(header.pack())
            for piece in pieces:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        with open(tmp, "rb") as f:
            data = f.read()
        ff.verify_body(data, ff.parse_header(data, tmp, len(data)), tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise PublishError(f"cannot publish index {path}: {exc.strerror or exc} "
                           f"(the previous index, if any, is untouched)") from exc
    finally:
        tmp.unlink(missing_ok=True)


def build_index(records: pd.DataFrame | np.ndarray | str | Path, path: str | Path, *,
                generation: int | None = None, source_version: str = "",
                cell_shift: int = ff.DEFAULT_CELL_SHIFT) -> BuildReport:
    """Build an index file from a loot table (DataFrame, structured array or table path).

    Duplicated positions: the later row wins and is counted.  The generation defaults
    to one more than the index already at ``path`` (1 for a new one).
    """
    started = time.perf_counter()
    path = Path(path)
    if isinstance(records, (str, Path)):
        records = read_table(records)
    if not path.parent.is_dir():
        raise PublishError(f"cannot publish index {path}: directory {path.parent} does not exist")
    if generation is None:
        generation = (read_generation(path) or 0) + 1
    pieces, header, n_in, dups = encode_index(records, generation=generation,
                                              source_version=source_version, cell_shift=cell_shift)
    publish(pieces, header, path)
    return BuildReport(str(path), header.record_count, n_in, dups, header.layout.file_size,
                       time.perf_counter() - started, header.body_crc32, generation,
                       header.cell_count, source_version)
