"""``LootIndex``: the memory-mapped index, its queries, and generation swaps under readers.

Opening maps the file and checks the header and sizes: constant time, no per-record
Python objects.  Each query takes one ``_Snapshot`` (one mapping of one generation) and
uses only it, so a query never mixes generations.  A swap is noticed by comparing the
path's file identity (device, inode, size, mtime_ns) at most every ``refresh_interval``
seconds; the old mapping is released when the last query holding it returns.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from . import fileformat as ff
from .errors import InvalidIndexError, QueryError
from .records import (RECORD_SIZE, RESULT_DTYPE, X_SHIFT, Y_BITS, Z_BITS, LootRecord,
                      Records, empty_results, in_range, pack_key, pack_keys, to_results,
                      unpack_keys, words_to_results)

try:  # the optional C inner loops (lootlab/_kernels.c); numpy does the same without them
    from . import _kernels
except ImportError:  # pragma: no cover - a build without a C compiler
    _kernels = None
if os.environ.get("LOOTLAB_NO_KERNELS"):
    _kernels = None

_BIAS = 1 << 25
_scratch = threading.local()   # per-thread result buffer for the C kernels
_U32 = struct.Struct("<I")
_REC = struct.Struct("<QIIHBBI")
_MAX_R = 1 << 28          # farther than any two packable positions
_ROW = np.dtype("V24")
_ROWS_BY_SEARCH = 64      # wider than this many cell rows, scan cells instead of rows
_RUNS_BY_SLICES = 16      # up to this many runs, gather by slicing; beyond, by index


class _Snapshot:
    """One mapped generation: the header and zero-copy numpy views of its sections."""

    __slots__ = ("mm", "header", "ident", "raw", "keys", "codes", "starts", "table", "n",
                 "hash_shift", "hash_mask", "hash_offset", "records_offset", "shift",
                 "bmin", "bmax", "max_probe", "lineage", "__weakref__")

    def __init__(self, path: Path, verify: bool):
        fd = ff.open_regular(path)      # never blocks: a FIFO at the path is refused
        try:
            st = os.fstat(fd)
            if st.st_size < ff.HEADER_SIZE:
                ff.parse_header(os.pread(fd, ff.HEADER_SIZE, 0), path, st.st_size)  # says why
            mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        try:
            # a bytes copy, not a memoryview: an exception traceback holding an exported
            # view would make mm.close() raise BufferError and hide the real error
            header = ff.parse_header(mm[:ff.HEADER_SIZE], path, st.st_size)
            if verify:
                ff.verify_body(mm, header, path)
            lay = header.layout
            c = header.cell_count
            codes = np.frombuffer(mm, "<u8", count=c, offset=lay.cells_offset)
            starts = np.frombuffer(mm, "<i8", count=c + 1, offset=lay.cells_offset + 8 * c)
            problem = ff.cell_table_problem(codes, starts, header.record_count)
            if problem:
                raise InvalidIndexError(path, problem)
        except BaseException:
            codes = starts = None
            mm.close()
            raise
        lay = header.layout
        n, c = header.record_count, header.cell_count
        self.mm = mm
        self.header = header
        self.ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self.n = n
        # (n, 3) uint64 words: a copy of a run is one memcpy, not a per-field loop
        self.raw = np.frombuffer(mm, "<u8", count=3 * n, offset=lay.records_offset).reshape(n, 3)
        self.keys = self.raw[:, 0]
        self.codes, self.starts = codes, starts
        self.table = np.frombuffer(mm, "<u4", count=header.hash_slots, offset=lay.hash_offset)
        self.hash_shift = 64 - header.hash_bits
        self.hash_mask = header.hash_slots - 1
        self.hash_offset = lay.hash_offset
        self.records_offset = lay.records_offset
        self.shift = header.cell_shift
        self.bmin, self.bmax = header.bbox_min, header.bbox_max
        self.max_probe = header.max_probe    # a miss costs at most this many probes
        self.lineage = header.lineage

    # -- spatial runs -------------------------------------------------------------------
    def runs(self, x0: int, x1: int, z0: int, z1: int) -> tuple[list[int], list[int]]:
        """Record ranges [start, end) of every cell row overlapping x0..x1, z0..z1."""
        s = self.shift
        r0, r1 = (x0 + _BIAS) >> s, (x1 + _BIAS) >> s
        cz0, cz1 = (z0 + _BIAS) >> s, ((z1 + _BIAS) >> s) + 1
        if r1 - r0 >= _ROWS_BY_SEARCH:
            return self._runs_by_scan(r0, r1, cz0, cz1)
        bounds = []
        for row in range(r0, r1 + 1):
            bounds += ((row << 26) + cz0, (row << 26) + cz1)   # cz1 may be 2**26: add, not OR
        at = self.starts[np.searchsorted(self.codes, np.array(bounds, np.uint64))].tolist()
        # Never trust an offset read from the file: clamp run bounds to [0, n].
        n = self.n
        at = [0 if v < 0 else n if v > n else v for v in at]
        starts, ends = at[0::2], at[1::2]
        return starts, ends

    def _runs_by_scan(self, r0: int, r1: int, cz0: int, cz1: int) -> tuple[np.ndarray, np.ndarray]:
        """Wide boxes: scan the cells of rows r0..r1 (bounded by the cell count, not the width)."""
        a, b = np.searchsorted(self.codes, np.array([r0 << 26, (r1 + 1) << 26], np.uint64)).tolist()
        cz = self.codes[a:b] & np.uint64((1 << 26) - 1)
        cells = a + np.flatnonzero((cz >= np.uint64(cz0)) & (cz < np.uint64(cz1)))
        starts = self.starts[cells].clip(0, self.n)
        ends = self.starts[cells + 1].clip(0, self.n)
        return starts, ends

    def query_cells(self, mode: int, x0: int, x1: int, z0: int, z1: int,
                    params: tuple[int, ...]) -> Records:
        """One whole near (mode 0) or box (mode 1) query in the C kernel, GIL released.

        Hits land in a per-thread scratch buffer (a fresh one per query would cost page
        faults, more than the selection) and are copied out as plain words.
        """
        x0, x1 = max(x0, self.bmin[0]), min(x1, self.bmax[0])
        z0, z1 = max(z0, self.bmin[2]), min(z1, self.bmax[2])
        scratch = getattr(_scratch, "rows", None)
        if scratch is None:
            scratch = _scratch.rows = np.empty(4096, RESULT_DTYPE)
        while True:
            count = _kernels.query_cells(self.raw, self.codes, self.starts, self.shift,
                                         x0, x1, z0, z1, mode, *params, scratch)
            if count <= len(scratch):
                break
            scratch = _scratch.rows = np.empty(max(count, 2 * len(scratch)), RESULT_DTYPE)
        out = np.empty(count, RESULT_DTYPE)
        # copy as plain words: numpy copies structured dtypes field by field, ~10x slower
        out.view(np.uint64)[:] = scratch[:count].view(np.uint64)
        return out.view(Records)

    def gather(self, x0: int, x1: int, z0: int, z1: int) -> np.ndarray:
        """Records of all cells overlapping the column box (a superset of the answer)."""
        raw = self.raw
        x0, x1 = max(x0, self.bmin[0]), min(x1, self.bmax[0])
        z0, z1 = max(z0, self.bmin[2]), min(z1, self.bmax[2])
        if not self.n or x0 > x1 or z0 > z1:
            return raw[:0]
        starts, ends = self.runs(x0, x1, z0, z1)
        if len(starts) <= _RUNS_BY_SLICES:
            parts = [raw[a:b] for a, b in zip(starts, ends) if b > a]
            if len(parts) == 1:
                return parts[0]
            return np.concatenate(parts) if parts else raw[:0]
        lo, hi = np.asarray(starts), np.asarray(ends)
        lengths = np.maximum(hi - lo, 0)
        total = int(lengths.sum())
        offsets = np.repeat(lo - (np.cumsum(lengths) - lengths), lengths)
        return raw[offsets + np.arange(total)]

    def covers(self, x0: int, x1: int, z0: int, z1: int) -> bool:
        return x0 <= self.bmin[0] and x1 >= self.bmax[0] and z0 <= self.bmin[2] and z1 >= self.bmax[2]


def _results(cand: np.ndarray, sel: np.ndarray) -> Records:
    """Results for the record words ``cand[sel]`` (a void view makes the pick one memcpy a row)."""
    picked = cand.view(_ROW).reshape(-1)[sel] if cand.flags.c_contiguous else cand[sel]
    return words_to_results(picked.view(np.uint64).reshape(-1, 3))


def _distance2(words: np.ndarray, x: int, y: int, z: int) -> np.ndarray:
    """Squared distance from (x, y, z) to each record; decodes keys in place (few temporaries)."""
    k = words[:, 0].view(np.int64)
    d2 = k >> X_SHIFT
    d2 -= x
    d2 *= d2
    t = k << (64 - X_SHIFT)
    t >>= 64 - Z_BITS
    t -= z
    t *= t
    d2 += t
    np.left_shift(k, 64 - Y_BITS, out=t)
    t >>= 64 - Y_BITS
    t -= y
    t *= t
    d2 += t
    return d2


def _coord(v: object) -> int:
    """One coordinate as an int: Python and numpy integers, or floats with no fraction.

    Anything else (a fractional float, a string, a bool, None) is a QueryError, never
    truncated or parsed: ``get(x + 0.9, y, z)`` must not answer for ``x``.
    """
    if type(v) is int:
        return v
    if isinstance(v, (bool, np.bool_)):
        raise QueryError(f"coordinates must be integers, got the bool {v!r}")
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
        return int(v)
    raise QueryError(f"coordinates must be integers, got {v!r} ({type(v).__name__})")


def _check_point(x: object, y: object, z: object) -> tuple[int, int, int]:
    x, y, z = _coord(x), _coord(y), _coord(z)
    if not in_range(x, y, z):
        raise QueryError(f"position ({x}, {y}, {z}) is outside the packable range "
                         f"(x, z in [-33554432, 33554431], y in [-2048, 2047])")
    return x, y, z


def _check_corner(name: str, corner: object) -> tuple[int, int, int]:
    """A box corner: exactly three coordinates."""
    try:
        values = tuple(corner)  # type: ignore[call-overload]
    except TypeError:
        raise QueryError(f"box {name} must be (x, y, z), got {corner!r}") from None
    if len(values) != 3 or isinstance(corner, (str, bytes)):
        raise QueryError(f"box {name} must be (x, y, z), got {corner!r}")
    return _check_point(*values)


_XYZ_LIMITS = ((-_BIAS, _BIAS - 1), (-2048, 2047), (-_BIAS, _BIAS - 1))


def _positions(xyz: object) -> np.ndarray:
    """``get_many`` input as an (n, 3) int64 array, range-checked before any cast.

    Integers of any numpy width and floats with no fraction are accepted; bool, object
    (e.g. Python ints beyond 64 bits), str, complex and ragged input are QueryErrors.
    Values are checked in their own dtype, so a uint64 or a float 1e30 cannot wrap into
    range on the way to int64.
    """
    try:
        pts = np.asarray(xyz)
    except (TypeError, ValueError, OverflowError) as exc:
        raise QueryError(f"get_many expects an (n, 3) array of integer positions: {exc}") from None
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise QueryError(f"get_many expects an (n, 3) array of positions, got shape {pts.shape}")
    if pts.dtype.kind not in "iuf":
        raise QueryError(f"get_many positions must be integers, got dtype {pts.dtype}")
    if pts.dtype.kind == "f" and pts.size and not np.all(np.isfinite(pts) & (pts == np.floor(pts))):
        raise QueryError("get_many positions must be integers (found a fraction, inf or nan)")
    for axis, (low, high) in enumerate(_XYZ_LIMITS):
        col = pts[:, axis]
        bad = (col < low) | (col > high) if pts.dtype.kind != "u" else col > high
        if bad.any():
            row = int(np.argmax(bad))
            shown = ", ".join(str(v) for v in pts[row].tolist())
            raise QueryError(f"row {row}: position ({shown}) is outside the packable range")
    return pts.astype(np.int64, copy=False)


def _radius_squared(r: float) -> int:
    """Integer bound on dx²+dy²+dz² for radius ``r`` (exact for integer radii)."""
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, float, np.integer, np.floating)):
        raise QueryError(f"radius must be a number, got {r!r}")
    if not math.isfinite(r) or r < 0:
        raise QueryError(f"radius must be finite and >= 0, got {r!r}")
    if isinstance(r, (int, np.integer)):
        r = min(int(r), _MAX_R)
        return r * r
    return math.floor(min(float(r), float(_MAX_R)) ** 2)


class LootIndex:
    """A read-only, memory-mapped loot index.  Thread-safe; cheap to open.

    ``refresh_interval`` is how often (seconds) queries look for a newly published
    generation at the path; 0 checks on every query, None never (use ``refresh()``).
    """

    def __init__(self, path: str | Path, *, verify: bool = False,
                 refresh_interval: float | None = 0.05):
        self.path = Path(path)
        self.verify_on_open = verify   # not ``verify``: that is the method
        self.refresh_interval = refresh_interval
        self.last_swap_error: Exception | None = None
        self._lock = threading.Lock()
        self._rejected: tuple[int, int, int, int] | None = None
        try:
            self._snap: _Snapshot | None = _Snapshot(self.path, verify)
        except FileNotFoundError as exc:
            raise InvalidIndexError(self.path, "no such file (build one with `lootlab build`)") from exc
        except PermissionError as exc:
            raise InvalidIndexError(self.path, "permission denied") from exc
        except OSError as exc:
            raise InvalidIndexError(self.path, f"cannot open: {exc.strerror or exc}") from exc
        self._next_check = time.monotonic() + (refresh_interval or 0)

    # -- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        """Drop this index's mapping (released once no running query still holds it)."""
        self._snap = None

    def __enter__(self) -> "LootIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self._current().n

    def __repr__(self) -> str:
        snap = self._snap
        if snap is None:
            return f"<LootIndex {str(self.path)!r} closed>"
        return f"<LootIndex {str(self.path)!r} records={snap.n} generation={snap.header.generation}>"

    @property
    def generation(self) -> int:
        return self._current().header.generation

    @property
    def header(self) -> ff.Header:
        return self._current().header

    @property
    def lineage(self) -> int:
        """Random id of the file's lineage: a publisher keeps it while it replaces its own file."""
        return self._current().header.lineage

    @property
    def source_version(self) -> str:
        return self._current().header.source_version

    @property
    def closed(self) -> bool:
        return self._snap is None

    # -- generations --------------------------------------------------------------------
    def _current(self) -> _Snapshot:
        snap = self._snap
        if snap is None:
            raise ValueError(f"LootIndex {self.path} is closed")
        if self.refresh_interval is not None and time.monotonic() >= self._next_check:
            return self.refresh()
        return snap

    def refresh(self) -> _Snapshot:
        """Switch to the file now at the path if it is a different, valid index."""
        snap = self._snap
        if snap is None:
            raise ValueError(f"LootIndex {self.path} is closed")
        with self._lock:
            self._next_check = time.monotonic() + (self.refresh_interval or 0)
            snap = self._snap
            try:
                st = os.stat(self.path)
            except OSError as exc:
                self.last_swap_error = exc
                return snap
            ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if ident == snap.ident or ident == self._rejected:
                return snap
            try:
                new = _Snapshot(self.path, self.verify_on_open)
            except (OSError, InvalidIndexError) as exc:
                self.last_swap_error = exc   # keep serving the last good generation
                return snap
            if new.lineage == snap.lineage and new.header.generation < snap.header.generation:
                # Within a lineage generations never go backwards; a new lineage (a file
                # built afresh, e.g. after the old one was deleted) is swapped in whatever
                # its generation, so a reader never serves a dead lineage forever.
                self._rejected = new.ident
                self.last_swap_error = InvalidIndexError(
                    self.path, f"generation {new.header.generation} is older than the mapped "
                               f"generation {snap.header.generation} of the same lineage; "
                               f"not swapping")
                return snap
            self.last_swap_error = None
            self._snap = new
            return new

    def verify(self) -> None:
        """Check the body checksum of the current generation (reads the whole file)."""
        snap = self._current()
        ff.verify_body(snap.mm, snap.header, self.path)

    # -- queries ------------------------------------------------------------------------
    def sample(self, n: int, seed: int | None = 0) -> Records:
        """``n`` records drawn uniformly with replacement (so positions follow loot density)."""
        snap = self._current()
        if not snap.n:
            return empty_results()
        rows = np.random.default_rng(seed).integers(0, snap.n, n)
        return to_results(snap.raw[rows])

    def get(self, x: int, y: int, z: int) -> LootRecord | None:
        """The record at one block position, or None."""
        snap = self._current()
        if type(x) is not int or type(y) is not int or type(z) is not int or not in_range(x, y, z):
            x, y, z = _check_point(x, y, z)
        key = pack_key(x, y, z)
        mm, n, mask = snap.mm, snap.n, snap.hash_mask
        slot = ((key * ff.HASH_MULTIPLIER) & 0xFFFFFFFFFFFFFFFF) >> snap.hash_shift
        hoff, roff = snap.hash_offset, snap.records_offset
        for _ in range(snap.max_probe):   # no record lies farther from its home slot
            (i,) = _U32.unpack_from(mm, hoff + 4 * slot)
            if i == ff.HASH_EMPTY:
                return None
            if i < n:
                rec = _REC.unpack_from(mm, roff + RECORD_SIZE * i)
                if rec[0] == key:
                    return LootRecord(x, y, z, *rec[1:])
            slot = (slot + 1) & mask
        return None

    def get_many(self, xyz: np.ndarray) -> tuple[np.ndarray, Records]:
        """Batch ``get``: (n, 3) integer positions -> (found mask, records aligned with input).

        Rows not found are zero-filled; use ``records[found]``.
        """
        snap = self._current()
        pts = _positions(xyz)
        x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
        n = len(pts)
        found_at = np.full(n, -1, dtype=np.int64)
        if n and snap.n:
            keys = pack_keys(x, y, z)
            pos = ((keys * np.uint64(ff.HASH_MULTIPLIER)) >> np.uint64(snap.hash_shift)).astype(np.int64)
            pending = np.arange(n)
            table, rkeys, mask = snap.table, snap.keys, snap.hash_mask
            for _ in range(snap.max_probe):
                cand = table[pos[pending]].astype(np.int64)
                live = (cand != ff.HASH_EMPTY) & (cand < snap.n)
                hit = np.zeros(len(pending), dtype=bool)
                hit[live] = rkeys[cand[live]] == keys[pending[live]]
                found_at[pending[hit]] = cand[hit]
                pending = pending[(cand != ff.HASH_EMPTY) & ~hit]
                if not pending.size:
                    break
                pos[pending] = (pos[pending] + 1) & mask
        found = found_at >= 0
        out = np.zeros(n, RESULT_DTYPE)
        if found.any():
            out[found] = words_to_results(snap.raw[found_at[found]])
        return found, out.view(Records)

    def near(self, x: int, y: int, z: int, r: float) -> Records:
        """All records with dx²+dy²+dz² <= r², in file (spatial) order."""
        x, y, z = _check_point(x, y, z)
        r2 = _radius_squared(r)
        snap = self._current()
        reach = math.isqrt(r2)
        if not snap.n or y + reach < snap.bmin[1] or y - reach > snap.bmax[1]:
            return empty_results()
        if _kernels is not None:
            return snap.query_cells(0, x - reach, x + reach, z - reach, z + reach,
                                    (x, y, z, r2, 0, 0))
        cand = snap.gather(x - reach, x + reach, z - reach, z + reach)
        return _results(cand, _distance2(cand, x, y, z) <= r2)

    def box(self, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> Records:
        """All records with lo <= (x, y, z) <= hi on every axis (inclusive); empty if lo > hi."""
        x0, y0, z0 = _check_corner("lo", lo)
        x1, y1, z1 = _check_corner("hi", hi)
        snap = self._current()
        if not snap.n or x0 > x1 or y0 > y1 or z0 > z1:
            return empty_results()
        if y1 < snap.bmin[1] or y0 > snap.bmax[1]:
            return empty_results()
        if _kernels is not None:
            return snap.query_cells(1, x0, x1, z0, z1, (x0, y0, z0, x1, y1, z1))
        cand = snap.gather(x0, x1, z0, z1)
        cx, cy, cz = unpack_keys(cand[:, 0])
        sel = (cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1) & (cz >= z0) & (cz <= z1)
        return _results(cand, sel)

    def knn(self, x: int, y: int, z: int, k: int) -> Records:
        """The k nearest records, nearest first (ties broken by key); all if k > len."""
        x, y, z = _check_point(x, y, z)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise QueryError(f"k must be an integer >= 0, got {k!r}")
        snap = self._current()
        if k == 0 or not snap.n:
            return empty_results()
        k = min(int(k), snap.n)
        reach = 1 << snap.shift
        while True:
            x0, x1, z0, z1 = x - reach, x + reach, z - reach, z + reach
            cand = snap.gather(x0, x1, z0, z1)
            d2 = _distance2(cand, x, y, z)
            everything = snap.covers(x0, x1, z0, z1)
            inside = np.flatnonzero(d2 <= reach * reach) if not everything else np.arange(len(d2))
            if len(inside) >= k or everything:
                order = inside[np.lexsort((cand[inside, 0], d2[inside]))[:k]]
                return _results(cand, order)
            reach *= 2


def kernels_available() -> bool:
    """Whether the C inner loops are in use (False: numpy throughout)."""
    return _kernels is not None


@contextmanager
def numpy_only() -> Iterator[None]:
    """Run queries with the numpy code path (for tests and benchmarks comparing the two)."""
    global _kernels
    saved, _kernels = _kernels, None
    try:
        yield
    finally:
        _kernels = saved


def open_index(path: str | Path, *, verify: bool = False,
               refresh_interval: float | None = 0.05) -> LootIndex:
    """Map an index file.  ``verify=True`` also checks the body CRC (reads the whole file)."""
    return LootIndex(path, verify=verify, refresh_interval=refresh_interval)
