"""What ``ServerStats`` counts, totalled over every process of one server.

Each server process owns one row (slot) of a small int64 table and is the only writer of
that row; ``ServerStats`` (answered by whichever process got the call) sums the rows.
With several processes the table lives in a shared file mapping: created by the first
process, unlinked at once, and handed to the others as an inherited file descriptor, so
nothing is left on disk whatever happens to the processes.  A row also holds its
process's pid and CPU time (user + system), refreshed on every answer.
"""

from __future__ import annotations

import collections
import mmap
import os
import tempfile
import threading
import time
from typing import Any

import numpy as np

#: The counters of one process, in row order; totals sum them over processes.
COUNTS = ("requests", "connections", "tls_connections", "tls_resumed", "tls_requests",
          "resumed_requests")
_PID, _CPU = len(COUNTS), len(COUNTS) + 1
_WIDTH = len(COUNTS) + 2
_MAX_PEERS = 65_536


class CounterTable:
    """``processes`` rows of counters, private to this process or in a shared mapping."""

    def __init__(self, processes: int = 1, *, fd: int | None = None):
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.processes = processes
        size = processes * _WIDTH * 8
        self.fd = fd
        self._map = mmap.mmap(-1 if fd is None else fd, size)
        self.rows = np.frombuffer(self._map, np.int64).reshape(processes, _WIDTH)

    @classmethod
    def shared(cls, processes: int) -> CounterTable:
        """A table other processes can attach to by ``fd`` (pass it to them open)."""
        fd, path = tempfile.mkstemp(prefix="lootlab-counters-")
        os.unlink(path)
        os.ftruncate(fd, processes * _WIDTH * 8)
        os.set_inheritable(fd, True)
        return cls(processes, fd=fd)

    def totals(self, own_slot: int | None = None) -> dict[str, Any]:
        """Every count summed over the processes, their CPU seconds and how many there are."""
        if own_slot is not None:
            self.rows[own_slot, _CPU] = time.process_time_ns()
        rows = self.rows.copy()
        live = rows[:, _PID] != 0
        out: dict[str, Any] = {name: int(rows[live, i].sum()) for i, name in enumerate(COUNTS)}
        out["cpu_seconds"] = float(rows[live, _CPU].sum()) / 1e9
        out["processes"] = int(live.sum())
        out["process_requests"] = [int(v) for v in rows[live, 0]]
        return out


class Counters:
    """One process's counters: row ``slot`` of ``table`` (a private one-row table by
    default).  ``note`` is called once per request."""

    def __init__(self, table: CounterTable | None = None, slot: int = 0):
        self.table = table or CounterTable(1)
        if not 0 <= slot < self.table.processes:
            raise ValueError(f"slot {slot} is outside the table's {self.table.processes} rows")
        self.slot = slot
        self.row = self.table.rows[slot]
        self.row[:] = 0
        self.row[_PID] = os.getpid()
        self.row[_CPU] = time.process_time_ns()
        self.peers: collections.OrderedDict[str, tuple[bool, bool]] = collections.OrderedDict()
        self.lock = threading.Lock()

    def note(self, context: Any) -> None:
        """Count one request on ``context``'s connection (a sync or an asyncio context).

        A connection's TLS state cannot change, so its auth context (a dict of the
        handshake's properties, built anew on every read) is read once, when its peer is
        first seen, and kept with the peer: a request on a known connection costs one
        ``peer()`` and a dict look-up.  Peers are told apart by address and port, as the
        connection count always was: a new connection on a port the kernel hands out
        again is taken for the old one (ports cycle through tens of thousands first).
        """
        peer = context.peer()
        known = self.peers.get(peer)
        if known is None:
            auth = context.auth_context() or {}
            tls = auth.get("transport_security_type") == [b"ssl"]
            known = (tls, tls and auth.get("ssl_session_reused") == [b"true"])
        tls, resumed = known
        row = self.row
        with self.lock:
            row[0] += 1
            if tls:
                row[4] += 1
                row[5] += resumed
            row[_CPU] = time.process_time_ns()
            if peer in self.peers:
                return
            self.peers[peer] = known
            if len(self.peers) > _MAX_PEERS:
                self.peers.popitem(last=False)
            row[1] += 1
            row[2] += tls
            row[3] += resumed

    def totals(self) -> dict[str, Any]:
        """The whole server's totals, this process's CPU time read now."""
        with self.lock:
            return self.table.totals(own_slot=self.slot)
