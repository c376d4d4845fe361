"""The gRPC loot service: answers ``Get/Near/Box/Knn`` from a ``LootIndex``.

Because it queries a ``LootIndex``, a newly published index file is picked up without a
restart.  The server binds to 127.0.0.1 unless told otherwise, uses TLS by default
(a development CA is created on first use), validates every request (``INVALID_ARGUMENT``
with a message, never a crash), and bounds its worker pool, pending calls, request size
and answer size, with defaults a standard gRPC client works with (no per-connection
stream limit: calls queue, they are not refused; answers fit in 4 MiB).  ``ServerStats``
counts connections and resumed TLS sessions, so tests can prove what each client variant
really does on the wire.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import sys
import tempfile
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import grpc
import numpy as np

from ..errors import LootlabError, QueryError
from ..index import LootIndex
from ..records import RESULT_DTYPE, Records, results_to_records
from . import loot_pb2 as pb
from . import loot_pb2_grpc as pb_grpc

SERVICE = "lootlab.v1.LootService"
# What a standard gRPC client (grpc-js, grpc-go, grpcio...) accepts by default.
STANDARD_CLIENT_MAX_MESSAGE = 4 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one request may ask for.  Larger answers are refused (OUT_OF_RANGE), not
    truncated.  ``max_results`` keeps every answer inside a standard client's 4 MiB
    receive limit: a record takes at most 43 bytes as a repeated ``Record`` (41 for its
    fields at their longest varints, 2 for tag and length) and 24 packed, so 95,000
    records are at most 4,085,011 bytes (with ``generation``) of 4,194,304.  Raising it
    needs clients that accept more (``grpc.max_receive_message_length``)."""

    max_radius: float = 4096.0
    max_k: int = 10_000
    max_results: int = 95_000
    max_request_bytes: int = 16 * 1024
    max_response_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class TLSConfig:
    """Server TLS: certificate and key PEM files; ``client_ca`` turns on mutual TLS."""

    cert: Path
    key: Path
    ca: Path | None = None          # the CA clients should trust (printed for users)
    client_ca: Path | None = None   # require client certificates signed by this CA

    def credentials(self) -> grpc.ServerCredentials:
        pair = [(Path(self.key).read_bytes(), Path(self.cert).read_bytes())]
        if self.client_ca is None:
            return grpc.ssl_server_credentials(pair)
        return grpc.ssl_server_credentials(pair, root_certificates=Path(self.client_ca).read_bytes(),
                                           require_client_auth=True)


class ServerError(LootlabError):
    """The server could not start (port taken, bad certificate files...)."""


