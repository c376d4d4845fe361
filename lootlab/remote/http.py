"""The player-facing search endpoint: ``GET /near`` and ``GET /get`` as JSON over HTTP(S).

A Starlette app served by uvicorn, whose search backend is any ``LootClient``: the local
index (``mmap``) or a remote variant, so the two architectures can be put behind the same
endpoint and driven with ``wrk``.  Bad query strings get 400 with a message naming the
parameter (integers are ASCII ``-?[0-9]+``, the radius a plain ASCII decimal, and no
parameter may be repeated); answers are capped at ``max_results`` records with
``truncated: true`` when more matched.
"""

from __future__ import annotations

import errno
import json
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import LootlabError, QueryError
from ..records import FIELDS

DEFAULT_MAX_RESULTS = 1000
_ROW = "{" + ",".join(f'"{name}":%d' for name in FIELDS) + "}"
MAX_RADIUS = 4096.0


class BadRequest(Exception):
    """A query string the endpoint cannot use; becomes a 400."""


# ASCII only: int() and float() also take "1_6824", " 7 ", Arabic-Indic and fullwidth
# digits, "1e3", "inf" and "nan", which no client means as a block coordinate.
_INT = re.compile(r"-?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)


def _one(params: Any, name: str) -> str:
    """The single value of parameter ``name``; missing, empty or repeated is a 400."""
    values = params.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"query parameter {name!r} is given {len(values)} times; give it once")
    if not values or values[0] == "":
        raise BadRequest(f"missing query parameter {name!r}")
    return values[0]


def _int(params: Any, name: str) -> int:
    raw = _one(params, name)
    if not _INT.fullmatch(raw):
        raise BadRequest(f"query parameter {name!r} must be an integer (ASCII digits, "
                         f"optional leading '-'), got {raw!r}")
    return int(raw)


def _radius(params: Any) -> float:
    raw = _one(params, "r")
    if not _DECIMAL.fullmatch(raw):
        raise BadRequest(f"query parameter 'r' must be a plain decimal number such as 64 or "
                         f"12.5, got {raw!r}")
    r = float(raw)
    if not 0 <= r <= MAX_RADIUS:
        raise BadRequest(f"query parameter 'r' must be in [0, {MAX_RADIUS:g}], got {raw!r}")
    return float(int(r)) if r.is_integer() else r


def _no_repeats(params: Any) -> None:
    for name in params:
        if len(params.getlist(name)) > 1:
            _one(params, name)


def _json(body: dict[str, Any], status: int = 200):
    from starlette.responses import Response
    return Response(json.dumps(body, separators=(",", ":")), status_code=status,
                    media_type="application/json")


def create_app(client: Any, *, max_results: int = DEFAULT_MAX_RESULTS, blocking: bool | None = None):
    """The ASGI app over ``client`` (a ``LootClient``).

    ``blocking`` calls that wait on the network run in the thread pool; the local index
    answers in microseconds, so by default ``mmap`` is called on the event loop.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response
    from starlette.routing import Route

    from ..variants import REGISTRY

    if blocking is None:     # only a registered local variant is known not to wait
        name = getattr(client, "name", "")
        blocking = name not in REGISTRY or REGISTRY.get(name).remote

    async def call(fn: Callable, *args: Any) -> Any:
        return await run_in_threadpool(fn, *args) if blocking else fn(*args)

    def failure(exc: Exception):
        if isinstance(exc, (BadRequest, QueryError)):
            return _json({"error": str(exc)}, 400)
        return _json({"error": f"search backend failed: {exc}"}, 502)

    async def near(request):
        try:
            q = request.query_params
            _no_repeats(q)
            x, y, z, r = _int(q, "x"), _int(q, "y"), _int(q, "z"), _radius(q)
            limit = _int(q, "limit") if "limit" in q else max_results
            if not 0 <= limit <= max_results:
                raise BadRequest(f"query parameter 'limit' must be in [0, {max_results}]")
            res = await call(client.near, x, y, z, r)
        except (BadRequest, LootlabError) as exc:
            return failure(exc)
        rows = res[:limit].tolist()
        # every field is an integer: a %-template per row is 4x faster than dicts + json.dumps
        body = (f'{{"count":{len(res)},"returned":{len(rows)},'
                f'"truncated":{"true" if len(res) > limit else "false"},"records":['
                + ",".join([_ROW % row for row in rows]) + "]}")
        return Response(body, media_type="application/json")

    async def get(request):
        try:
            q = request.query_params
            _no_repeats(q)
            rec = await call(client.get, _int(q, "x"), _int(q, "y"), _int(q, "z"))
        except (BadRequest, LootlabError) as exc:
            return failure(exc)
        return _json({"found": rec is not None, "record": rec._asdict() if rec else None})

    async def health(request):
        return _json({"ok": True, "backend": getattr(client, "name", type(client).__name__)})

    return Starlette(routes=[Route("/near", near), Route("/get", get), Route("/healthz", health)])


@dataclass(frozen=True)
class HttpInfo:
    url: str
    backend: str
    max_results: int


def serve_http(client: Any, *, host: str = "127.0.0.1", port: int = 8080,
               certfile: str | Path | None = None, keyfile: str | Path | None = None,
               max_results: int = DEFAULT_MAX_RESULTS,
               on_ready: Callable[[HttpInfo], None] | None = None) -> None:
    """Serve the endpoint with uvicorn until SIGINT/SIGTERM (uvicorn shuts down gracefully)."""
    import uvicorn

    sock = listen_socket(host, port)
    app = create_app(client, max_results=max_results)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            ssl_certfile=str(certfile) if certfile else None,
                            ssl_keyfile=str(keyfile) if keyfile else None, lifespan="off")
    server = uvicorn.Server(config)
    if on_ready is not None:
        scheme = "https" if certfile else "http"
        started = server.startup

        async def startup(sockets=None):
            await started(sockets=sockets)
            if server.started:
                bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
                on_ready(HttpInfo(f"{scheme}://{host}:{bound}", getattr(client, "name", "?"),
                                  max_results))
        server.startup = startup  # type: ignore[method-assign]
    # uvicorn re-raises the signal that stopped it once it has shut down; with a no-op
    # handler installed first, that lands here instead of killing the process before the
    # caller's cleanup (closing the backend, stopping a loopback server) runs.
    import signal
    import threading
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: None)
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:     # uvicorn exits on a startup failure it has logged
        if server.started:
            raise
        raise LootlabError(f"the endpoint on {host}:{port} did not start (uvicorn exited "
                           f"with code {exc.code})") from None
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound socket for uvicorn.  Binding here, not in uvicorn, turns "port in use" into
    one lootlab error naming the address instead of uvicorn's log line and exit code 3."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise LootlabError(f"cannot listen on {host}:{port}: unknown host ({exc.strerror})") \
            from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as uvicorn does
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise LootlabError(f"cannot listen on {host}:{port}: {_bind_problem(exc)}") from None
    return sock


def _bind_problem(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return ("the port is in use (another `lootlab serve`?); pick another --http port "
                "(0 picks a free one)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the host is not an address of this machine (see --host)"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges); pick another port"
    return exc.strerror or str(exc)
