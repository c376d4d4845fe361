"""Reaching a variant: the one owner of "this variant, at that server, under these
conditions" -> a client factory (what ``loadgen.run`` drives) or a connected client.

Everything about reaching a server is decided here and nowhere else:

* where a remote variant connects: a server (anything with an ``.endpoint``: a
  ``LoopbackServer``, a ``CppServer``), an ``Endpoint``, explicit ``target=``/``ca=``
  options, or the embedded default (a loopback server on the default index that this
  process starts on first use and stops at exit); a local variant reads its index and
  needs no server;
* which servers the experiments talk to (``start_server``: the C++ one when it is built);
* the network in front of a server: the one place a network value is coerced
  (``client_factory``, with ``Network.coerce``) and a route through a delaying proxy
  chosen (``_route``);
* what a factory hands the load generator besides clients: its server's counters
  (``ClientFactory.server_stats``) and the default workload (``default_workload``).

The servers know nothing of variants or clients, the variant registry is plain data, and
the load generator only calls what a factory offers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .conditions.network import Network
from .errors import LootlabError
from .remote.address import is_loopback_ip, split_target
from .remote.endpoint import Endpoint
from .variants import TLS_OPTIONS, ResolveError, Variant, get

if TYPE_CHECKING:
    import numpy as np

    from .clients import LootClient

#: The servers experiments can talk to (``start_server``).
SERVER_KINDS = ("auto", "cpp", "python")


@runtime_checkable
class HasEndpoint(Protocol):
    """A running server that can say where it listens (``LoopbackServer``, ``CppServer``)."""

    @property
    def endpoint(self) -> Endpoint: ...


Server = Endpoint | HasEndpoint


@dataclass(frozen=True)
class ClientFactory:
    """A picklable zero-argument callable opening one connected client of ``variant``:
    worker processes get it (not a client), so they reach the same server as their parent
    without any global state.

    ``network`` is the ``Network`` it is reached under (None: none asked, and always None
    for a local variant, which no network reaches); under a non-null one, ``options`` hold
    the delaying proxy's target and ``upstream`` the server's own."""

    variant: Variant
    options: tuple[tuple[str, Any], ...] = ()
    network: Network | None = None
    upstream: str | None = None

    def __call__(self) -> LootClient:
        return self.variant.open(**dict(self.options))

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def endpoint(self) -> Endpoint | None:
        """Where the client connects (the proxy under a network); None for a local one."""
        opts = dict(self.options)
        if "target" not in opts:
            return None
        return Endpoint(opts["target"], tls=self.variant.tls, ca=opts.get("ca"),
                        client_cert=opts.get("client_cert"), client_key=opts.get("client_key"))

    def with_options(self, **options: Any) -> ClientFactory:
        merged = dict(self.options)
        merged.update(options)
        self.variant.check_options(merged)
        return replace(self, options=_sorted(merged))

    def with_network(self, network: Any) -> ClientFactory:
        """This factory reaching the same server under ``network`` (a ``Network``, a dict,
        an RTT in ms, or None for none): through a delaying proxy when it is not null."""
        opts = dict(self.options)
        if self.upstream is not None:           # back to the server's own address
            opts["target"] = self.upstream
            name = _tls_name(self.upstream)
            if name is not None and opts.get("server_name") == name:   # _route added it
                del opts["server_name"]
        return client_factory(self.variant, network=network, **opts)

    def server_stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """The counters of the server this factory's clients reach (its own address, not
        the proxy's): what ``loadgen`` reads the server's CPU time from; {} for a local
        variant, which has no server."""
        where = self.endpoint
        if where is None:
            return {}
        from .remote.loopback import server_stats
        return server_stats(replace(where, target=self.upstream or where.target),
                            timeout=timeout)

    def default_workload(self, n: int, *, seed: int = 0, radius: int = 64) -> np.ndarray:
        """The queries ``loadgen.run`` sends when given none (``default_workload``)."""
        return default_workload(n, seed=seed, radius=radius)

    def __repr__(self) -> str:
        where = dict(self.options).get("target", "local")
        via = f" ({self.network.label} via proxy to {self.upstream})" if self.upstream else ""
        return f"<ClientFactory {self.variant.name} @ {where}{via}>"


def network_of(value: Any) -> Network | None:
    """The one place a network value (a ``Network``, a dict of its fields, an RTT in ms, or
    None) becomes a ``Network``: a bad one fails here in one line; None for none or a null
    one (loopback as it is)."""
    net = Network.coerce(value)
    return None if net is None or net.is_null else net


def client_factory(variant: str | Variant, server: Server | None = None, *,
                   network: Any = None, **options: Any) -> ClientFactory:
    """A factory for ``variant`` reaching ``server``, under ``network``.

    ``server``: a running server (``LoopbackServer``, ``CppServer``: anything with an
    ``.endpoint``), an ``Endpoint``, or None: then a remote variant goes to the ``target=``
    option, or without one to the embedded default, this process's loopback server on the
    default index (started on demand).  Options given with a server override its own
    (``target=`` a proxy of your own in front of it, say).  A local variant reads its own index
    (``index=``, default: the default index) and ignores ``server``: an experiment hands
    one server to every variant it runs.

    ``network`` (a ``lootlab.Network``, a dict of its fields, an RTT in ms, or None): a
    remote variant is then reached through a delaying TCP proxy in front of that server; a
    local variant ignores it (no network).  Options as ``connect`` takes them.
    """
    v = get(variant)
    net = network_of(network)
    v.check_options(options)
    options = {k: val for k, val in options.items() if val is not None}
    if not v.remote:
        return ClientFactory(v, _sorted(options))
    where = _endpoint_of(server)
    if where is not None:
        options = {**_connect_options(v, where), **options}
    elif "target" not in options:
        if any(options.get(k) for k in TLS_OPTIONS - {"server_name"}):
            raise ResolveError(f"{v.name}: ca=/client_cert= given without target=; say "
                               f"which server they are for")
        from .remote.loopback import default_servers
        options = {**_connect_options(v, default_servers().endpoint(tls=v.tls)), **options}
    if v.tls and "ca" not in options:
        from .remote.tls import tls_dir
        dev_ca = tls_dir() / "ca.pem"
        if dev_ca.is_file():    # the CA `lootlab serve` made and printed, on this machine
            options["ca"] = str(dev_ca)
    return _route(v, options, net)


def connect(variant: str | Variant, server: Server | None = None, *, network: Any = None,
            **options: Any) -> LootClient:
    """A connected client of the named variant; the same answers as ``LootIndex``.

    ``variant``: a variant name (``lootlab.VARIANTS`` lists them) or a ``Variant``.

    Where a remote variant connects:
      ``server``   a ``LoopbackServer``/``CppServer`` or an ``Endpoint(target, tls, ca, ...)``
                   (options given as well override its own);
      ``target=``  ``"host:port"`` (with ``ca=`` for TLS variants; without it the CA that
                   ``lootlab serve`` made on this machine, if any);
      neither      the embedded default: a loopback server on the default index that
                   lootlab starts on first use and stops at exit.

    ``network=`` a ``lootlab.Network`` (or a dict of its fields, or an RTT in ms): a remote
    variant then reaches that server through a delaying TCP proxy (added round-trip time,
    jitter, bandwidth; see docs/remote.md "Network conditions"); a local one ignores it.

    Options (each variant takes only its own; a wrong one is named):
      remote:      ``target``, ``timeout`` (seconds per call, default 10)
      TLS:         ``ca``, ``client_cert``, ``client_key`` (mutual TLS), ``server_name``
      pooled:      ``max_streams`` (calls in flight on the one channel)
      local:       ``index`` (path; default: the default index), ``refresh_interval``,
                   ``verify``

    Raises ``UnknownVariantError`` for an unknown name, ``LootlabError`` for an option the
    variant does not take, ``ResolveError`` for a server that does not fit the variant
    (TLS to plaintext), ``ServerUnavailable`` / ``TLSError`` when it cannot connect, and
    ``InvalidIndexError`` when a local index cannot be opened.
    """
    return client_factory(variant, server, network=network, **options)()


def start_server(kind: str = "auto", **options: Any) -> tuple[Any, str]:
    """A started loopback server for the remote variants, and words saying which it is.

    ``cpp``: the C++ gRPC server (``make cpp-server``; a competent server, so the remote
    side is not made to look slower than it need be); ``python``: the lab's own grpcio
    server; ``auto`` (default): C++ when it is built, else Python.  ``options`` (``tls``,
    ``index``...) go to the server.  The caller stops it (``server.stop()``)."""
    if kind not in SERVER_KINDS:
        raise LootlabError(f"server kind must be one of {', '.join(SERVER_KINDS)}, "
                           f"not {kind!r}")
    from .remote.cppserver import CppServer, find_binary
    from .remote.loopback import LoopbackError, LoopbackServer

    if kind in ("auto", "cpp"):
        try:
            find_binary()
        except LoopbackError:
            if kind == "cpp":
                raise
        else:
            return (CppServer(**options).start(),
                    "the C++ gRPC server (grpc++, build/lootlab-server)")
    server = LoopbackServer(**options).start()
    why = " (the C++ server is not built: `make cpp-server`)" if kind == "auto" else ""
    return server, f"the lab's Python gRPC server (grpcio){why}"


def default_workload(n: int, *, seed: int = 0, radius: int = 64) -> np.ndarray:
    """The overlay workload on the default index: ``n`` ``near`` queries around players,
    radius ``radius`` (an (n, 4) int64 array of x y z r)."""
    from .index import open_index
    from .overlay import overlay_queries
    from .paths import ensure_default_index
    with open_index(ensure_default_index()) as idx:
        return overlay_queries(idx, n, seed=seed, radius=radius)


# -- routing: the one place that decides how a client reaches its server --------------------
def _route(v: Variant, options: dict[str, Any], network: Network | None) -> ClientFactory:
    """The factory for remote ``v`` at ``options["target"]`` under ``network``: straight to
    the server when the network is None or null, else through this process's delaying
    proxy for (that server, that network)."""
    if network is None or network.is_null:
        return ClientFactory(v, _sorted(options), network)
    from .conditions.proxies import proxy_for
    upstream = options["target"]
    options = {**options, "target": proxy_for(upstream, network).target}
    name = _tls_name(upstream) if v.tls else None
    if name and "server_name" not in options:   # the certificate names the server's host
        options["server_name"] = name
    return ClientFactory(v, _sorted(options), network, upstream)


def _tls_name(upstream: str) -> str | None:
    """The TLS server name a client reaching ``upstream`` through a loopback proxy must
    check (its certificate names the upstream host, not 127.0.0.1), or None when the
    upstream is a loopback address itself."""
    if is_loopback_ip(upstream):
        return None
    return split_target(upstream)[0]


def _endpoint_of(server: Server | None) -> Endpoint | None:
    if server is None or isinstance(server, Endpoint):
        return server
    if not isinstance(server, HasEndpoint):
        raise ResolveError(f"server must be an Endpoint or a server with .endpoint, got "
                           f"{type(server).__name__}")
    return server.endpoint


def _connect_options(v: Variant, where: Endpoint) -> dict[str, Any]:
    """The connect options ``where`` gives remote ``v`` (its TLS files only to TLS ones)."""
    if v.tls != where.tls:
        want, have = ("TLS" if v.tls else "plaintext"), ("TLS" if where.tls else "plaintext")
        raise ResolveError(f"variant {v.name!r} speaks {want}, but the server at "
                           f"{where.target} speaks {have}")
    return {"target": where.target, **where.tls_files()}


def _sorted(options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(options.items()))


__all__ = ["SERVER_KINDS", "ClientFactory", "HasEndpoint", "client_factory", "connect",
           "default_workload", "start_server"]
