"""The remote variant under failure: its server process killed (SIGKILL, no goodbye) in
the middle of an open-loop run and started again on the same port after ``fault_for``
seconds, while the client keeps sending.

What it shows: the queries that fail while the server is away, and how long after the
kill the client answers again (the restart, plus however long the client's channel takes
to reconnect: gRPC backs off between connection attempts).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

KILL_WORDS = ("the server process was killed (SIGKILL) and started again on the same port "
              "{down:g} s later")


class _Restartable:
    """A started server of ``kind`` that can be killed and started again on its port."""

    def __init__(self, kind: str, options: dict[str, Any]):
        from ..targets import start_server

        self.kind, self.options = kind, dict(options)
        self.server, self.words = start_server(kind, **self.options)
        self.port = int(self.server.target.rsplit(":", 1)[1])
        self.killed_at: float | None = None     # just before the signal
        self.dead_at: float | None = None       # once every server process was reaped
        self.ready_at: float | None = None

    def kill(self) -> None:
        """SIGKILL every server process, then reap them."""
        self.killed_at = time.time()
        for pid in self.server.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.server.stop(timeout=5)
        self.dead_at = time.time()

    def restart(self) -> None:
        from ..targets import start_server

        self.server, _ = start_server(self.kind, **{**self.options, "port": self.port})
        self.ready_at = time.time()

    def stop(self) -> None:
        self.server.stop(timeout=5)


def run_server_killed(*, variant: str = "grpc-tls-pooled", duration: float, rate: float,
                      fault_at: float, fault_for: float, warmup: float = 0.5,
                      server: str = "auto", call_timeout: float = 2.0, radius: int = 64,
                      seed: int = 0) -> dict[str, Any]:
    """Open-loop ``variant`` clients while their server is killed at ``fault_at`` and
    restarted ``fault_for`` seconds later; returns the logs and the load result."""
    from ..targets import client_factory, default_workload
    from ..variants import get
    from .failure_load import Recorders, run_load

    v = get(variant)
    if not v.remote:
        raise ValueError(f"server-killed needs a remote variant, not {variant!r}")
    srv = _Restartable(server, {"tls": v.tls})
    try:
        factory = client_factory(variant, srv.server, timeout=call_timeout)
        queries = default_workload(4096, seed=seed, radius=radius)
        recorders = Recorders(factory)
        steps = [(fault_at, "kill", srv.kill), (fault_at + fault_for, "restart", srv.restart)]
        load, timeline = run_load(recorders, label=variant, rate=rate, duration=duration,
                                  warmup=warmup, queries=queries, seed=seed, steps=steps)
        return {"scenario": "server-killed", "variant": variant, "kind": "remote",
                "fault": KILL_WORDS.format(down=fault_for), "server": srv.words,
                "load": load, "origin": timeline.origin, "calls": recorders.calls(),
                "killed_at": srv.killed_at, "dead_at": srv.dead_at, "ready_at": srv.ready_at,
                "rate": rate,
                "seed": seed}
    finally:
        srv.stop()


__all__ = ["run_server_killed"]
