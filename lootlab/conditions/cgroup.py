"""CPU limits like a container's: a child cgroup with a CPU quota, and its throttling counters.

A container's CPU limit is a CFS bandwidth quota: ``cores * period`` microseconds of CPU per
period (100 ms by default) for all its processes together; once they have used it, they
wait for the next period ("throttled").  This module makes such a group for the lab's load
workers: cgroup v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` under the cpu controller's
mount) or cgroup v2 (``cpu.max``), whichever the machine has, as a child of this process's
own cgroup.  Its ``cpu.stat`` counts the periods in which the group ran and those in which it
was throttled, and for how long.

Children are named ``lootlab-<owner pid>-<n>``.  Leaving one behind would keep a quota
around for nobody, so leaving the ``with`` moves any process still in it back to the parent
and removes it, and creating one first removes the stale ones of owners that died (a
SIGKILLed run cannot clean up after itself).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..tempfiles import pid_alive
from .errors import ConditionsError

#: Less than this many cores is refused: v1 will not take a quota under 1 ms per period.
MIN_CORES = 0.01
PREFIX = "lootlab-"
_NAME = re.compile(r"^lootlab-(\d+)-(\d+)$")
_SEQ = itertools.count()


@dataclass(frozen=True)
class Hierarchy:
    """Where this process's CPU cgroup is: ``version`` 1 or 2, ``parent`` its directory."""

    version: int
    parent: Path


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(device, mount point, fs type, options) of the cgroup file systems."""
    out = []
    try:
        text = Path("/proc/self/mounts").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in ("cgroup", "cgroup2"):
            out.append((fields[0], fields[1].replace("\\040", " "), fields[2],
                        set(fields[3].split(","))))
    return out


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and under "" its v2 path."""
    paths: dict[str, str] = {}
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return paths
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c] = path
    return paths


def _locate() -> tuple[Hierarchy | None, str]:
    """The hierarchy to make children in, or None and why not."""
    own = _own_paths()
    mounts = _mounts()
    for _, point, kind, opts in mounts:
        if kind == "cgroup" and "cpu" in opts:
            rel = own.get("cpu", "/").lstrip("/")
            parent = Path(point) / rel
            if "ro" in opts:
                return None, f"the cgroup v1 cpu controller at {point} is mounted read-only"
            return Hierarchy(1, parent), ""
    for _, point, kind, opts in mounts:
        if kind != "cgroup2":
            continue
        parent = Path(point) / own.get("", "/").lstrip("/")
        try:
            controllers = (Path(point) / "cgroup.controllers").read_text().split()
        except OSError:
            controllers = []
        if "cpu" not in controllers:
            continue
        if "ro" in opts:
            return None, f"the cgroup v2 hierarchy at {point} is mounted read-only"
        return Hierarchy(2, parent), ""
    if not mounts:
        return None, "no cgroup file system is mounted (/proc/self/mounts lists none)"
    return None, "no cgroup hierarchy here has the cpu controller"


def cgroup_unavailable() -> str | None:
    """None when CPU-limited cgroups can be made here, else one line saying why not."""
    where, why = _locate()
    if where is None:
        return why
    if not where.parent.is_dir():
        return f"this process's cgroup {where.parent} is not visible in this mount namespace"
    if not os.access(where.parent, os.W_OK):
        who = "not root" if os.geteuid() != 0 else "no write access"
        return f"cannot create cgroups under {where.parent} ({who})"
    if where.version == 2:
        try:
            enabled = (where.parent / "cgroup.subtree_control").read_text().split()
        except OSError as exc:
            return f"cannot read {where.parent}/cgroup.subtree_control ({exc.strerror})"
        if "cpu" not in enabled and not os.access(where.parent / "cgroup.subtree_control",
                                                  os.W_OK):
            return f"the cpu controller is not enabled for children of {where.parent}"
    return None


def check_cores(cores: object) -> float:
    """``cores`` as a float, or ``ConditionsError`` saying what is wrong with it."""
    if isinstance(cores, bool):
        raise ConditionsError(f"cpu_limit must be a number of cores, got {cores!r}")
    if not isinstance(cores, (int, float)):
        try:
            cores = float(cores)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConditionsError(f"cpu_limit must be a number of cores, got {cores!r}") \
                from None
    value = float(cores)
    if not math.isfinite(value):
        raise ConditionsError(f"cpu_limit must be a finite number of cores, got {cores!r}")
    if value <= 0:
        raise ConditionsError(f"cpu_limit must be positive (cores), got {cores!r}")
    if value < MIN_CORES:
        raise ConditionsError(f"cpu_limit {value:g} is below {MIN_CORES:g} core: the kernel "
                              f"takes no quota under 1 ms per 100 ms period")
    return value


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _pids(group: Path) -> list[int]:
    try:
        return [int(x) for x in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _remove(group: Path, parent: Path, attempts: int = 50) -> bool:
    """Move what is left in ``group`` to ``parent`` and remove it; True once it is gone.
    A process that has exited but is not yet reaped keeps a v1 group busy for a moment."""
    for _ in range(attempts):
        for pid in _pids(group):
            try:
                _write(parent / "cgroup.procs", f"{pid}\n")
            except OSError:
                pass      # it exited meanwhile
        try:
            group.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.02)
    return not group.exists()


