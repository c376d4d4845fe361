"""Where a remote call's time goes, as the client sees it.

Every call of a ``GrpcClient`` is split into:

- ``client_serialize``: building and serializing the request;
- ``server_queue`` and ``server_compute``: what the server says the call waited for a
  worker and took to answer (its trailing metadata, ``lootlab.remote.servertiming``);
- ``client_deserialize``: parsing the answer's bytes (``FromString``) and turning it into
  result rows;
- ``transport``: the rest of the call: HTTP/2 framing, TLS record encryption, the
  loopback hop, gRPC's own threads, and, for a channel per call (``grpc-tls-fresh``,
  ``-resumed``), opening the connection and the TLS handshake.

Only sums and counts are kept (means add up; percentiles of parts do not), from
``measure_from`` on, so a load run can leave its warm-up out; the load generator adds the
workers' sums up and takes the means (``lootlab.loadgen.split``).  Thread-safe: the load
generator's senders share one client.
"""

from __future__ import annotations

import threading
import time
from typing import Any

COMPONENTS = ("client_serialize", "transport", "server_queue", "server_compute",
              "client_deserialize")

#: How each component reads in a table or a legend.
LABELS = {"client_serialize": "client serialize", "transport": "transport + TLS",
          "server_queue": "server queue", "server_compute": "server compute",
          "client_deserialize": "client deserialize"}


class CallSplit:
    """Running sums (ns) of each component over the calls noted."""

    def __init__(self) -> None:
        self.measure_from = 0          # perf_counter_ns; calls starting earlier are not noted
        self._lock = threading.Lock()
        self._sums = dict.fromkeys(COMPONENTS, 0)
        self.calls = 0
        self.with_server = 0           # calls whose answer carried the server's timing

    def note(self, started: int, ended: int, serialize: int, deserialize: int,
             server: Any) -> None:
        """One call from ``started`` to ``ended`` (perf_counter_ns); ``server`` is a
        ``ServerTiming`` or None (a server that sends none: its time stays in transport)."""
        if started < self.measure_from:
            return
        queue = server.queue_us * 1000 if server is not None else 0
        compute = server.compute_us * 1000 if server is not None else 0
        transport = max(0, ended - started - serialize - deserialize - queue - compute)
        with self._lock:
            s = self._sums
            s["client_serialize"] += serialize
            s["client_deserialize"] += deserialize
            s["server_queue"] += queue
            s["server_compute"] += compute
            s["transport"] += transport
            self.calls += 1
            self.with_server += server is not None

    def start_measuring(self, at_ns: int | None = None) -> None:
        """Forget what was noted and note only calls starting at ``at_ns`` or later."""
        with self._lock:
            self._sums = dict.fromkeys(COMPONENTS, 0)
            self.calls = self.with_server = 0
            self.measure_from = time.perf_counter_ns() if at_ns is None else at_ns

    def totals(self) -> dict[str, int]:
        """``calls``, ``with_server`` and the sum in ns of every component (picklable)."""
        with self._lock:
            return {"calls": self.calls, "with_server": self.with_server, **self._sums}


__all__ = ["COMPONENTS", "LABELS", "CallSplit"]
