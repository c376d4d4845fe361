"""A fresh reader process for the cold-start experiment: it imports lootlab, says ``ready``
(with how long that took), then on one JSON command starts serving and reports what its
first ``window`` seconds looked like.

Commands (``cmd``):
* ``start`` ``path`` ``prefault`` ``queries`` ``window``: open the index and query it as
  fast as one reader can (closed loop) until ``window`` seconds after the command arrived;
* ``serve`` ``path`` ``prefault`` ``queries``: open and run a few hundred queries (the steady
  state before a swap); then ``swap`` ``window``: take the newly published generation now
  (``refresh()``, which applies the prefault) and query as for ``start``;
* ``exit``.

Each serving window reports: ``open_s`` (open or refresh, prefault included),
``first_answer_s`` (command to first answer), the window's query latencies (count, p50,
p99, max in ms), and major/minor page faults during the open and during the queries
(``getrusage``: this process only; the queries run on this one thread).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

_T_SPAWN = time.perf_counter()

# imported after the clock starts: loading them is part of a fresh start
import numpy as np

from lootlab.index import open_index

_IMPORT_S = time.perf_counter() - _T_SPAWN


def _faults() -> tuple[int, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_majflt, r.ru_minflt


def _window(idx: Any, queries: np.ndarray, t0: float, window: float,
            opened: float, faults_open: tuple[int, int]) -> dict[str, Any]:
    """Query closed-loop from now until ``t0 + window``; the window's figures."""
    lat: list[float] = []
    first = None
    maj0, min0 = _faults()
    n = len(queries)
    i = 0
    end = t0 + window
    now = time.perf_counter()
    while now < end or first is None:
        x, y, z, r = queries[i % n]
        idx.near(x, y, z, r)
        done = time.perf_counter()
        if first is None:
            first = done
        lat.append(done - now)
        now = done
        i += 1
    maj1, min1 = _faults()
    ms = np.asarray(lat) * 1e3
    return {"open_s": opened - t0, "first_answer_s": first - t0,
            "queries_count": len(lat), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
            "first_query_ms": float(ms[0]),
            "majflt_open_count": faults_open[0], "minflt_open_count": faults_open[1],
            "majflt_count": maj1 - maj0, "minflt_count": min1 - min0}


def main() -> None:
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid(), "import_s": _IMPORT_S}) + "\n")
    out.flush()
    idx = None
    queries = None
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg.get("cmd")
        if cmd == "exit":
            break
        try:
            t0 = time.perf_counter()
            if cmd in ("start", "serve"):
                queries = [tuple(q) for q in np.load(msg["queries"]).tolist()]
                f0 = _faults()
                t0 = time.perf_counter()
                idx = open_index(msg["path"], refresh_interval=None, prefault=msg["prefault"])
                opened = time.perf_counter()
                f1 = _faults()
                if cmd == "start":
                    reply = _window(idx, queries, t0, msg["window"], opened,
                                    (f1[0] - f0[0], f1[1] - f0[1]))
                else:
                    for q in queries[:300]:
                        idx.near(*q)
                    reply = {"generation": idx.generation}
            elif cmd == "swap" and idx is not None and queries is not None:
                f0 = _faults()
                before = idx.generation
                idx.refresh()
                opened = time.perf_counter()
                f1 = _faults()
                if idx.generation == before:
                    raise RuntimeError(f"no new generation to swap to (still {before})")
                reply = _window(idx, queries, t0, msg["window"], opened,
                                (f1[0] - f0[0], f1[1] - f0[1]))
                reply["generation"] = idx.generation
            else:
                raise ValueError(f"unknown or out-of-order command {cmd!r}")
            reply = {"ok": True, **reply}
        except Exception as exc:  # noqa: BLE001  (the parent raises it, naming the command)
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
