"""``LootIndex``: the memory-mapped index, its queries, and generation swaps under readers.

Opening maps the file and checks the header and sizes: constant time, no per-record
Python objects.  Each query takes one ``Snapshot`` (one mapping of one generation,
``lootlab/snapshot.py``) and uses only it, so a query never mixes generations.  A swap is
noticed by comparing the path's file identity (device, inode, size, mtime_ns) at most
every ``refresh_interval`` seconds; the old mapping is released when the last query
holding it returns.  Argument checks live in ``lootlab/queryargs.py``.
"""

from __future__ import annotations

import importlib
import math
import mmap
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np

from . import fileformat as ff
from . import lookups as _lookups
from .errors import InvalidIndexError, LootlabError
from .queryargs import check_corner as _check_corner
from .queryargs import check_k as _check_k
from .queryargs import check_point as _check_point
from .queryargs import radius_squared as _radius_squared
from .records import LootRecord, Records, empty_results, to_results, unpack_keys
from .snapshot import Snapshot as _Snapshot
from .snapshot import distance2 as _distance2
from .snapshot import results as _results

# The optional C inner loops (lootlab/_kernels.c); numpy does the same without them.  This
# module global is the switch: every query reads it (near/box hand it to the snapshot),
# so ``numpy_only()`` (or a test setting ``lootlab.index._kernels = None``) takes effect.
KERNELS_ENV = "LOOTLAB_KERNELS"
# LOOTLAB_KERNELS value -> the extension module built from lootlab/_kernels.c (setup.py)
KERNEL_BUILDS = {"default": "_kernels", "copycall": "_kernels_copycall"}


class KernelsError(LootlabError, ImportError):
    """``LOOTLAB_KERNELS`` names no kernel build, or a build that is not compiled here."""


def _kernels_name(value: str | None) -> str:
    """The ``KERNEL_BUILDS`` key ``LOOTLAB_KERNELS`` asks for (unset or empty: default)."""
    name = (value or "default").strip().lower()
    if name not in KERNEL_BUILDS:
        raise KernelsError(f"{KERNELS_ENV}={value!r} is not a kernel build: use one of "
                           f"{', '.join(KERNEL_BUILDS)} (or leave it unset)")
    return name


def _load_kernels(name: str) -> Any:
    """The extension module of build ``name``; None for a default build that is not compiled
    (numpy answers), ``KernelsError`` for an explicitly asked-for one that is not."""
    try:
        return importlib.import_module(f".{KERNEL_BUILDS[name]}", __package__)
    except ImportError as exc:
        if name == "default":  # pragma: no cover - a build without a C compiler
            return None
        raise KernelsError(f"{KERNELS_ENV}={name}: lootlab.{KERNEL_BUILDS[name]} is not built "
                           f"({exc}); run `python setup.py build_ext --inplace`") from None


# ``LOOTLAB_KERNELS=copycall`` loads the build whose copy of each hit is a call perf can see
# (for measuring the copy's share; docs/profiling.md, "The memcpy question").
_kernels = _load_kernels(_kernels_name(os.environ.get(KERNELS_ENV)))
# A stale build of the extension (from before point lookups) has no Lookup: numpy answers get then.
_LOOKUP_BUILT = hasattr(_kernels, "Lookup")
_Retry: type[Exception] = _kernels.Retry if _LOOKUP_BUILT else LookupError
if os.environ.get("LOOTLAB_NO_KERNELS"):
    _kernels = None




#: How a mapping is brought into memory before its first query (``open_index(prefault=)``).
PREFAULTS = ("none", "populate", "willneed")
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)   # Linux 5.14+


def prefault_mapping(mm: mmap.mmap, how: str) -> None:
    """Bring a generation's pages in before queries need them, so its first queries do not
    wait for the disk.  ``populate`` faults every page in now (``MADV_POPULATE_READ``: what
    ``MAP_POPULATE`` does at mmap time, on a mapping already made; older kernels: one read
    per page); ``willneed`` starts read-ahead of it all, in 128 KiB steps because the kernel
    reads at most one read-ahead window per call, and returns without waiting for it."""
    if how == "willneed":
        for at in range(0, len(mm), 1 << 17):
            mm.madvise(mmap.MADV_WILLNEED, at, min(1 << 17, len(mm) - at))
    elif how == "populate":
        try:
            mm.madvise(_MADV_POPULATE_READ)
        except OSError:
            np.frombuffer(mm, np.uint8)[::mmap.PAGESIZE].max(initial=0)


def _check_prefault(how: object) -> str:
    if how not in PREFAULTS:
        raise ValueError(f"prefault must be one of {', '.join(PREFAULTS)}, not {how!r}")
    return str(how)


def _unbound_get(x: object, y: object, z: object) -> None:
    """``get``'s fast road before a lookup is bound (or after a swap or close)."""
    raise _Retry


