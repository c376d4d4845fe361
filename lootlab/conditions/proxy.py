"""The delaying TCP proxy process: ``python -m lootlab.conditions.proxy --upstream HOST:PORT``.

It listens on ``--host`` (a free port unless ``--port``), prints one JSON ready line
(``{"target", "port", "pid", ...}``), and forwards every connection to the upstream,
delaying each direction as ``lootlab.conditions.delays`` describes (half the RTT plus
uniform jitter per chunk, byte order kept, bandwidth metered per direction for the whole
proxy).  It exits when its stdin closes (its parent died or stopped it), on SIGTERM, or
when its parent pid changes; a ``stats`` line on stdin answers with a JSON line of counters.

The TCP handshake: the client's ``connect()`` to this proxy returns at once, but a real
client could not send before the SYN-ACK came back, so a new connection's client->server
bytes are held until one extra round trip (two one-way draws) after the accept; bytes
the server sends first wait one one-way draw (its SYN had to arrive).

Precision in Python: one epoll loop in its own process (its CPU does not compete with the
client's GIL, nor sit in the client's cgroup); a ``timerfd`` (via ctypes) in the epoll set
for wake-ups finer than epoll's 1 ms timeout, with ``PR_SET_TIMERSLACK`` at 1 ns; the timer
is armed early by the measured wake-up latency and the last few microseconds are spun;
arrival times are the kernel's receive timestamps (``SO_TIMESTAMPNS``) where available, so
the proxy's own wake-up delay is absorbed into the asked delay instead of added to it.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import select
import signal
import socket
import struct
import sys
import time

from ._pipes import Conn, Pipe
from ._timer import Timer, realtime
from .delays import OneWay, due_time

_SO_TIMESTAMPNS = 35            # Linux; SCM_TIMESTAMPNS has the same value
_CHUNK = 65536
_PAUSE_BYTES = 4 << 20          # stop reading a source while this much waits for its link
_SPIN_S = 30e-6                 # busy-wait at most this long for a chunk's due time
_IN, _OUT = select.EPOLLIN, select.EPOLLOUT
_ERR = select.EPOLLERR | select.EPOLLHUP


class Proxy:
    """The event loop (see the module docstring)."""

    def __init__(self, upstream: tuple[str, int], rtt_ms: float, jitter_ms: float,
                 bandwidth_mbit: float | None, seed: int, host: str, port: int):
        family, _, _, _, self.upstream = socket.getaddrinfo(*upstream, type=socket.SOCK_STREAM)[0]
        self.family = family
        self.one_way = OneWay(rtt_ms / 1000, jitter_ms / 1000, seed)
        self.spb = 8 / (bandwidth_mbit * 1e6) if bandwidth_mbit else 0.0
        # kernel receive times only where a delay can absorb the proxy's wake-up (they
        # cost a recvmsg and a clock read per chunk)
        self.stamps = rtt_ms > 0 or jitter_ms > 0
        self.link_free = {True: 0.0, False: 0.0}            # per direction, whole proxy
        self.listener = socket.create_server((host, port), backlog=512)
        self.listener.setblocking(False)
        self.ep = select.epoll()
        self.timer = Timer()
        self.heap: list[tuple[float, int, Pipe]] = []
        self.seq = 0
        self.armed = float("inf")
        self.wake_late = 50e-6                               # EWMA of timer lateness
        self.lead = 10e-6          # EWMA of one send(): started that early, it lands on time
        self.socks: dict[int, tuple[Conn, socket.socket]] = {}
        self.running = True
        self.stats = {"connections": 0, "open": 0, "chunks_up": 0, "chunks_down": 0,
                      "bytes_up": 0, "bytes_down": 0, "max_late_us": 0.0, "sum_late_us": 0.0,
                      "kernel_timestamps": 0}
        self.ep.register(self.listener.fileno(), _IN)
        self.ep.register(0, _IN)
        if self.timer.fd >= 0:
            self.ep.register(self.timer.fd, _IN)

    # -- sockets --------------------------------------------------------------------------
    def _mask(self, conn: Conn, sock: socket.socket) -> None:
        out_pipe, in_pipe = (conn.up, conn.down) if sock is conn.client else (conn.down, conn.up)
        mask = 0
        if not out_pipe.eof_in and not out_pipe.paused:
            mask |= _IN
        if in_pipe.blocked or (sock is conn.upstream and conn.connecting):
            mask |= _OUT
        try:
            if mask or not (out_pipe.eof_in and in_pipe.eof_out):
                self.ep.modify(sock.fileno(), mask)
            else:                      # nothing more to read or write: no HUP wake-ups
                self.ep.unregister(sock.fileno())
        except (OSError, ValueError):
            pass

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            now = time.monotonic()
            client.setblocking(False)
            up = socket.socket(self.family)
            up.setblocking(False)
            for s in (client, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.stamps:
                    try:
                        s.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                    except OSError:
                        self.stamps = False
            up.connect_ex(self.upstream)
            conn = Conn(client, up, now, self.one_way)
            self.stats["connections"] += 1
            self.stats["open"] += 1
            for s in (client, up):
                self.socks[s.fileno()] = (conn, s)
                self.ep.register(s.fileno(), 0)
                self._mask(conn, s)

    def _close(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.stats["open"] -= 1
        for s in (conn.client, conn.upstream):
            fd = s.fileno()
            if fd >= 0:
                self.socks.pop(fd, None)
                try:
                    self.ep.unregister(fd)
                except (OSError, ValueError):
                    pass
            s.close()

    def _read(self, conn: Conn, pipe: Pipe) -> None:
        try:
            if self.stamps:
                data, anc, _, _ = pipe.src.recvmsg(_CHUNK, 64)
            else:
                data, anc = pipe.src.recv(_CHUNK), None
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        now = time.monotonic()
        arrival = now
        if anc and len(anc[0][2]) >= 16:   # the kernel's receive time (realtime clock)
            sec, nsec = struct.unpack_from("qq", anc[0][2])
            kernel = now - (time.time() - (sec + nsec * 1e-9))
            if now - 0.5 < kernel <= now:
                arrival = kernel
                self.stats["kernel_timestamps"] += 1
        arrival = max(arrival, pipe.not_before)
        n = len(data)
        due, self.link_free[pipe.c2s] = due_time(arrival, n, self.one_way(), pipe.last_due,
                                                 self.link_free[pipe.c2s], self.spb)
        pipe.last_due = due
        if not n:
            pipe.eof_in = True
            self._mask(conn, pipe.src)
        elif due <= now and not pipe.queue and not conn.connecting:
            try:                      # due already (no delay): straight through
                sent = pipe.dst.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(conn)
                return
            self._count(pipe, sent, now - due)
            if sent < n:              # the rest waits for the destination to drain
                pipe.queue.append([due, memoryview(data)[sent:], True])
                pipe.queued += n - sent
                pipe.blocked = True
                self._mask(conn, pipe.dst)
            return
        pipe.queue.append([due, data if n else None, False])
        pipe.queued += n
        if pipe.queued > _PAUSE_BYTES and not pipe.paused:
            pipe.paused = True
            self._mask(conn, pipe.src)
        if due <= now:
            self._flush(pipe, now)
        else:
            self.seq += 1
            heapq.heappush(self.heap, (due, self.seq, pipe))

    def _flush(self, pipe: Pipe, now: float) -> None:
        """Send every chunk of ``pipe`` due by ``now`` (until the destination is full)."""
        conn = pipe.conn
        if conn.closed or conn.connecting:
            return
        queue = pipe.queue
        while queue and queue[0][0] <= now:
            item = queue[0]
            data = item[1]
            if not item[2]:
                item[2] = True
                self._count(pipe, 0, time.monotonic() + self.lead - item[0])
            if data is None:
                queue.popleft()
                pipe.eof_out = True
                try:
                    pipe.dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                if conn.up.eof_out and conn.down.eof_out:
                    self._close(conn)
                return
            try:
                t = time.monotonic()
                sent = pipe.dst.send(data)
                cost = time.monotonic() - t
                if cost < 1e-4:
                    self.lead += (cost - self.lead) / 16
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(conn)
                return
            pipe.queued -= sent
            self._count(pipe, sent, None)
            if sent < len(data):
                item[1] = memoryview(data)[sent:]
                if not pipe.blocked:
                    pipe.blocked = True
                    self._mask(conn, pipe.dst)
                return
            queue.popleft()
        if pipe.blocked:
            pipe.blocked = False
            self._mask(conn, pipe.dst)
        if pipe.paused and pipe.queued < _PAUSE_BYTES // 2:
            pipe.paused = False
            self._mask(conn, pipe.src)

    def _count(self, pipe: Pipe, sent: int, late: float | None) -> None:
        """Note ``sent`` bytes, and (unless ``late`` is None) one chunk leaving ``late``
        seconds after its due time."""
        stats = self.stats
        stats["bytes_up" if pipe.c2s else "bytes_down"] += sent
        if late is not None:
            late *= 1e6
            stats["chunks_up" if pipe.c2s else "chunks_down"] += 1
            stats["sum_late_us"] += late
            stats["max_late_us"] = max(stats["max_late_us"], late)

    def _writable(self, conn: Conn, sock: socket.socket) -> None:
        if sock is conn.upstream and conn.connecting:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self._close(conn)
                return
            conn.connecting = False
            self._mask(conn, sock)
        pipe = conn.up if sock is conn.upstream else conn.down
        pipe.blocked = False
        self._flush(pipe, time.monotonic())
        self._mask(conn, sock)

    # -- timers ---------------------------------------------------------------------------
    def _due(self) -> float | None:
        """Flush what is due (spinning briefly for what is nearly due); return the next
        due time, or None when nothing waits."""
        heap = self.heap
        while heap:
            due = heap[0][0] - self.lead
            now = time.monotonic()
            if due - now > _SPIN_S:
                return due
            while now < due:
                now = time.monotonic()
            _, _, pipe = heapq.heappop(heap)
            self._flush(pipe, now + self.lead)
        return None

    def _control(self) -> None:
        try:
            data = os.read(0, 4096)
        except OSError:
            data = b""
        if not data:
            self.running = False
            return
        if b"stats" in data:
            s = dict(self.stats)
            chunks = s["chunks_up"] + s["chunks_down"]
            s["mean_late_us"] = s.pop("sum_late_us") / chunks if chunks else 0.0
            s["timer"] = "timerfd" if self.timer.fd >= 0 else "epoll"
            sys.stdout.write(json.dumps(s) + "\n")
            sys.stdout.flush()

    def run(self, parent: int) -> None:
        listen_fd, timer_fd = self.listener.fileno(), self.timer.fd
        checked = time.monotonic()
        while self.running:
            nxt = self._due()
            timeout = 1.0
            if nxt is not None:
                if timer_fd >= 0:
                    at = nxt - self.wake_late - 10e-6
                    if at != self.armed:
                        self.timer.arm(at)
                        self.armed = at
                else:
                    timeout = max(nxt - time.monotonic(), 0.0)
            events = self.ep.poll(timeout)
            for fd, ev in events:
                if fd == timer_fd:
                    late = time.monotonic() - self.armed
                    if 0 <= late < 3e-4:       # learn the usual, not a rare stall
                        self.wake_late += (late - self.wake_late) / 8
                    self.armed = float("inf")
                    try:
                        os.read(timer_fd, 8)
                    except BlockingIOError:
                        pass
                elif fd == listen_fd:
                    self._accept()
                elif fd == 0:
                    self._control()
                else:
                    entry = self.socks.get(fd)
                    if entry is None:
                        continue
                    conn, sock = entry
                    if ev & _OUT or (ev & _ERR and conn.connecting):
                        self._writable(conn, sock)
                    pipe = conn.up if sock is conn.client else conn.down
                    if ev & (_IN | _ERR) and not conn.closed and not pipe.eof_in:
                        self._read(conn, pipe)
            now = time.monotonic()
            if not events or now - checked > 1.0:
                checked = now
                if os.getppid() != parent:
                    self.running = False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lootlab.conditions.proxy")
    ap.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--rtt-ms", type=float, default=0.0)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--bandwidth-mbit", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parent", type=int, default=os.getppid())
    ap.add_argument("--no-realtime", action="store_true",
                    help="do not ask for SCHED_FIFO (run at normal priority)")
    args = ap.parse_args(argv)
    from ..remote.address import split_target
    from .network import Network
    Network(args.rtt_ms, args.jitter_ms, args.bandwidth_mbit)     # validates
    host, port = split_target(args.upstream)
    proxy = Proxy((host, int(port)), args.rtt_ms, args.jitter_ms, args.bandwidth_mbit,
                  args.seed, args.host, args.port)
    scheduling = "normal" if args.no_realtime else realtime()
    signal.signal(signal.SIGTERM, lambda *_: setattr(proxy, "running", False))
    bound = proxy.listener.getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    sys.stdout.write(json.dumps({"target": f"{shown}:{bound[1]}", "port": bound[1],
                                 "pid": os.getpid(), "upstream": args.upstream,
                                 "timer": "timerfd" if proxy.timer.fd >= 0 else "epoll",
                                 "scheduling": scheduling}) + "\n")
    sys.stdout.flush()
    proxy.run(args.parent)
    return 0


if __name__ == "__main__":
    from ..errors import LootlabError
    try:
        sys.exit(main())
    except LootlabError as exc:
        print(f"lootlab: error: {exc}", file=sys.stderr)
        sys.exit(1)
