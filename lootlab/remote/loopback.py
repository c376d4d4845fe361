"""A gRPC loot server in a child process on 127.0.0.1, for tests, benchmarks and defaults.

``LoopbackServer`` starts ``lootlab serve`` machinery in a subprocess, waits until the
child reports its bound port (no sleeps), and stops it on exit.  The child also exits by
itself when this process dies (it watches its stdin pipe and its parent pid), so no
orphans are left behind.  ``default_servers()`` owns the ones that ``lootlab.connect(variant)``
uses when no target is given (the embedded default).

A server knows nothing of clients, variants or network conditions: ``lootlab.targets``
connects to it (``targets.connect(variant, server)``) and puts delaying proxies in front of
it (``network=``).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import LootlabError, LootlabTimeout
from . import childproc
from .endpoint import Endpoint


class LoopbackError(LootlabError):
    """The loopback server did not start."""


class LoopbackTimeout(LoopbackError, LootlabTimeout):
    """The loopback server did not report ready in time."""


class LoopbackServer(childproc.ChildProcess):
    """``with LoopbackServer() as srv: cli = lootlab.connect("grpc-tls-pooled", srv)``.

    ``index`` defaults to the default index (built on first use); ``tls=False`` serves
    plaintext; ``client_ca`` turns on mutual TLS; ``cert``/``key`` replace the development
    certificate (tests use it for broken certificates); ``delay`` makes every query wait
    that many seconds first (a slow server, for tests of timeouts); ``encoder`` is
    ``"fast"`` or ``"python"`` (the naive per-record loop, to show what it costs);
    ``processes`` server processes share the port (``pids`` lists them all); ``server`` is
    the kind, ``"sync"`` (gRPC's thread pool) or ``"aio"`` (its asyncio server).
    """

    what, error, timed_out = "loopback server", LoopbackError, LoopbackTimeout

    def __init__(self, index: str | Path | None = None, *, tls: bool = True, port: int = 0,
                 client_ca: str | Path | None = None, cert: str | Path | None = None,
                 key: str | Path | None = None, workers: int = 8,
                 max_concurrent_streams: int | None = None,
                 limits: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 delay: float = 0.0, encoder: str = "fast", processes: int = 1,
                 pass_fds: tuple[int, ...] = (), server: str | None = None):
        from .encode import get_encoder
        from .kinds import DEFAULT_SERVER, ServerError, check_server_kind
        get_encoder(encoder)              # a bad name fails here, not in the child
        try:
            server = check_server_kind(server or DEFAULT_SERVER)
        except ServerError as exc:
            raise LoopbackError(str(exc)) from None
        if processes < 1:
            raise LoopbackError(f"processes must be at least 1, got {processes}")
        if index is None:
            from ..paths import ensure_default_index
            index = ensure_default_index()
        self.index = Path(index)
        self.tls = tls
        self.port = port
        self.encoder = encoder
        self.processes = processes
        self.server = server
        self.pass_fds = tuple(pass_fds)       # inherited by the child (shared counters)
        self.options: dict[str, Any] = {
            "index": str(self.index), "tls": tls, "port": port, "workers": workers,
            "max_concurrent_streams": max_concurrent_streams, "limits": limits or {},
            "delay": delay, "encoder": encoder, "processes": processes, "server": server,
        }
        for name, value in (("client_ca", client_ca), ("cert", cert), ("key", key)):
            if value is not None:
                self.options[name] = str(value)
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}

    # -- lifecycle (childproc.ChildProcess: start, stop, with) --------------------------
    def command(self) -> list[str]:
        opts = dict(self.options, parent=os.getpid())
        return [sys.executable, "-m", "lootlab.remote._child", json.dumps(opts)]

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def child_fds(self) -> tuple[int, ...]:
        return self.pass_fds

    # -- what clients need -------------------------------------------------------------
    @property
    def target(self) -> str:
        """Where clients connect (``host:port``)."""
        return self.info["target"]

    @property
    def ca(self) -> str | None:
        return self.info.get("ca")

    @property
    def pid(self) -> int:
        return self.info["pid"]

    @property
    def pids(self) -> list[int]:
        """Every server process: the child, then the members sharing its port."""
        return list(self.info.get("pids") or [self.pid])

    @property
    def endpoint(self) -> Endpoint:
        """How to reach this server, as data (with the development client certificate
        when it asks for mutual TLS)."""
        if not self.info:
            raise LoopbackError("the loopback server is not started; call start() first")
        return Endpoint(self.target, tls=self.tls, ca=self.ca, **self._client_cert_options())

    def stats(self) -> dict[str, Any]:
        """The server's counters (requests, connections, tls_connections, tls_resumed...),
        totals over its processes, with their CPU seconds and ``processes``."""
        return server_stats(self.endpoint)

    def _client_cert_options(self) -> dict[str, str]:
        if "client_ca" not in self.options:
            return {}
        from .tls import ensure_dev_tls
        files = ensure_dev_tls()
        return {"client_cert": str(files.client_cert), "client_key": str(files.client_key)}

    def __repr__(self) -> str:
        state = f"target={self.info.get('target')}" if self.running else "stopped"
        return (f"<LoopbackServer {state} tls={self.tls} server={self.server} "
                f"encoder={self.encoder} index={str(self.index)!r}>")


class DefaultServers:
    """The embedded default: one loopback server per transport (TLS, plaintext) on the
    default index, owned by the process that created this object.

    Started on demand by ``endpoint()``, stopped by ``stop()`` or at interpreter exit.
    Nothing is put in the environment: a spawned worker reaches the same server because
    the client factory it is handed carries the endpoint.
    """

    def __init__(self) -> None:
        self._servers: dict[bool, LoopbackServer] = {}
        self._lock = threading.Lock()
        self._owner = os.getpid()
        atexit.register(self.stop)

    def server(self, tls: bool = True) -> LoopbackServer:
        """The running server for ``tls``, started now if there is none."""
        with self._lock:
            if self._owner != os.getpid():       # a forked child must not reuse the parent's
                self._servers, self._owner = {}, os.getpid()
            srv = self._servers.get(tls)
            if srv is None or not srv.running:
                srv = self._servers[tls] = LoopbackServer(tls=tls).start()
            return srv

    def endpoint(self, tls: bool = True) -> Endpoint:
        return self.server(tls).endpoint

    def running(self) -> list[LoopbackServer]:
        return [s for s in self._servers.values() if s.running]

    def stats(self) -> dict[str, dict[str, Any]]:
        """Each running server's counters, keyed "tls" / "plain"."""
        return {("tls" if s.tls else "plain"): s.stats() for s in self.running()}

    def stop(self) -> None:
        if self._owner != os.getpid():
            return
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for srv in servers:
            srv.stop(timeout=5)

    def __repr__(self) -> str:
        live = ", ".join(f"{'tls' if s.tls else 'plain'}={s.target}" for s in self.running())
        return f"<DefaultServers pid={self._owner} {live or 'none running'}>"


_default: DefaultServers | None = None
_default_lock = threading.Lock()


def default_servers() -> DefaultServers:
    """This process's ``DefaultServers`` (created on first use)."""
    global _default
    with _default_lock:
        if _default is None or _default._owner != os.getpid():
            _default = DefaultServers()
        return _default


def _repeated(field: Any) -> bool:
    if hasattr(field, "is_repeated"):          # protobuf >= 5.x
        return bool(field.is_repeated)
    return field.label == field.LABEL_REPEATED


def server_stats(endpoint: Endpoint, *, timeout: float = 10.0) -> dict[str, Any]:
    """The counters of the server at ``endpoint`` (one ServerStats call on a new channel):
    totals over all its processes, ``cpu_seconds`` (user + system), ``processes`` and
    ``process_requests`` (a list, one count per process)."""
    import grpc

    from . import loot_pb2
    options = [("grpc.use_local_subchannel_pool", 1)]
    if endpoint.tls:
        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None
        creds = grpc.ssl_channel_credentials(read(endpoint.ca), read(endpoint.client_key),
                                             read(endpoint.client_cert))
        channel = grpc.secure_channel(endpoint.target, creds, options=options)
    else:
        channel = grpc.insecure_channel(endpoint.target, options=options)
    try:
        call = channel.unary_unary("/lootlab.v1.LootService/ServerStats",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=loot_pb2.Stats.FromString,
                                   _registered_method=True)
        try:
            resp = call(loot_pb2.StatsRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            raise LoopbackError(f"server stats from {endpoint.target} failed: "
                                f"{exc.code().name} {exc.details() or ''}".rstrip()) from None
        return {f.name: list(getattr(resp, f.name)) if _repeated(f) else getattr(resp, f.name)
                for f in resp.DESCRIPTOR.fields}
    finally:
        channel.close()