class LootIndex:
    """A read-only, memory-mapped loot index.  Thread-safe; cheap to open.

    ``refresh_interval`` is how often (seconds) queries look for a newly published
    generation at the path; 0 checks on every query, None never (use ``refresh()``).
    ``prefault`` (one of ``PREFAULTS``) is applied to every generation mapped, before it serves.
    """

    def __init__(self, path: str | Path, *, verify: bool = False,
                 refresh_interval: float | None = 0.05, prefault: str = "none"):
        self.path = Path(path)
        self.prefault = _check_prefault(prefault)
        self.verify_on_open = verify   # not ``verify``: that is the method
        self.refresh_interval = refresh_interval
        self.last_swap_error: Exception | None = None
        self._lock = threading.Lock()
        self._rejected: tuple[int, int, int, int] | None = None
        self._unbind()    # get's fast road: see _lookup
        try:
            self._snap: _Snapshot | None = _Snapshot(self.path, verify)
        except FileNotFoundError as exc:
            raise InvalidIndexError(self.path,
                                    "no such file (build one with `lootlab build`)") from exc
        except PermissionError as exc:
            raise InvalidIndexError(self.path, "permission denied") from exc
        except OSError as exc:
            raise InvalidIndexError(self.path, f"cannot open: {exc.strerror or exc}") from exc
        prefault_mapping(self._snap.mm, self.prefault)
        self._next_check = time.monotonic() + (refresh_interval or 0)

    # -- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        """Drop this index's mapping (released once no running query still holds it)."""
        with self._lock:
            self._snap = None
            self._unbind()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self._current().n

    def __repr__(self) -> str:
        snap = self._snap
        if snap is None:
            return f"<LootIndex {str(self.path)!r} closed>"
        return (f"<LootIndex {str(self.path)!r} records={snap.n} "
                f"generation={snap.header.generation}>")

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
            prefault_mapping(new.mm, self.prefault)   # before it serves (other threads wait)
            self.last_swap_error = None
            self._snap = new
            self._unbind()
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
        """The record at one block position, or None.

        The common case is one C call (``lookups.py``): argument check, refresh deadline,
        probe and record.  Anything it cannot answer (a non-int or out-of-range argument,
        a refresh due, no lookup bound yet) raises ``Retry`` and takes the checked road.
        """
        if _kernels is not None:
            try:
                return self._fast_get(x, y, z)
            except _Retry:
                pass
        return self._get_checked(x, y, z)

    def _get_checked(self, x: object, y: object, z: object) -> LootRecord | None:
        snap = self._current()
        x, y, z = _check_point(x, y, z)
        if _kernels is None or not _LOOKUP_BUILT:
            return _lookups.get_numpy(snap, x, y, z)
        return self._lookup(snap).find(x, y, z)

    def get_many(self, xyz: np.ndarray) -> tuple[np.ndarray, Records]:
        """Batch ``get``: (n, 3) integer positions -> (found mask, records aligned with input).

        Rows not found are zero-filled; use ``records[found]``.
        """
        snap = self._current()
        if _kernels is None or not _LOOKUP_BUILT:
            return _lookups.get_many_numpy(snap, xyz)
        return _lookups.get_many_c(self._lookup(snap), xyz)

    def _lookup(self, snap: _Snapshot) -> Any:
        """The C lookup of ``snap`` (made once per generation), its deadline brought up to date.

        ``get``'s fast road is this lookup's ``get``: it raises ``Retry`` once the index's
        next refresh check is due, so the clock is read in C and no Python check runs.
        """
        bound = self._bound
        if bound[0] is not snap:
            bound = self._bound = (snap, _lookups.bind(snap, _kernels))
        lookup = bound[1]
        lookup.deadline = math.inf if self.refresh_interval is None else self._next_check
        with self._lock:                 # refresh and close swap under it too
            if self._snap is snap:       # not a generation swapped out meanwhile
                self._fast_get = lookup.get
        return lookup

    def _unbind(self) -> None:
        """Forget the C lookup (it would pin the mapping it was made for)."""
        self._fast_get = _unbound_get
        self._bound = (None, None)

    def near(self, x: int, y: int, z: int, r: float) -> Records:
        """All records with dx²+dy²+dz² <= r², in file (spatial) order."""
        x, y, z = _check_point(x, y, z)
        r2 = _radius_squared(r)
        snap = self._current()
        reach = math.isqrt(r2)
        if not snap.n or y + reach < snap.bmin[1] or y - reach > snap.bmax[1]:
            return empty_results()
        if _kernels is not None:
            return snap.query_cells(_kernels, 0, x - reach, x + reach, z - reach, z + reach,
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
            return snap.query_cells(_kernels, 1, x0, x1, z0, z1, (x0, y0, z0, x1, y1, z1))
        cand = snap.gather(x0, x1, z0, z1)
        cx, cy, cz = unpack_keys(cand[:, 0])
        sel = (cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1) & (cz >= z0) & (cz <= z1)
        return _results(cand, sel)

    def knn(self, x: int, y: int, z: int, k: int) -> Records:
        """The k nearest records, nearest first (ties broken by key); all if k > len."""
        x, y, z = _check_point(x, y, z)
        k = _check_k(k)
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


def kernels_in_use() -> str:
    """Which inner loops queries use now: a ``KERNEL_BUILDS`` key (``"default"``,
    ``"copycall"``), or ``"numpy"`` (not built, ``LOOTLAB_NO_KERNELS``, ``numpy_only()``)."""
    if _kernels is None:
        return "numpy"
    module = _kernels.__name__.rsplit(".", 1)[-1]
    return next((k for k, m in KERNEL_BUILDS.items() if m == module), module)


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
               refresh_interval: float | None = 0.05, prefault: str = "none") -> LootIndex:
    """Map an index file and return a ``LootIndex`` (a context manager; ``close()``).

    Constant time: the header, sizes, section table and cell table are checked, no record
    is read.  Options:
      ``verify``            also check the body CRC (reads the whole file once);
      ``refresh_interval``  seconds between looks for a newly published generation at the
                            path (default 0.05; 0 looks on every query, None never: call
                            ``refresh()``);
      ``prefault``          "none" (default: pages fault in as queries touch them),
                            "populate" (fault the whole file in before serving) or
                            "willneed" (start read-ahead); for each generation mapped.

    Raises ``InvalidIndexError`` (naming the file and what is wrong) when the path is
    missing, not a regular file, unreadable, or not a valid lootlab index of this format
    version.  Queries raise ``QueryError`` for out-of-range or non-integer arguments.
    """
    return LootIndex(path, verify=verify, refresh_interval=refresh_interval,
                     prefault=prefault)