@dataclass
class _Counters:
    requests: int = 0
    connections: int = 0
    tls_connections: int = 0
    tls_resumed: int = 0
    tls_requests: int = 0
    resumed_requests: int = 0
    peers: "collections.OrderedDict[str, None]" = field(default_factory=collections.OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    _MAX_PEERS = 65_536

    def note(self, context: grpc.ServicerContext) -> None:
        peer = context.peer()
        auth = context.auth_context() or {}
        tls = auth.get("transport_security_type") == [b"ssl"]
        resumed = tls and auth.get("ssl_session_reused") == [b"true"]
        with self.lock:
            self.requests += 1
            self.tls_requests += tls
            self.resumed_requests += resumed
            if peer in self.peers:
                return
            self.peers[peer] = None
            if len(self.peers) > self._MAX_PEERS:
                self.peers.popitem(last=False)
            self.connections += 1
            self.tls_connections += tls
            self.tls_resumed += resumed


def _point(p: pb.Point) -> tuple[int, int, int]:
    return p.x, p.y, p.z


class LootServicer(pb_grpc.LootServiceServicer):
    """Request handlers.  Validation errors become INVALID_ARGUMENT with the reason."""

    def __init__(self, index: LootIndex, limits: Limits = Limits(), delay: float = 0.0):
        self.index = index
        self.limits = limits
        self.delay = delay
        self.counters = _Counters()

    # -- helpers -----------------------------------------------------------------------
    def _answer(self, res: Records, packed: bool, context: grpc.ServicerContext) -> pb.Records:
        n = len(res)
        if n > self.limits.max_results:
            context.abort(grpc.StatusCode.OUT_OF_RANGE,
                          f"query matched {n:,} records; this server returns at most "
                          f"{self.limits.max_results:,}: use a smaller radius, box or k")
        out = pb.Records(generation=self.index.generation)
        if packed:
            out.packed = results_to_records(res).tobytes()
        elif n:
            add = out.records.add
            for x, y, z, item_id, value, quantity, rarity, flags, tick in res.tolist():
                add(x=x, y=y, z=z, item_id=item_id, value=value, quantity=quantity,
                    rarity=rarity, flags=flags, tick=tick)
        return out

    def _pause(self, context: grpc.ServicerContext) -> None:
        """Fault injection (``delay``): a slow server, for tests of client timeouts.  The
        wait ends early when the call does (deadline, cancel), so it holds no worker longer."""
        done = threading.Event()
        if context.add_callback(done.set):
            done.wait(self.delay)

    def _run(self, context: grpc.ServicerContext, query: Callable[[], object]):
        self.counters.note(context)
        if self.delay > 0:
            self._pause(context)
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the query ran")
        try:
            res = query()
        except QueryError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return res

    def _bad(self, context: grpc.ServicerContext, message: str) -> None:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)

    # -- RPCs --------------------------------------------------------------------------
    def Get(self, request: pb.GetRequest, context: grpc.ServicerContext) -> pb.Records:
        rec = self._run(context, lambda: self.index.get(*_point(request.at)))
        out = pb.Records(generation=self.index.generation)
        if rec is None:
            return out
        if request.packed:
            res = np.array([tuple(rec)], dtype=RESULT_DTYPE)
            out.packed = results_to_records(res).tobytes()
        else:
            out.records.add(**rec._asdict())
        return out

    def Near(self, request: pb.NearRequest, context: grpc.ServicerContext) -> pb.Records:
        r = request.radius
        if not math.isfinite(r) or r < 0 or r > self.limits.max_radius:
            self._bad(context, f"radius must be a finite number in [0, {self.limits.max_radius:g}], "
                               f"got {r!r}")
        res = self._run(context, lambda: self.index.near(*_point(request.at), r))
        return self._answer(res, request.packed, context)

    def Box(self, request: pb.BoxRequest, context: grpc.ServicerContext) -> pb.Records:
        lo, hi = _point(request.lo), _point(request.hi)
        if any(a > b for a, b in zip(lo, hi)):
            self._bad(context, f"box lo {lo} must be <= hi {hi} on every axis")
        res = self._run(context, lambda: self.index.box(lo, hi))
        return self._answer(res, request.packed, context)

    def Knn(self, request: pb.KnnRequest, context: grpc.ServicerContext) -> pb.Records:
        if request.k > self.limits.max_k:
            self._bad(context, f"k must be in [0, {self.limits.max_k}], got {request.k}")
        res = self._run(context,
                        lambda: self.index.knn(*_point(request.at), int(request.k)))
        return self._answer(res, request.packed, context)

    def ServerStats(self, request: pb.StatsRequest, context: grpc.ServicerContext) -> pb.Stats:
        c = self.counters
        with c.lock:
            return pb.Stats(requests=c.requests, connections=c.connections,
                            tls_connections=c.tls_connections, tls_resumed=c.tls_resumed,
                            tls_requests=c.tls_requests, resumed_requests=c.resumed_requests,
                            generation=self.index.generation, records=len(self.index))


@dataclass
class RunningServer:
    """A started server: where it listens and how to stop it."""

    server: grpc.Server
    servicer: LootServicer
    host: str
    port: int
    tls: TLSConfig | None

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}" if ":" not in self.host else f"[{self.host}]:{self.port}"

    def stop(self, grace: float | None = 5.0) -> None:
        """Refuse new calls, let running ones finish for up to ``grace`` seconds."""
        self.server.stop(grace).wait()


# gRPC core refuses (RST_STREAM REFUSED_STREAM, seen as UNAVAILABLE "Stream refused") the
# streams a client opens beyond this per connection, even with the option unset (grpcio
# 1.85 refused a fresh channel's 101st call), so "no limit" is said explicitly.  Work is
# bounded by the worker pool instead: calls beyond ``workers`` wait in its queue.
UNLIMITED_STREAMS = 2**31 - 1


def start_server(index: LootIndex, *, host: str = "127.0.0.1", port: int = 0,
                 tls: TLSConfig | None = None, workers: int = 8,
                 max_concurrent_streams: int | None = None,
                 max_pending_rpcs: int | None = 1000, limits: Limits = Limits(),
                 delay: float = 0.0) -> RunningServer:
    """Start a gRPC server on ``host:port`` (0 picks a free port) answering from ``index``.

    ``max_concurrent_streams`` (None: no limit) is per connection; calls beyond
    ``workers`` queue; more than ``max_pending_rpcs`` calls in the server at once get
    RESOURCE_EXHAUSTED.  ``delay`` seconds before every query is fault injection (tests).
    """
    options = [
        ("grpc.max_concurrent_streams", max_concurrent_streams or UNLIMITED_STREAMS),
        ("grpc.max_receive_message_length", limits.max_request_bytes),
        ("grpc.max_send_message_length", limits.max_response_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers,
                                                    thread_name_prefix="lootlab-grpc"),
                         options=options, maximum_concurrent_rpcs=max_pending_rpcs)
    servicer = LootServicer(index, limits, delay)
    pb_grpc.add_LootServiceServicer_to_server(servicer, server)
    address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    bound = _add_port(server, address, tls)
    server.start()
    return RunningServer(server, servicer, host, bound, tls)


