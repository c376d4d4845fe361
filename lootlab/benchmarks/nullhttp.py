"""``python -m lootlab.benchmarks.nullhttp --port 0``: an HTTP/1.1 server whose answer
costs next to nothing, so a load generator driving it measures its own timing error.

``lootlab serve --http`` sustains about 1,000 requests/s on a 2-core machine: a tool
driving it at 10,000/s measures the server's queue, not itself.  This responder answers
every complete request (headers ended by a blank line; pipelined ones counted, GET only,
no bodies) with the same small 200 (a JSON ``count`` that ``HttpNearClient`` can read),
from one non-blocking epoll loop over raw sockets in its own process, so latency through
it is the loopback round trip plus the generator's own error.  It prints its port as the
first line on stdout once it listens, exits on SIGTERM, and exits when its parent dies
(``PR_SET_PDEATHSIG``, plus a ``getppid`` check every half second), so a killed benchmark
leaves no server behind.  Linux only (epoll).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import os
import select
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Iterator, Sequence

from ..remote.childproc import stop

BODY = b'{"count":0,"returned":0,"truncated":false,"records":[]}'
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
END = b"\r\n\r\n"
PR_SET_PDEATHSIG = 1
PARENT_POLL_S = 0.5          # how often the loop checks for an orphaning prctl missed
MAX_PENDING = 1 << 20        # bytes of an unfinished request head before the peer is cut


def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM when the parent goes; if it already went (the race
    between fork and this call), leave now."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:
        raise SystemExit(0)


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


class _Conn:
    """One client's unfinished request bytes and unsent response bytes."""

    __slots__ = ("sock", "inbuf", "outbuf")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""


def serve(listener: socket.socket, parent: int | None = None) -> None:
    """Answer on ``listener`` until SIGTERM, the parent's death or an interrupt."""
    listener.setblocking(False)
    ep = select.epoll()
    ep.register(listener.fileno(), select.EPOLLIN)
    conns: dict[int, _Conn] = {}
    lfd = listener.fileno()

    def close(fd: int) -> None:
        c = conns.pop(fd, None)
        if c is not None:
            with contextlib.suppress(OSError):
                ep.unregister(fd)
            c.sock.close()

    def flush(fd: int, c: _Conn) -> None:
        try:
            sent = c.sock.send(c.outbuf)
        except BlockingIOError:
            sent = 0
        except OSError:
            close(fd)
            return
        c.outbuf = c.outbuf[sent:]
        # wait for room only while something is left to send
        ep.modify(fd, select.EPOLLIN | (select.EPOLLOUT if c.outbuf else 0))

    try:
        while True:
            events = ep.poll(PARENT_POLL_S)
            if parent is not None and os.getppid() != parent:
                return
            for fd, ev in events:
                if fd == lfd:
                    while True:
                        try:
                            sock, _ = listener.accept()
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError as e:    # e.g. EMFILE: drop it, keep serving
                            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ECONNABORTED):
                                break
                            raise
                        sock.setblocking(False)
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        conns[sock.fileno()] = _Conn(sock)
                        ep.register(sock.fileno(), select.EPOLLIN)
                    continue
                c = conns.get(fd)
                if c is None:
                    continue
                if ev & select.EPOLLOUT and c.outbuf:
                    flush(fd, c)
                    if fd not in conns:
                        continue
                if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                    try:
                        data = c.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        close(fd)
                        continue
                    if not data:
                        close(fd)
                        continue
                    buf = c.inbuf + data
                    n = buf.count(END)
                    if n:
                        c.inbuf = buf[buf.rfind(END) + 4:]
                        c.outbuf += RESPONSE * n
                        flush(fd, c)
                    elif len(buf) > MAX_PENDING:
                        close(fd)
                    else:
                        c.inbuf = buf
    finally:
        for fd in list(conns):
            close(fd)
        ep.close()


@dataclass(frozen=True)
class NullServer:
    """A running null server: where it listens and its pid (for its CPU time)."""

    url: str
    pid: int

    def cpu_s(self) -> float:
        """User + system CPU seconds it has used (/proc/PID/stat), NaN if unreadable:
        shows whether the server could have been the bottleneck."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")


@contextlib.contextmanager
def null_server(host: str = "127.0.0.1", start_timeout: float = 30.0) -> Iterator[NullServer]:
    """The null server in a child process; yields it once it listens, stops it on exit."""
    cmd = [sys.executable, "-m", "lootlab.benchmarks.nullhttp", "--port", "0",
           "--host", host]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()       # printed once it listens: nothing to sleep on
        if not line.strip().isdigit():
            proc.kill()
            _, err = proc.communicate(timeout=start_timeout)
            raise RuntimeError(f"the null HTTP server did not start: {err[-1000:]}")
        yield NullServer(f"http://{host}:{int(line)}", proc.pid)
    finally:
        stop(proc, start_timeout)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lootlab.benchmarks.nullhttp",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args(argv)
    parent = os.getppid()
    signal.signal(signal.SIGTERM, _on_sigterm)
    _die_with_parent(parent)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(1024)
    print(listener.getsockname()[1], flush=True)
    try:
        serve(listener, parent)
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()


if __name__ == "__main__":
    main()
