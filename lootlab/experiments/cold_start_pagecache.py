"""The page cache of one file: how much of it is resident, and making it cold or warm.

Cold: ``posix_fadvise(POSIX_FADV_DONTNEED)`` on the file after an ``fsync`` (dirty pages
are not dropped), which needs no privilege and leaves every other file's cache alone;
``/proc/sys/vm/drop_caches`` would empty the whole machine's cache under other people's
measurements, so it is only reported, never used.  The kernel keeps pages that some process
still maps, so a drop is checked with ``mincore`` and the resident share that remained is
reported with it.  Warm: read the whole file once.  Linux only.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

_PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_MAP_FAILED = ctypes.c_void_p(-1).value


def resident_bytes(path: str | Path) -> tuple[int, int]:
    """(bytes of ``path`` in the page cache, file size), from ``mincore`` on a mapping that
    is never read (so asking does not bring anything in)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return 0, 0
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    finally:
        os.close(fd)
    if addr in (None, _MAP_FAILED):
        raise OSError(ctypes.get_errno(), f"mmap {path} for mincore failed")
    try:
        pages = (size + _PAGE - 1) // _PAGE
        vec = (ctypes.c_ubyte * pages)()
        if _libc.mincore(addr, size, vec) != 0:
            raise OSError(ctypes.get_errno(), f"mincore {path} failed")
        resident = sum(1 for v in vec if v & 1)
    finally:
        _libc.munmap(addr, size)
    return min(resident * _PAGE, size), size


def resident_share(path: str | Path) -> float:
    """Share (0..1) of the file's pages now in the page cache."""
    have, size = resident_bytes(path)
    return have / size if size else 1.0


def drop_file_cache(path: str | Path) -> float:
    """Evict the file from the page cache (fsync, then ``POSIX_FADV_DONTNEED``); returns
    the share still resident (pages mapped by a live process stay)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return resident_share(path)


def warm_file_cache(path: str | Path, chunk: int = 1 << 20) -> float:
    """Read the whole file once so it is in the page cache; returns the resident share."""
    with open(path, "rb", buffering=0) as f:
        while f.read(chunk):
            pass
    return resident_share(path)


def read_ahead_kb(path: str | Path) -> int | None:
    """The read-ahead window (KiB) of the block device holding ``path``, or None if unknown.
    It decides how much one major fault brings in: with 8 MiB, a cold 11 MiB index is
    nearly all read by the first two faults."""
    dev = os.stat(path).st_dev
    base = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    for candidate in (base / "queue" / "read_ahead_kb", base / ".." / "queue" / "read_ahead_kb",
                      base / "bdi" / "read_ahead_kb"):
        try:
            return int(candidate.read_text())
        except (OSError, ValueError):
            continue
    return None


def drop_caches_status() -> str:
    """Whether ``/proc/sys/vm/drop_caches`` could be written here, in words (never written:
    it would drop every process's cache on a shared machine)."""
    target = "/proc/sys/vm/drop_caches"
    if not os.path.exists(target):
        return f"{target} does not exist here"
    if os.geteuid() != 0 or not os.access(target, os.W_OK):
        return "not allowed (not root)"
    return "allowed (root), not used: it empties the cache of every process on the machine"


__all__ = ["drop_caches_status", "drop_file_cache", "read_ahead_kb", "resident_bytes",
           "resident_share", "warm_file_cache"]
