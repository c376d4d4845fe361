"""Helpers for the remote/client tests: a small index, loopback servers, TLS material."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np

import lootlab
from lootlab.remote.tls import make_ca, make_cert

REMOTE_VARIANTS = ["grpc-tls-fresh", "grpc-tls-resumed", "grpc-tls-pooled", "grpc-tls-packed",
                   "grpc-plain"]
ALL_VARIANTS = REMOTE_VARIANTS + ["mmap"]


def small_index(directory: Path, n: int = 20_000, seed: int = 3) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "loot.idx"
    lootlab.build_index(lootlab.generate_world(n, seed=seed), path)
    return path


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_pair(directory: Path, name: str, pem: tuple[bytes, bytes]) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert.write_bytes(pem[0])
    key.write_bytes(pem[1])
    return cert, key


def broken_certs(directory: Path, ca_pem: Path, ca_key: Path) -> dict[str, tuple[Path, Path]]:
    """Server certificates signed by the real CA but expired, or for another host."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, key = ca_pem.read_bytes(), ca_key.read_bytes()
    now = dt.datetime.now(dt.timezone.utc)
    return {
        "expired": write_pair(directory, "expired", make_cert(
            ca, key, not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1))),
        "wrong-host": write_pair(directory, "wronghost", make_cert(ca, key, hosts=("elsewhere.example",))),
    }


def other_ca(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "other-ca.pem"
    path.write_bytes(make_ca("some other CA")[0])
    return path


def wait_gone(pid: int, timeout: float = 30.0) -> bool:
    """True once process ``pid`` no longer exists (reaped or zombie-free)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:   # a zombie child of ours counts as gone
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def same_records(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, same rows, same order."""
    return a.dtype == b.dtype and len(a) == len(b) and all(
        np.array_equal(a[f], b[f]) for f in lootlab.FIELDS)


def sigcont(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


class CountingProxy:
    """A TCP forwarder on 127.0.0.1 that counts the connections it accepts.

    TLS stays end to end (the proxy only copies bytes), so the count is exactly the number
    of TCP connections a client opened, which the gRPC server cannot tell (on loopback the
    OS may reuse a closed connection's port).
    """

    def __init__(self, upstream: str):
        import threading
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.accepts = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.target = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        import threading
        while not self._closed:
            try:
                down, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.accepts += 1
            try:
                up = socket.create_connection(self.upstream)
            except OSError:
                down.close()
                continue
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        self._sock.close()

    def __enter__(self) -> "CountingProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
