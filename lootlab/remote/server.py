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

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ..index import LootIndex
from .counters import Counters
from .encode import DEFAULT_ENCODER, get_encoder
from .handlers import SERVICE, Limits, LootServicer, method_handlers, register
from .kinds import DEFAULT_SERVER, ServerError, check_server_kind
from .servertiming import TimingExecutor

__all__ = [
    "DEFAULT_SERVER",
    "SERVICE",
    "STANDARD_CLIENT_MAX_MESSAGE",
    "Limits",
    "LootServicer",
    "RunningServer",
    "ServeInfo",
    "ServerError",
    "TLSConfig",
    "serve",
    "start_server",
    "tls_config",
]
# What a standard gRPC client (grpc-js, grpc-go, grpcio...) accepts by default.
STANDARD_CLIENT_MAX_MESSAGE = 4 * 1024 * 1024
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


@dataclass
class RunningServer:
    """A started server: where it listens and how to stop it.  ``executor`` is the
    thread-pool server's worker pool (None on the asyncio server)."""

    server: Any
    servicer: LootServicer
    host: str
    port: int
    tls: TLSConfig | None
    executor: TimingExecutor | None
    kind: str = DEFAULT_SERVER

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}" if ":" not in self.host else f"[{self.host}]:{self.port}"

    def stop(self, grace: float | None = 5.0) -> None:
        """Refuse new calls, let running ones finish for up to ``grace`` seconds."""
        if self.kind == "aio":
            from .aioserver import stop_aio
            stop_aio(self.server, grace)
        else:
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
                 delay: float = 0.0, encoder: str = DEFAULT_ENCODER,
                 counters: Counters | None = None, reuse_port: bool = False,
                 server: str = DEFAULT_SERVER) -> RunningServer:
    """Start a gRPC server on ``host:port`` (0 picks a free port) answering from ``index``.

    ``max_concurrent_streams`` (None: no limit) is per connection; calls beyond
    ``workers`` queue; more than ``max_pending_rpcs`` calls in the server at once get
    RESOURCE_EXHAUSTED.  ``delay`` seconds before every query is fault injection (tests).
    ``encoder`` is ``"fast"`` (default) or ``"python"`` (the naive per-record loop, to
    show what it costs).  ``reuse_port`` lets other server processes bind the same port.
    ``server`` is ``"sync"`` (gRPC's thread-pool server, ``workers`` threads) or ``"aio"``
    (its asyncio server: every handler on one event loop; ``workers`` is unused).
    """
    get_encoder(encoder)                      # a bad name fails before anything binds
    check_server_kind(server)
    options = [
        ("grpc.max_concurrent_streams", max_concurrent_streams or UNLIMITED_STREAMS),
        ("grpc.max_receive_message_length", limits.max_request_bytes),
        ("grpc.max_send_message_length", limits.max_response_bytes),
        ("grpc.so_reuseport", int(reuse_port)),
    ]
    servicer = LootServicer(index, limits, delay, encoder, counters)
    address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if server == "aio":
        from .aioserver import start_aio
        started, bound = start_aio(servicer, address=address, tls=tls, options=options,
                                   max_pending_rpcs=max_pending_rpcs, bind=_add_port)
        return RunningServer(started, servicer, host, bound, tls, None, "aio")
    executor = TimingExecutor(max_workers=workers, thread_name_prefix="lootlab-grpc")
    pool = grpc.server(executor, options=options, maximum_concurrent_rpcs=max_pending_rpcs)
    register(method_handlers(servicer), pool)
    try:
        bound = _add_port(pool, address, tls)
    except BaseException:
        executor.shutdown(wait=False)
        raise
    pool.start()
    return RunningServer(pool, servicer, host, bound, tls, executor, "sync")


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


def _add_port(server: Any, address: str, tls: TLSConfig | None) -> int:
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
    encoder: str = DEFAULT_ENCODER
    processes: int = 1
    pids: tuple[int, ...] = ()        # every server process, this one first
    server: str = DEFAULT_SERVER      # "sync" (thread pool) or "aio" (asyncio)


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
          stop: threading.Event | None = None, delay: float = 0.0,
          encoder: str | None = None, processes: int | None = None,
          counters: Counters | None = None, reuse_port: bool = False,
          server: str | None = None) -> None:
    """Run the service until ``stop`` is set (or SIGTERM/SIGINT in the main thread).

    Shutdown is graceful: new calls are refused and running ones get ``grace`` seconds.
    ``encoder`` / ``processes`` / ``server`` None mean ``"fast"`` / 1 / ``DEFAULT_SERVER``.
    With ``processes`` > 1 this process serves and starts the others on the same port
    (``lootlab.remote.group``); ``counters``/``reuse_port`` are how such a member joins.
    """
    import signal

    from ..index import open_index
    from . import group
    from .counters import CounterTable

    encoder = encoder or DEFAULT_ENCODER
    processes = processes or 1
    server = check_server_kind(server or DEFAULT_SERVER)
    get_encoder(encoder)
    if processes < 1:
        raise ServerError(f"processes must be at least 1, got {processes}")
    table = CounterTable.shared(processes) if processes > 1 else None
    if table is not None:
        counters, reuse_port = Counters(table, slot=0), True
        address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        try:
            group.check_port_free(host, port)
        except OSError as exc:
            raise ServerError(f"cannot listen on {address}: "
                              f"{_bind_problem('address already in use')}") from exc
    stop = stop or threading.Event()
    index = open_index(index_path)
    members: list = []
    try:
        running = start_server(index, host=host, port=port, tls=tls, workers=workers,
                               max_concurrent_streams=max_concurrent_streams, limits=limits,
                               delay=delay, encoder=encoder, counters=counters,
                               reuse_port=reuse_port, server=server)
        if table is not None:
            try:
                members = group.start_members(
                    index_path, table, host=host, port=running.port, tls=tls,
                    options={"workers": workers, "max_concurrent_streams":
                             max_concurrent_streams, "limits": limits, "delay": delay,
                             "encoder": encoder, "server": server})
            except BaseException:
                running.stop(0)
                raise
    except BaseException:
        index.close()
        raise
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        if on_ready:
            pids = (os.getpid(), *(m.pid for m in members))
            on_ready(ServeInfo(target=running.target, tls=tls is not None,
                               ca=str(tls.ca) if tls and tls.ca else None,
                               mutual_tls=bool(tls and tls.client_ca), index=str(index_path),
                               records=len(index), generation=index.generation,
                               pid=os.getpid(), encoder=encoder, processes=processes,
                               pids=pids, server=server))
        while not stop.wait(0.5):
            pass
    finally:
        stopper = threading.Thread(target=group.stop_members, args=(members, grace + 5),
                                   name="lootlab-stop-members")
        stopper.start()                       # members and this process drain together
        running.stop(grace)
        stopper.join()
        if table is not None and table.fd is not None:
            os.close(table.fd)
        index.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
