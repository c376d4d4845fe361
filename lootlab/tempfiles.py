"""Temporary files left beside an index by builds that died before publishing.

A build writes ``.<name>.tmp-<pid>-*`` next to the index and renames it into place; a
killed build leaves it behind.  Only files whose writer is gone are removed, so a live
build in another process is never pulled from under it.
"""

from __future__ import annotations

import os
from pathlib import Path


def clean_temp_files(index_path: str | Path) -> list[Path]:
    """Remove ``.<name>.tmp-<pid>-*`` files left by builds that died (their pid is gone)."""
    path = Path(index_path)
    removed = []
    try:
        candidates = list(path.parent.glob(f".{path.name}.tmp-*"))
    except OSError:
        return removed
    for tmp in candidates:
        pid_text = tmp.name[len(f".{path.name}.tmp-"):].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and pid_alive(int(pid_text)):
            continue                      # another live process is writing it right now
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as dead: it has exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed child not yet reaped) holds no file open for writing
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


