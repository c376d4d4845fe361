"""Records -> index file: validate, de-duplicate, order spatially, hash, publish atomically."""

from __future__ import annotations

import os
import secrets
import stat
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


class BuildOptionError(LootlabError, ValueError):
    """A build option (generation, cell shift, source version, lineage) is out of range."""


_U64_MAX = (1 << 64) - 1


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

    def __repr__(self) -> str:
        return (f"BuildReport(path={self.path!r}, records={self.records:,}, "
                f"input_rows={self.input_rows:,}, "
                f"duplicates_replaced={self.duplicates_replaced:,}, "
                f"bytes={self.bytes:,}, seconds={self.seconds:.3f}, crc32={self.crc32:#010x}, "
                f"generation={self.generation}, cells={self.cells:,}, "
                f"source_version={self.source_version!r})")


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
    """The header of the index at ``path`` (read, not mapped), or None when there is no valid one.

    Never blocks: a FIFO or device at the path is "no valid index", not a read that waits.
    """
    try:
        fd = ff.open_regular(path)
    except (OSError, InvalidIndexError):
        return None
    try:
        return ff.parse_header(os.pread(fd, ff.HEADER_SIZE, 0), path, os.fstat(fd).st_size)
    except (OSError, InvalidIndexError):
        return None
    finally:
        os.close(fd)


def is_outdated(path: str | Path) -> bool:
    """Whether ``path`` holds a lootlab index of another format version (to be rebuilt)."""
    version = ff.read_version(path)
    return version is not None and version != ff.FORMAT_VERSION


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


def _hash_table(keys: np.ndarray, slots: int) -> tuple[np.ndarray, int]:
    """Open-addressing table (linear probing) of record numbers, built vectorised.

    Returns the table and its longest probe sequence: each round moves every unplaced key
    one slot on, so a key placed in round t sits t - 1 slots past its home, behind only
    occupied slots, and a lookup finds it on probe t.  Readers stop after that many.
    """
    table = np.full(slots, ff.HASH_EMPTY, dtype=np.uint32)
    bits = slots.bit_length() - 1
    pos = ((keys * np.uint64(ff.HASH_MULTIPLIER)) >> np.uint64(64 - bits)).astype(np.int64)
    pending = np.arange(len(keys), dtype=np.int64)
    mask = slots - 1
    rounds = 0
    while pending.size:
        rounds += 1
        p = pos[pending]
        free = np.flatnonzero(table[p] == ff.HASH_EMPTY)
        slots_won, first = np.unique(p[free], return_index=True)
        table[slots_won] = pending[free[first]]
        placed = np.zeros(pending.size, dtype=bool)
        placed[free[first]] = True
        pending = pending[~placed]
        pos[pending] = (pos[pending] + 1) & mask
    return table, rounds


def check_options(generation: object, cell_shift: object, source_version: object,
                  lineage: object = None) -> None:
    """Refuse build options the file cannot hold, with a message naming the option."""
    def is_int(v: object) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
    if not is_int(generation) or not 0 <= int(generation) <= _U64_MAX:
        raise BuildOptionError(f"generation must be an integer in [0, 2**64 - 1], got "
                               f"{generation!r}")
    if not is_int(cell_shift) or not 0 <= int(cell_shift) <= 26:
        raise BuildOptionError(f"cell shift must be an integer in [0, 26], got {cell_shift!r}")
    if not isinstance(source_version, str):
        raise BuildOptionError(f"source version must be a string, got {source_version!r}")
    size = len(source_version.encode("utf-8", "surrogatepass"))
    if size > ff.SOURCE_VERSION_MAX:
        raise BuildOptionError(f"source version is {size} bytes; at most {ff.SOURCE_VERSION_MAX}")
    if lineage is not None and (not is_int(lineage) or not 1 <= int(lineage) <= _U64_MAX):
        raise BuildOptionError(f"lineage must be an integer in [1, 2**64 - 1], got {lineage!r}")


def new_lineage() -> int:
    """A fresh random lineage id (never 0, which means "unset")."""
    return secrets.randbits(64) or 1


