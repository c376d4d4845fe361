"""One mapped generation of an index file, and the spatial reads over it.

A ``Snapshot`` maps the file once, checks the header and cell table, and holds zero-copy
numpy views of its sections.  A query uses one snapshot from start to end, so it never
mixes generations; the mapping is released when the last snapshot reference goes.
Here too are the pieces both query paths share: the cell runs a column box touches, the
C kernel call, and the numpy gather and selection.
"""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path
from types import ModuleType

import numpy as np

from . import fileformat as ff
from .errors import InvalidIndexError
from .records import RESULT_DTYPE, X_SHIFT, Y_BITS, Z_BITS, Records, words_to_results

_BIAS = 1 << 25
_scratch = threading.local()   # per-thread result buffer for the C kernels
_ROW = np.dtype("V24")
_ROWS_BY_SEARCH = 64      # wider than this many cell rows, scan cells instead of rows
_RUNS_BY_SLICES = 16      # up to this many runs, gather by slicing; beyond, by index


class Snapshot:
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

    def query_cells(self, kernels: ModuleType, mode: int, x0: int, x1: int, z0: int, z1: int,
                    params: tuple[int, ...]) -> Records:
        """One whole near (mode 0) or box (mode 1) query in the C kernel, GIL released.

        ``kernels`` is the extension module, passed in because ``lootlab.index`` owns the
        switch between the C and numpy paths.  Hits land in a per-thread scratch buffer
        (a fresh one per query would cost page faults, more than the selection) and are
        copied out as plain words.
        """
        x0, x1 = max(x0, self.bmin[0]), min(x1, self.bmax[0])
        z0, z1 = max(z0, self.bmin[2]), min(z1, self.bmax[2])
        scratch = getattr(_scratch, "rows", None)
        if scratch is None:
            scratch = _scratch.rows = np.empty(4096, RESULT_DTYPE)
        while True:
            count = kernels.query_cells(self.raw, self.codes, self.starts, self.shift,
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
        """Whether the column box holds the whole bounding box (knn can stop widening)."""
        bmin, bmax = self.bmin, self.bmax
        return x0 <= bmin[0] and x1 >= bmax[0] and z0 <= bmin[2] and z1 >= bmax[2]


def results(cand: np.ndarray, sel: np.ndarray) -> Records:
    """Results for the record words ``cand[sel]`` (a void view makes the pick one memcpy a row)."""
    picked = cand.view(_ROW).reshape(-1)[sel] if cand.flags.c_contiguous else cand[sel]
    return words_to_results(picked.view(np.uint64).reshape(-1, 3))


def distance2(words: np.ndarray, x: int, y: int, z: int) -> np.ndarray:
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
