"""What ``lootlab serve`` runs: one function per mode, with the messages a user needs
(where the server listens, which CA to give clients, how to connect).

The HTTP mode serves a variant's answers, so it reaches that variant through
``lootlab.targets``: this module sits above the clients, not beside the servers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import LootlabError

Echo = Callable[[str], None]


def _index_path(index: Path | None) -> Path:
    if index is not None:
        if not Path(index).is_file():
            raise LootlabError(f"index {index} does not exist: build one with `lootlab build`, "
                               f"or omit --index to use the default")
        return Path(index)
    from ..paths import ensure_default_index
    return ensure_default_index()


def _populated_spot(path: Path) -> tuple[int, int, int]:
    """A position that holds loot, so the suggested first query finds some (on the
    default world, 16824 64 6566: 1,275 records within r = 64)."""
    from ..index import open_index
    with open_index(path) as idx:
        if len(idx) == 0:
            return 0, 64, 0
        p = idx.sample(1, seed=0)[0]
        return int(p["x"]), int(p["y"]), int(p["z"])


def run_grpc(*, index: Path | None = None, host: str = "127.0.0.1", port: int = 50051,
             plaintext: bool = False, cert: Path | None = None, key: Path | None = None,
             client_ca: Path | None = None, workers: int = 8, max_streams: int | None = None,
             encoder: str | None = None, processes: int | None = None,
             server: str | None = None, echo: Echo = print) -> None:
    """Serve the gRPC loot service until SIGTERM/SIGINT (``encoder``, ``processes`` and
    ``server`` as ``serve`` takes them; None: its defaults)."""
    from .server import ServeInfo, serve, tls_config

    path = _index_path(index)
    tls = tls_config(plaintext=plaintext, cert=cert, key=key, client_ca=client_ca)

    def ready(info: ServeInfo) -> None:
        mode = "plaintext" if not info.tls else ("mutual TLS" if info.mutual_tls else "TLS")
        echo(f"lootlab: serving {info.index} ({info.records:,} records, generation "
             f"{info.generation}) over {mode} on {info.target} (pid {info.pid})")
        if info.tls:
            echo(f"  CA certificate for clients: {info.ca or '(the CA that signed --cert)'}")
            variant, extra = "grpc-tls-pooled", f", ca={str(info.ca)!r}" if info.ca else ""
            if info.mutual_tls:
                extra += ", client_cert=..., client_key=..."
        else:
            variant, extra = "grpc-plain", ""
        echo(f"  connect: lootlab.connect({variant!r}, target={info.target!r}{extra})")
        echo("  stop with Ctrl-C or SIGTERM (running calls finish first)")

    serve(path, host=host, port=port, tls=tls, workers=workers,
          max_concurrent_streams=max_streams, on_ready=ready, encoder=encoder,
          processes=processes, server=server)
    echo("lootlab: server stopped")


def run_http(*, index: Path | None = None, host: str = "127.0.0.1", port: int = 8080,
             https: bool = False, cert: Path | None = None, key: Path | None = None,
             backend: str = "mmap", target: str | None = None, ca: Path | None = None,
             client_cert: Path | None = None, client_key: Path | None = None,
             max_results: int = 1000, echo: Echo = print) -> None:
    """Serve the JSON search endpoint over ``backend`` until SIGTERM/SIGINT."""
    from .http import HttpInfo, serve_http

    path = _index_path(index)
    if (cert is None) != (key is None):
        raise LootlabError("give both --cert and --key, or neither")
    if (cert or key) and not https:
        raise LootlabError("--cert/--key with --http need --https")
    certfile, keyfile = cert, key
    if https and cert is None:
        from .tls import ensure_dev_tls
        files = ensure_dev_tls()
        certfile, keyfile = files.cert, files.key
    from ..targets import client_factory
    from ..variants import get
    from .endpoint import Endpoint

    variant = get(backend)
    loopback = None
    if not variant.remote:
        client = client_factory(variant, index=path)()
    else:
        if target is None:
            from .loopback import LoopbackServer
            loopback = LoopbackServer(path, tls=variant.tls).start()
            echo(f"lootlab: started a loopback gRPC server on {loopback.target} for the "
                 f"{backend} backend")
            where = loopback.endpoint
        else:
            where = Endpoint(target, tls=variant.tls, ca=str(ca) if ca else None,
                             client_cert=str(client_cert) if client_cert else None,
                             client_key=str(client_key) if client_key else None)
        client = client_factory(variant, where)()

    x, y, z = _populated_spot(path)

    def ready(info: HttpInfo) -> None:
        echo(f"lootlab: search endpoint on {info.url} (backend {info.backend}, at most "
             f"{info.max_results} records per answer)")
        echo(f"  try: curl '{info.url}/near?x={x}&y={y}&z={z}&r=64'")
        echo("  stop with Ctrl-C or SIGTERM")

    try:
        serve_http(client, host=host, port=port, certfile=certfile, keyfile=keyfile,
                   max_results=max_results, on_ready=ready)
    finally:
        client.close()
        if loopback is not None:
            loopback.stop()
    echo("lootlab: endpoint stopped")
