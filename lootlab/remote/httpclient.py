"""A small client for the HTTP endpoint (``lootlab serve --http``), for ``lootlab.loadgen``.

``loadgen.run(functools.partial(HttpNearClient, url), schedule)`` drives the endpoint the
way wrk2 does: one keep-alive HTTP/1.1 connection per sender thread (loadgen shares one
client among a process's ``concurrency`` threads), ``GET /near?x=&y=&z=&r=``.
The class pickles by its URL (the connection is opened lazily, after any fork or spawn),
so it works as a factory for spawned load workers too.  Failures are lootlab errors: a
timeout is a ``DeadlineExceeded`` (a ``TimeoutError``, which loadgen counts as a
timeout), a 400 a ``QueryError`` with the endpoint's reason.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from ..errors import LootlabError, QueryError
from .errors import DeadlineExceeded, RemoteError, ServerUnavailable


class HttpNearClient:
    """``near`` over ``GET /near`` on a keep-alive connection per calling thread.

    ``records=False`` (the default) returns the answer's ``count`` without decoding the
    records (what a load test needs: the server did the work, the client did not parse
    1,000 JSON objects per call); ``records=True`` returns the list of record dicts.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, records: bool = False,
                 limit: int | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LootlabError(f"HttpNearClient needs an http:// or https:// URL with a host, "
                               f"got {url!r}")
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self.records = bool(records)
        self.limit = limit
        self._host = parts.hostname
        self._port = parts.port
        self._https = parts.scheme == "https"
        self._prefix = parts.path.rstrip("/")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []

    name = "http"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_local", "_lock", "_all"):   # sockets do not cross a process boundary
            del state[key]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all = []

    def __repr__(self) -> str:
        return f"HttpNearClient({self.url!r})"

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._local.conn = cls(self._host, self._port, timeout=self.timeout)
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self) -> None:
        """Close this thread's connection (after a failure); the next call reopens."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)

    def _get(self, path: str) -> bytes:
        """One GET; a keep-alive connection the server closed meanwhile is reopened once."""
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request("GET", self._prefix + path)
                resp = conn.getresponse()
                body = resp.read()
            except (TimeoutError, socket.timeout):
                self._drop()
                raise DeadlineExceeded(f"no answer from {self.url} within {self.timeout:g} s; "
                                       "the endpoint is stopped or overloaded, or raise "
                                       "timeout=", target=self.url) from None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop()
                if attempt:
                    raise ServerUnavailable(f"{self.url} closed the connection twice in a row",
                                            target=self.url) from None
                continue
            except ConnectionRefusedError:
                self._drop()
                raise ServerUnavailable(f"nothing is listening at {self.url}; is `lootlab serve "
                                        "--http` running, is the port right?",
                                        target=self.url) from None
            if resp.status == 200:
                return body
            message = _error_text(body)
            if resp.status == 400:
                raise QueryError(f"{self.url}: {message}")
            raise RemoteError(f"{self.url} answered {resp.status}: {message}", target=self.url,
                              code=str(resp.status))
        raise AssertionError("unreachable")

    def near(self, x: int, y: int, z: int, r: float) -> Any:
        """The count of records within ``r`` of (x, y, z), or the records themselves."""
        r_text = f"{int(r)}" if float(r).is_integer() else f"{float(r)!r}"
        path = f"/near?x={int(x)}&y={int(y)}&z={int(z)}&r={r_text}"
        if self.limit is not None:
            path += f"&limit={int(self.limit)}"
        body = self._get(path)
        if not self.records:
            head = body[:48]            # {"count":N,... - no need to parse the records
            start = head.find(b'"count":')
            if start >= 0:
                end = head.find(b",", start)
                if end > 0:
                    return int(head[start + 8:end])
            return int(json.loads(body)["count"])
        return json.loads(body)["records"]

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> HttpNearClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", body[:200]))
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")
