"""A child process of the memory-per-node experiment: one reader (or remote client) that
does what its parent says, one JSON line in and one out, and otherwise sits idle so its
memory can be read while it holds its mappings.

It says ``ready`` before importing lootlab, so the parent can place it in a cgroup before
anything of the reader is charged.  Commands (``cmd``):

* ``open`` ``path`` ``queries_per_page`` ``seed`` ``prefault``: open the index and query
  it uniformly (``sample`` positions, then ``get_many`` them): ``queries_per_page`` times
  the file's page count, so a page is missed with chance about e^-queries_per_page, like
  a replica that has served uniform traffic for a while;
* ``open_second``: open the path again (a newly published generation) and query it the
  same way, while the first handle still maps the old one (the swap's peak);
* ``release_first``: close the first handle; the second becomes the first;
* ``alloc`` ``mib``: allocate and write ``mib`` private MiB (tests' known sizes);
* ``remote`` ``variant`` ``target`` ``ca`` ``queries``: connect and run the ``near``
  queries in the ``.npy`` file ``queries``;
* ``exit``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

_BATCH = 65_536


def _touch(idx: Any, queries_per_page: float, seed: int) -> int:
    import numpy as np

    pages = -(-os.path.getsize(idx.path) // os.sysconf("SC_PAGE_SIZE"))
    total = int(queries_per_page * pages)
    done = 0
    while done < total:
        k = min(_BATCH, total - done)
        pos = idx.sample(k, seed=seed + done)
        idx.get_many(np.column_stack([pos["x"], pos["y"], pos["z"]]))
        done += k
    return total


class _Reader:
    def __init__(self) -> None:
        self.handles: list[Any] = []
        self.keep: list[Any] = []

    def open(self, msg: dict[str, Any]) -> dict[str, Any]:
        from lootlab.index import open_index

        t = time.perf_counter()
        idx = open_index(msg["path"], refresh_interval=None,
                         prefault=msg.get("prefault", "none"))
        q = _touch(idx, float(msg.get("queries_per_page", 8)), int(msg.get("seed", 0)))
        self.handles.append(idx)
        return {"queries": q, "seconds": time.perf_counter() - t,
                "generation": idx.generation}

    def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        cmd = msg["cmd"]
        if cmd in ("open", "open_second"):
            return self.open(msg)
        if cmd == "release_first":
            self.handles.pop(0).close()
            return {"handles": len(self.handles)}
        if cmd == "alloc":
            self.keep.append(bytearray(b"\x01") * (int(msg["mib"]) << 20))
            return {"allocated_mib": sum(len(b) for b in self.keep) >> 20}
        if cmd == "remote":
            return self.remote(msg)
        raise ValueError(f"unknown command {cmd!r}")

    def remote(self, msg: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from lootlab.targets import connect

        queries = np.load(msg["queries"])
        t = time.perf_counter()
        cli = connect(msg["variant"], target=msg["target"], ca=msg.get("ca"))
        for x, y, z, r in queries.tolist():
            cli.near(x, y, z, r)
        self.handles.append(cli)          # stays connected while measured
        return {"queries": len(queries), "seconds": time.perf_counter() - t}


def main() -> None:
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    reader = _Reader()
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("cmd") == "exit":
            break
        try:
            reply = {"ok": True, **reader.handle(msg)}
        except Exception as exc:  # noqa: BLE001  (the parent raises it, naming the command)
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
