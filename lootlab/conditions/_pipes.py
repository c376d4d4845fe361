"""The proxy's per-connection state: a ``Conn`` (client and upstream sockets) and its two
``Pipe``s, one per direction, each a queue of chunks waiting for their due time."""

from __future__ import annotations

import socket
from collections import deque

from .delays import OneWay


class Pipe:
    """One direction of one connection: chunks waiting for their due time."""

    __slots__ = (
        "blocked",
        "c2s",
        "conn",
        "dst",
        "eof_in",
        "eof_out",
        "last_due",
        "not_before",
        "paused",
        "queue",
        "queued",
        "src",
    )

    def __init__(self, src: socket.socket, dst: socket.socket, conn: Conn, not_before: float,
                 c2s: bool):
        self.src, self.dst, self.conn, self.c2s = src, dst, conn, c2s
        self.queue: deque[list] = deque()
        self.last_due = 0.0
        self.not_before = not_before
        self.queued = 0
        self.eof_in = self.eof_out = self.blocked = self.paused = False


class Conn:
    """A client connection and its upstream socket."""

    __slots__ = ("client", "closed", "connecting", "down", "up", "upstream")

    def __init__(self, client: socket.socket, upstream: socket.socket, accepted: float,
                 one_way: OneWay):
        self.client, self.upstream = client, upstream
        syn = one_way()
        self.up = Pipe(client, upstream, self, accepted + syn + one_way(), True)
        self.down = Pipe(upstream, client, self, accepted + syn, False)
        self.connecting = True
        self.closed = False
