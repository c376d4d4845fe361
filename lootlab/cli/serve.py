"""``lootlab serve``: the gRPC loot service, or (``--http``) the player-facing JSON endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._spelling import renamed_option
from ._util import LazyChoice

_FILE = click.Path(dir_okay=False, path_type=Path)


def _backends() -> list[str]:
    """Every registered variant can back the endpoint (plugins included: an entry-point
    scan, so only when serve parses its options, not for ``lootlab --help``)."""
    from ..variants import descriptions
    return list(descriptions())



@click.command("serve")
@click.option("--index", "index", type=_FILE, default=None,
              help="Index file to serve [default: data/loot.idx, built on first use].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=50051, show_default=True,
              help="gRPC port (0 picks a free one).")
@click.option("--plaintext", is_flag=True, help="Serve gRPC without TLS.")
@click.option("--cert", type=_FILE, help="Server certificate PEM (default: development CA's "
              "localhost certificate).")
@click.option("--key", type=_FILE, help="Server private key PEM.")
@click.option("--client-ca", type=_FILE, help="Require client certificates signed by this CA "
              "(mutual TLS).")
@click.option("--workers", type=click.IntRange(1, 256), default=8, show_default=True,
              help="gRPC worker threads.")
@click.option("--max-streams", type=click.IntRange(1, 2**31 - 1), default=None,
              show_default="no limit", help="Concurrent streams per connection (a client "
              "opening more is refused; calls beyond --workers queue either way).")
@click.option("--encoder", type=click.Choice(["fast", "python"]), default="fast",
              show_default=True, help="How the gRPC server encodes answers: fast (C or numpy, "
              "no per-record objects) or python (the naive per-record loop, to show its cost).")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="gRPC server processes sharing the port (SO_REUSEPORT), each with "
              "--workers threads: a way around the GIL.")
@click.option("--server", "server_kind", type=click.Choice(["sync", "aio"]), default=None,
              show_default="sync", help="gRPC server kind: sync (gRPC's thread pool, "
              "--workers threads) or aio (its asyncio server: handlers on one event loop, "
              "no thread handoff per call).")
@click.option("--http", "http_port", type=click.IntRange(0, 65535), default=None,
              help="Serve the JSON search endpoint (GET /near, /get) on this port instead.")
@click.option("--https", is_flag=True, help="With --http: serve HTTPS (the development "
              "certificate unless --cert/--key).")
@click.option("--variant", "-v", "variant", type=LazyChoice(_backends), default="mmap",
              show_default=True, metavar="NAME", help="With --http: the variant that "
              "answers, the local index or a remote variant (see lootlab.VARIANTS).")
@click.option("--backend", "legacy_backend", type=LazyChoice(_backends), default=None,
              hidden=True, help="Old name of --variant.")
@click.option("--target", help="With --http and a remote variant: host:port of the gRPC "
              "service [default: a loopback server on --index].")
@click.option("--ca", type=_FILE, help="With a remote variant: CA certificate of the service.")
@click.option("--client-cert", type=_FILE, help="With a remote variant: client certificate "
              "(mutual TLS).")
@click.option("--client-key", type=_FILE, help="With a remote variant: client key.")
@click.option("--max-results", type=click.IntRange(0, 100_000), default=1000, show_default=True,
              help="With --http: cap on records per answer (the answer says truncated).")
@click.option("--rtt-ms", metavar="MS", default=None, help="Serve through a delaying TCP proxy "
              "adding this round-trip time in ms (the printed target is the proxy's).")
@click.option("--jitter-ms", metavar="MS", default=None, help="With the proxy: spread of the "
              "RTT in ms (uniform per direction; see docs/remote.md).")
@click.option("--bandwidth-mbit", metavar="MBIT", default=None, help="With the proxy: link rate "
              "per direction in Mbit/s [default: unlimited].")
def command(index: Path | None, host: str, port: int, plaintext: bool, cert: Path | None,
            key: Path | None, client_ca: Path | None, workers: int, max_streams: int | None,
            encoder: str, processes: int, server_kind: str | None, http_port: int | None,
            https: bool, variant: str, legacy_backend: str | None, target: str | None,
            ca: Path | None, client_cert: Path | None, client_key: Path | None,
            max_results: int, rtt_ms: str | None, jitter_ms: str | None,
            bandwidth_mbit: str | None) -> None:
    """Serve an index over gRPC (TLS by default), or the HTTP search endpoint with --http."""
    from ..remote import service

    backend = renamed_option("--variant", "--backend", variant, legacy_backend)
    network = _network(rtt_ms, jitter_ms, bandwidth_mbit)
    if network is not None and http_port is not None:
        raise click.UsageError("--rtt-ms/--jitter-ms/--bandwidth-mbit apply to the gRPC "
                               "service, not to --http")

    if http_port is not None:
        service.run_http(index=index, host=host, port=http_port, https=https, cert=cert, key=key,
                         backend=backend, target=target, ca=ca, client_cert=client_cert,
                         client_key=client_key, max_results=max_results, echo=click.echo)
    else:
        from ..remote.encode import kernel
        from ..remote.server import DEFAULT_SERVER

        kind = server_kind or DEFAULT_SERVER
        label = f"fast ({kernel()})" if encoder == "fast" else "python (naive per-record loop)"

        def echo(line: str) -> None:
            click.echo(line)
            if line.startswith("  connect:"):         # after the lines users parse
                click.echo(f"  answers encoded by the {label} encoder, "
                           f"{processes} {kind} server process{'es' if processes > 1 else ''}")

        shown: Any = echo
        if network is not None:
            from ..conditions.proxies import ProxiedEcho
            shown = ProxiedEcho(echo, network, host=host)
        try:
            service.run_grpc(index=index, host=host, port=port, plaintext=plaintext, cert=cert,
                             key=key, client_ca=client_ca, workers=workers,
                             max_streams=max_streams, encoder=encoder, processes=processes,
                             server=kind, echo=shown)
        finally:
            if network is not None:
                shown.stop()


def _network(rtt_ms: str | None, jitter_ms: str | None, bandwidth_mbit: str | None) -> Any:
    """The Network the flags ask for, or None when none is given.  Parsed by ``Network``
    (not click) so a bad value, "abc" or -1 alike, is one ``lootlab: error:`` line."""
    if rtt_ms is None and jitter_ms is None and bandwidth_mbit is None:
        return None
    from ..conditions.network import Network
    net = Network(rtt_ms or 0.0, jitter_ms or 0.0, bandwidth_mbit)
    return None if net.is_null else net