@contextlib.contextmanager
def _stderr_captured() -> Iterator[Callable[[], str]]:
    """Send fd 2 to a temporary file for the block; yields a reader of what was written.

    gRPC core logs a failed bind from C (``E1201 ... add_port.cc``) straight to fd 2
    before Python sees the error, and lootlab's message says the same in one line.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:               # no fd 2 at all: nothing to keep clean
        yield lambda: ""
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: (sink.seek(0), sink.read().decode(errors="replace"))[1]
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _add_port(server: grpc.Server, address: str, tls: TLSConfig | None) -> int:
    """Bind ``address``; a failure is one ``ServerError`` naming the address and the cause."""
    credentials = tls.credentials() if tls else None
    error: Exception | None = None
    with _stderr_captured() as captured:
        try:
            bound = (server.add_secure_port(address, credentials) if credentials
                     else server.add_insecure_port(address))
        except (RuntimeError, OSError, ValueError) as exc:
            error, bound = exc, 0
        log = captured()
    if bound:
        if log:
            os.write(2, log.encode())     # not ours to hide: pass it on
        return bound
    raise ServerError(f"cannot listen on {address}: {_bind_problem(log)}") from error


def _bind_problem(log: str) -> str:
    """What gRPC core's bind log says went wrong, in words a user can act on."""
    low = log.lower()
    if "address already in use" in low:
        return ("the port is in use (another `lootlab serve`?); pick another --port "
                "(0 picks a free one)")
    if "cannot assign requested address" in low:
        return "the host is not an address of this machine (see --host)"
    if "permission denied" in low:
        return "permission denied (ports below 1024 need privileges); pick another --port"
    detail = low.strip().splitlines()[-1] if low.strip() else ""
    return (f"the port is in use or the host is not an address of this machine"
            f"{f' ({detail})' if detail else ''}; pick another --port (0 picks a free one)")


@dataclass(frozen=True)
class ServeInfo:
    """What a started ``serve`` tells its caller: enough to connect."""

    target: str
    tls: bool
    ca: str | None
    mutual_tls: bool
    index: str
    records: int
    generation: int
    pid: int


def tls_config(*, plaintext: bool = False, cert: Path | None = None, key: Path | None = None,
               ca: Path | None = None, client_ca: Path | None = None) -> TLSConfig | None:
    """TLS settings from CLI-style options; no cert means the development CA's localhost cert."""
    if plaintext:
        if cert or key or client_ca:
            raise ServerError("--plaintext cannot be combined with --cert/--key/--client-ca")
        return None
    if (cert is None) != (key is None):
        raise ServerError("give both --cert and --key (PEM files), or neither to use the "
                          "development CA's localhost certificate")
    if cert is None:
        from .tls import ensure_dev_tls
        files = ensure_dev_tls()
        cert, key, ca = files.cert, files.key, ca or files.ca
    for label, path in (("certificate", cert), ("key", key), ("client CA", client_ca)):
        if path is not None and not Path(path).is_file():
            raise ServerError(f"{label} file {path} does not exist")
    return TLSConfig(Path(cert), Path(key), Path(ca) if ca else None,
                     Path(client_ca) if client_ca else None)


def serve(index_path: str | Path, *, host: str = "127.0.0.1", port: int = 50051,
          tls: TLSConfig | None = None, workers: int = 8,
          max_concurrent_streams: int | None = None, limits: Limits = Limits(),
          grace: float = 5.0, on_ready: Callable[[ServeInfo], None] | None = None,
          stop: threading.Event | None = None, delay: float = 0.0) -> None:
    """Run the service until ``stop`` is set (or SIGTERM/SIGINT in the main thread).

    Shutdown is graceful: new calls are refused and running ones get ``grace`` seconds.
    """
    import signal

    from ..index import open_index

    stop = stop or threading.Event()
    index = open_index(index_path)
    try:
        running = start_server(index, host=host, port=port, tls=tls, workers=workers,
                               max_concurrent_streams=max_concurrent_streams, limits=limits,
                               delay=delay)
    except BaseException:
        index.close()
        raise
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        if on_ready:
            on_ready(ServeInfo(target=running.target, tls=tls is not None,
                               ca=str(tls.ca) if tls and tls.ca else None,
                               mutual_tls=bool(tls and tls.client_ca), index=str(index_path),
                               records=len(index), generation=index.generation,
                               pid=os.getpid()))
        while not stop.wait(0.5):
            pass
    finally:
        running.stop(grace)
        index.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
