"""A raw TCP echo server in a child process, and a ping-pong timer: what the proxy's
delay is measured against without gRPC in the way (benchmarks and tests).

``python -m lootlab.conditions.echo`` prints ``{"target": ...}`` once listening and exits
when its stdin closes (its parent went away).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Self

from ..remote import childproc
from ..remote.address import split_target
from .errors import ConditionsError


class EchoServer:
    """``with EchoServer() as echo: ping_pong(echo.target)``: echoes every byte back."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.target = ""

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen([sys.executable, "-m", "lootlab.conditions.echo"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, close_fds=True)
        info = childproc.wait_ready(self.proc, 30, what="echo server", error=ConditionsError,
                                    timed_out=ConditionsError)
        self.target = info["target"]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            childproc.stop(self.proc, 5)
            self.proc = None


def dial(target: str, timeout: float = 10.0) -> socket.socket:
    """A connected TCP socket with Nagle off (each send leaves at once)."""
    host, port = split_target(target)
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def ping_pong(target: str, n: int, size: int = 32, *, sock: socket.socket | None = None,
              idle: float = 0.0) -> list[float]:
    """Seconds of each of ``n`` round trips of ``size`` bytes on one connection (opened
    first, its handshake not timed, unless ``sock`` is given); with ``idle``, each after
    sleeping that long (untimed), as both ends idle for the RTT behind a proxy."""
    own = sock is None
    sock = sock or dial(target)
    payload = b"p" * size
    clock = time.perf_counter
    out = []
    try:
        for _ in range(n):
            if idle:
                time.sleep(idle)
            t = clock()
            sock.sendall(payload)
            got = 0
            while got < size:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConditionsError(f"{target} closed the connection")
                got += len(chunk)
            out.append(clock() - t)
    finally:
        if own:
            sock.close()
    return out


def _serve_one(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)


def main() -> int:
    srv = socket.create_server(("127.0.0.1", 0), backlog=128)
    print(json.dumps({"target": f"127.0.0.1:{srv.getsockname()[1]}", "pid": os.getpid()}),
          flush=True)

    def accept() -> None:
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=_serve_one, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
