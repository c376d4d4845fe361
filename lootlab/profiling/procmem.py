"""Process memory from ``/proc``: anonymous and file-backed memory kept apart.

``RssFile``/``Pss_File`` of an mmap reader are page-cache pages that every process mapping
the same file shares; ``Pss`` splits each shared page evenly among the processes mapping
it, so summing PSS over replicas counts a shared page once (RSS would count it K times).
Linux only; values are bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

STATUS_FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")
ROLLUP_FIELDS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem", "Shared_Clean",
                 "Private_Clean", "Private_Dirty", "Anonymous")


def _kb_fields(text: str, wanted: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in wanted:
            parts = rest.split()
            if parts:
                out[name] = int(parts[0]) * 1024
    return out


def page_faults(pid: int | str = "self") -> tuple[int, int]:
    """(minor, major) page faults of the process so far, from ``/proc/PID/stat``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()   # after "pid (comm) "
    return int(fields[7]), int(fields[9])          # minflt, majflt (fields 10 and 12)


def read_proc(pid: int | str = "self") -> dict[str, int]:
    """Memory of one process now: status fields, smaps_rollup fields and page faults."""
    out = _kb_fields(Path(f"/proc/{pid}/status").read_text(), STATUS_FIELDS)
    out.update(_kb_fields(Path(f"/proc/{pid}/smaps_rollup").read_text(), ROLLUP_FIELDS))
    out["minflt"], out["majflt"] = page_faults(pid)
    return out


def mapping_of(path: str | os.PathLike[str], pid: int | str = "self") -> dict[str, int]:
    """Size, Rss and Pss of the mappings of one file (e.g. the index) in one process.

    Reported apart because memray counts such a mapping as one allocation of its full size,
    and because its resident pages are shared page cache, not this process's heap.
    """
    return mapping_totals(Path(f"/proc/{pid}/smaps").read_text(), [str(Path(path).resolve())])


#: The fields ``mapping_totals`` adds up unless told others.
MAPPING_FIELDS = ("Size", "Rss", "Pss", "Shared_Clean", "Private_Clean")


def mapping_totals(smaps_text: str, paths: Iterable[str],
                   fields: Iterable[str] = MAPPING_FIELDS) -> dict[str, int]:
    """``fields`` (bytes) summed over the mappings of any of ``paths`` in one ``smaps``
    text (a file deleted since it was mapped, " (deleted)", still counts)."""
    targets = set(paths)
    totals = {name: 0 for name in fields}
    inside = False
    for line in smaps_text.splitlines():
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and ":" not in head[0]:
            # a mapping header: address perms offset dev inode [path]
            inside = len(head) == 6 and head[5].removesuffix(" (deleted)") in targets
            continue
        if inside:
            name, _, rest = line.partition(":")
            if name in totals:
                totals[name] += int(rest.split()[0]) * 1024
    return totals


def delta(after: dict[str, int], baseline: dict[str, int]) -> dict[str, int]:
    """Field-wise ``after - baseline`` over the fields both have."""
    return {k: after[k] - baseline[k] for k in after if k in baseline}