def clean_stale(parent: Path | None = None) -> list[str]:
    """Remove ``lootlab-<pid>-<n>`` groups whose owner process is dead; their names."""
    if parent is None:
        where, _ = _locate()
        if where is None:
            return []
        parent = where.parent
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _NAME.match(entry.name)
        if m and entry.is_dir() and not pid_alive(int(m.group(1))) and _remove(entry, parent):
            removed.append(entry.name)
    return removed


class CpuCgroup:
    """A child cgroup with a CPU quota; ``add`` processes to it, read ``stats``."""

    def __init__(self, cores: float, period_us: int = 100_000):
        self.cores = check_cores(cores)
        if not 1_000 <= int(period_us) <= 1_000_000:
            raise ConditionsError(f"cgroup period must be 1000..1000000 us, got {period_us}")
        self.period_us = int(period_us)
        self.quota_us = max(1_000, round(self.cores * self.period_us))
        why = cgroup_unavailable()
        if why:
            raise ConditionsError(f"cannot limit CPU: {why}")
        where, _ = _locate()
        assert where is not None
        self.version, self.parent = where.version, where.parent
        clean_stale(self.parent)
        self.path = self.parent / f"{PREFIX}{os.getpid()}-{next(_SEQ)}"
        try:
            if self.version == 2 and "cpu" not in \
                    (self.parent / "cgroup.subtree_control").read_text().split():
                _write(self.parent / "cgroup.subtree_control", "+cpu")
            self.path.mkdir()
        except OSError as exc:
            raise ConditionsError(f"cannot create a cgroup under {self.parent}: "
                                  f"{exc.strerror or exc}") from None
        try:
            if self.version == 1:
                _write(self.path / "cpu.cfs_period_us", str(self.period_us))
                _write(self.path / "cpu.cfs_quota_us", str(self.quota_us))
            else:
                _write(self.path / "cpu.max", f"{self.quota_us} {self.period_us}")
        except OSError as exc:
            self.close()
            raise ConditionsError(f"cannot set the CPU quota of {self.path}: "
                                  f"{exc.strerror or exc}") from None

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into the group."""
        try:
            _write(self.path / "cgroup.procs", f"{int(pid)}\n")
        except OSError as exc:
            raise ConditionsError(f"cannot move process {pid} into {self.path}: "
                                  f"{exc.strerror or exc}") from None

    def pids(self) -> list[int]:
        return _pids(self.path)

    def stats(self) -> dict[str, float]:
        """Counters since the group was made: ``periods`` (periods in which it ran),
        ``throttled_periods``, ``throttled_ms`` and ``throttled_share`` (of the periods)."""
        raw: dict[str, int] = {}
        try:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                raw[key] = int(value)
        except (OSError, ValueError) as exc:
            raise ConditionsError(f"cannot read {self.path}/cpu.stat: {exc}") from None
        ms = raw["throttled_time"] / 1e6 if "throttled_time" in raw else \
            raw.get("throttled_usec", 0) / 1e3
        return counters(raw.get("nr_periods", 0), raw.get("nr_throttled", 0), ms)

    def close(self) -> None:
        """Move any process left back to the parent and remove the group."""
        _remove(self.path, self.parent)

    def __repr__(self) -> str:
        cores = "core" if self.cores == 1 else "cores"    # below loadgen.units' layer
        return f"<CpuCgroup {self.path} {self.cores:g} {cores}, v{self.version}>"


def counters(periods: int, throttled: int, throttled_ms: float) -> dict[str, float]:
    """The throttle counters as results hold them (share of periods throttled)."""
    return {"periods": int(periods), "throttled_periods": int(throttled),
            "throttled_ms": float(throttled_ms),
            "throttled_share": throttled / periods if periods else 0.0}


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The counters between two ``stats`` readings."""
    return counters(after["periods"] - before["periods"],
                    after["throttled_periods"] - before["throttled_periods"],
                    after["throttled_ms"] - before["throttled_ms"])


@contextmanager
def cpu_cgroup(cores: float, period_us: int = 100_000) -> Iterator[CpuCgroup]:
    """A uniquely named child cgroup limited to ``cores`` for the ``with`` block; removed
    on exit (its processes moved back to the parent).  ``ConditionsError`` when ``cores``
    is bad or cgroups cannot be written here (``cgroup_unavailable`` says why)."""
    group = CpuCgroup(cores, period_us)
    try:
        yield group
    finally:
        group.close()


__all__ = ["MIN_CORES", "CpuCgroup", "cgroup_unavailable", "check_cores", "clean_stale",
           "counters", "cpu_cgroup", "delta"]