def encode_index(records: pd.DataFrame | np.ndarray, *, generation: int, source_version: str = "",
                 cell_shift: int = ff.DEFAULT_CELL_SHIFT) -> tuple[list[bytes | memoryview], ff.Header, int, int]:
    """Validate and lay out records; returns (body pieces, header, input rows, duplicates).

    The header's lineage is left unset (0): ``publish`` decides it, from the file it replaces.
    """
    check_options(generation, cell_shift, source_version)
    generation, cell_shift = int(generation), int(cell_shift)
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
    table, max_probe = _hash_table(rec["key"], slots)
    table = table.astype("<u4")

    if n:
        bmin = tuple(int(cols[a][keep].min()) for a in ("x", "y", "z"))
        bmax = tuple(int(cols[a][keep].max()) for a in ("x", "y", "z"))
    else:
        bmin, bmax = (0, 0, 0), (-1, -1, -1)
    header = ff.Header(n, cell_shift, len(cell_list), slots, generation, time.time_ns(), 0,
                       bmin, bmax, source_version, max_probe=max_probe)
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


def _remove_quietly(path: Path) -> None:
    """Best-effort cleanup: on a read-only or broken filesystem this fails too, and must not
    hide the error that made the publish fail."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _refuse_non_regular(path: Path) -> None:
    """Never replace a FIFO, socket or device at the output path (``/dev/null`` as root...)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return        # nothing there (or no such directory): creating parents says why
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise PublishError(f"cannot publish index {path}: the path is {kind}")


def _lineage_for(path: Path) -> int:
    """The lineage of the valid index being replaced (continuing it), else a fresh one."""
    current = read_header(path)
    return current.lineage if current is not None else new_lineage()


def publish(pieces: list[bytes | memoryview], header: ff.Header, path: Path) -> None:
    """Write to a temp file beside ``path``, fsync, validate, rename over, fsync the dir.

    Never writes to ``path`` itself: readers may have it mapped (SIGBUS otherwise).  A
    header whose lineage is unset (0) continues the lineage of the valid index at ``path``,
    or starts a new one.  Any OSError becomes one PublishError naming the path and reason.
    """
    path = Path(path)
    _refuse_non_regular(path)
    if not header.lineage:
        header = header.with_lineage(_lineage_for(path))
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
        _remove_quietly(tmp)


def _make_parent(path: Path) -> None:
    """Create missing parent directories (the rule for every lootlab output)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublishError(f"cannot publish index {path}: cannot create directory "
                           f"{path.parent}: {exc.strerror or exc}") from exc
    if not path.parent.is_dir():
        raise PublishError(f"cannot publish index {path}: {path.parent} is not a directory")


def build_index(records: pd.DataFrame | np.ndarray | str | Path, path: str | Path, *,
                generation: int | None = None, source_version: str = "",
                cell_shift: int = ff.DEFAULT_CELL_SHIFT, lineage: int | None = None) -> BuildReport:
    """Build an index file from a loot table (DataFrame, structured array or table path).

    Duplicated positions: the later row wins and is counted.  The generation defaults
    to one more than the index already at ``path`` (1 for a new one).  ``lineage``
    defaults to the lineage of the valid index being replaced, or a fresh random one,
    so readers can tell a continuation from a file built afresh (see docs/rebuild.md).
    Missing parent directories are created.
    """
    started = time.perf_counter()
    path = Path(path)
    check_options(0 if generation is None else generation, cell_shift, source_version, lineage)
    if isinstance(records, (str, Path)):
        records = read_table(records)
    _refuse_non_regular(path)
    _make_parent(path)
    if generation is None:
        previous = read_generation(path)
        generation = (previous or 0) + 1
        if generation > _U64_MAX:
            raise BuildOptionError(f"the index at {path} is at generation {previous}, the last "
                                   f"one; pass generation= explicitly or build a new lineage")
    pieces, header, n_in, dups = encode_index(records, generation=generation,
                                              source_version=source_version, cell_shift=cell_shift)
    if lineage is not None:
        header = header.with_lineage(int(lineage))
    publish(pieces, header, path)
    return BuildReport(str(path), header.record_count, n_in, dups, header.layout.file_size,
                       time.perf_counter() - started, header.body_crc32, generation,
                       header.cell_count, source_version)
