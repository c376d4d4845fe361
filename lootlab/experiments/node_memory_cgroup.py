"""What a container's memory limit charges a reader: a child memory cgroup of this
process's own, one reader placed in it, and its usage and ``memory.stat`` read back.

The kernel charges a page-cache page to the cgroup of the process that first brought it
in, and it stays charged there: a replica that starts on a cold cache pays for the whole
index in its limit (``cache``), one that starts after another process read the file pays
almost nothing for it.  Both are measured.  Clean page cache is reclaimed before the
limit's OOM killer acts, so a limit smaller than the index slows the reader (re-reads),
it does not kill it; that is not measured here.

The group is ``lootlab-mem-<owner pid>-<n>`` under this process's own memory cgroup (v1
``memory`` controller or v2 with ``memory`` enabled), so whatever accounts for this
process still sees it; it is removed on exit, its processes moved back first.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .node_memory_sums import cgroup_charges, parse_memory_stat

_SEQ = itertools.count()


def _own_memory_group() -> tuple[int, Path] | tuple[None, str]:
    """(version, directory of this process's memory cgroup), or (None, why not)."""
    try:
        own = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError as exc:
        return None, f"cannot read /proc ({exc.strerror})"
    rel = {}
    for line in own:
        _, controllers, path = line.split(":", 2)
        for c in (controllers.split(",") if controllers else [""]):
            rel[c] = path.lstrip("/")
    for line in mounts:
        f = line.split()
        if len(f) >= 4 and f[2] == "cgroup" and "memory" in f[3].split(","):
            if "ro" in f[3].split(","):
                return None, f"the cgroup v1 memory controller at {f[1]} is mounted read-only"
            return 1, Path(f[1]) / rel.get("memory", "")
    for line in mounts:
        f = line.split()
        if len(f) >= 4 and f[2] == "cgroup2":
            try:
                ctl = (Path(f[1]) / "cgroup.controllers").read_text().split()
            except OSError:
                continue
            if "memory" in ctl:
                return 2, Path(f[1]) / rel.get("", "")
    return None, "no cgroup hierarchy here has the memory controller"


def memory_cgroup_unavailable() -> str | None:
    """None when a child memory cgroup can be made here, else one line saying why not."""
    version, where = _own_memory_group()
    if version is None:
        return str(where)
    assert isinstance(where, Path)
    if not where.is_dir():
        return f"this process's memory cgroup {where} is not visible here"
    if not os.access(where, os.W_OK):
        return f"cannot create cgroups under {where} ({'not root' if os.geteuid() else 'no write access'})"
    return None


class MemoryCgroup:
    """A child memory cgroup (no limit set: it only counts); ``add`` a pid, ``charges()``."""

    def __init__(self) -> None:
        why = memory_cgroup_unavailable()
        if why:
            raise OSError(why)
        version, where = _own_memory_group()
        assert isinstance(version, int) and isinstance(where, Path)
        self.version, self.parent = version, where
        self.path = where / f"lootlab-mem-{os.getpid()}-{next(_SEQ)}"
        self.path.mkdir()

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def charges(self) -> dict[str, int]:
        """``usage_bytes``, ``cache_bytes``, ``rss_bytes``, ``mapped_file_bytes`` now."""
        usage_file = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        usage = int((self.path / usage_file).read_text())
        stat = parse_memory_stat((self.path / "memory.stat").read_text())
        return cgroup_charges(stat, usage, self.version)

    def close(self) -> None:
        for _ in range(100):
            try:
                pids = (self.path / "cgroup.procs").read_text().split()
            except OSError:
                return
            for pid in pids:
                try:
                    (self.parent / "cgroup.procs").write_text(f"{pid}\n")
                except OSError:
                    pass             # it exited meanwhile
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)     # an exited child not yet reaped keeps it busy


@contextmanager
def memory_cgroup() -> Iterator[MemoryCgroup]:
    group = MemoryCgroup()
    try:
        yield group
    finally:
        group.close()


__all__ = ["MemoryCgroup", "memory_cgroup", "memory_cgroup_unavailable"]
