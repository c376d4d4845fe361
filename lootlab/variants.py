"""The Variant registry: the one place that says what each client variant is and how to reach it.

A ``Variant`` is data: its name, a one-line description, the step of the story it
reproduces, its transport facts (remote or local, TLS, a channel per call, session
resumption, the packed encoding), the options it accepts and the function that opens its
client (``"module:function"``, imported when first used, so this module stays light).

``resolve(variant, where)`` turns "a variant and where it runs" into a ``ClientFactory``: a
frozen, picklable zero-argument callable that opens a connected client.  Worker processes
and the workload subprocess get the factory (or the endpoint inside it), so they connect to
the same server as their parent without any global state.

Adding a variant is one ``Variant(...)`` plus its client class: ``register()`` it in-process,
or publish it from another package under the ``lootlab.variants`` entry-point group so every
process (spawned load workers, ``python -m lootlab.workload``) finds it by name.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field, replace
from importlib import metadata
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .errors import LootlabError

if TYPE_CHECKING:
    from .clients import LootClient
    from .conditions.network import Network

ENTRY_POINT_GROUP = "lootlab.variants"

#: options every remote variant takes; TLS ones only with ``tls``; pooled ones without
#: ``channel_per_call``
REMOTE_OPTIONS = frozenset({"target", "timeout"})
TLS_OPTIONS = frozenset({"ca", "client_cert", "client_key", "server_name"})
POOLED_OPTIONS = frozenset({"max_streams"})
LOCAL_OPTIONS = frozenset({"index", "refresh_interval", "verify"})


class UnknownVariantError(LootlabError, KeyError):
    """No variant of that name is registered."""

    def __str__(self) -> str:   # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class ResolveError(LootlabError):
    """A variant cannot be reached where it was asked to be (TLS to a plaintext server,
    a local variant given a server...)."""


@dataclass(frozen=True)
class Endpoint:
    """How to reach a loot server, as plain data: what a factory carries across processes."""

    target: str
    tls: bool = True
    ca: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    def options_for(self, variant: "Variant") -> dict[str, Any]:
        """The connect options this endpoint gives ``variant`` (TLS files only to TLS ones)."""
        if variant.tls != self.tls:
            want, have = ("TLS" if variant.tls else "plaintext"), ("TLS" if self.tls else "plaintext")
            raise ResolveError(f"variant {variant.name!r} speaks {want}, but the server at "
                               f"{self.target} speaks {have}")
        options: dict[str, Any] = {"target": self.target}
        if variant.tls:
            for name in ("ca", "client_cert", "client_key"):
                value = getattr(self, name)
                if value is not None:
                    options[name] = value
        return options


@runtime_checkable
class HasEndpoint(Protocol):
    """Anything that can say where it listens (a ``LoopbackServer``)."""

    @property
    def endpoint(self) -> Endpoint: ...


@dataclass(frozen=True)
class Variant:
    """One client variant of the story, and how to open it."""

    name: str
    description: str
    step: str
    opener: str                       # "module:function(variant, **options) -> LootClient"
    remote: bool = True
    tls: bool = False
    channel_per_call: bool = False
    resumption: bool = False
    packed: bool = False
    extra_options: frozenset[str] = field(default_factory=frozenset)

    @property
    def options(self) -> frozenset[str]:
        """The keyword options ``connect(self.name, ...)`` accepts."""
        if not self.remote:
            return LOCAL_OPTIONS | self.extra_options
        return (REMOTE_OPTIONS | (TLS_OPTIONS if self.tls else frozenset())
                | (frozenset() if self.channel_per_call else POOLED_OPTIONS) | self.extra_options)

    def check_options(self, options: dict[str, Any]) -> None:
        unknown = set(options) - self.options
        if unknown:
            raise LootlabError(f"variant {self.name!r} does not take option(s) "
                               f"{', '.join(sorted(unknown))}; it takes: "
                               f"{', '.join(sorted(self.options))}")

    def open(self, **options: Any) -> "LootClient":
        """A connected client of this variant (no defaults filled in: see ``resolve``)."""
        self.check_options(options)
        module, _, attr = self.opener.partition(":")
        try:
            function = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise LootlabError(f"variant {self.name!r}: cannot load its client {self.opener!r} "
                               f"({exc})") from exc
        return function(self, **options)


_CLIENTS = "lootlab.clients"
BUILTIN: tuple[Variant, ...] = (
    Variant("grpc-tls-fresh",
            "gRPC over TLS, a new channel and full TLS handshake per request",
            "the first client: a new TLS connector per request",
            f"{_CLIENTS}:open_grpc", tls=True, channel_per_call=True),
    Variant("grpc-tls-resumed",
            "gRPC over TLS, a new channel per request resuming the TLS session",
            "the session-resumption attempt",
            f"{_CLIENTS}:open_grpc", tls=True, channel_per_call=True, resumption=True),
    Variant("grpc-tls-pooled",
            "gRPC over TLS, one long-lived channel with bounded concurrent streams",
            "the fixed client: one pooled connection",
            f"{_CLIENTS}:open_grpc", tls=True),
    Variant("grpc-tls-packed",
            "pooled gRPC over TLS, records as one packed bytes field decoded by numpy",
            "the hand-coded decoder",
            f"{_CLIENTS}:open_grpc", tls=True, packed=True),
    Variant("grpc-plain",
            "pooled gRPC without TLS (isolates the cost of TLS)",
            "isolates the cost of TLS",
            f"{_CLIENTS}:open_grpc"),
    Variant("mmap",
            "the local memory-mapped index file (no network)",
            "the flat-file architecture",
            f"{_CLIENTS}:open_mmap", remote=False),
)


class Registry:
    """Name -> Variant: the built-ins, then ``register()``-ed ones, then entry points."""

    def __init__(self, variants: tuple[Variant, ...] = BUILTIN):
        self._variants = {v.name: v for v in variants}
        self._lock = threading.Lock()
        self._scanned = False

    def register(self, variant: Variant, *, replace_existing: bool = False) -> Variant:
        with self._lock:
            if variant.name in self._variants and not replace_existing:
                raise LootlabError(f"a variant named {variant.name!r} is already registered")
            self._variants[variant.name] = variant
        return variant

    def unregister(self, name: str) -> None:
        with self._lock:
            self._variants.pop(name, None)

    def _scan_entry_points(self) -> None:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._variants:
                continue
            try:
                variant = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plug-in is named, not fatal
                raise LootlabError(f"entry point {ep.name!r} in {ENTRY_POINT_GROUP!r} "
                                   f"cannot be loaded: {exc}") from exc
            if not isinstance(variant, Variant):
                raise LootlabError(f"entry point {ep.name!r} in {ENTRY_POINT_GROUP!r} is "
                                   f"{type(variant).__name__}, not a lootlab Variant")
            self._variants.setdefault(variant.name, variant)

    def get(self, name: str | Variant) -> Variant:
        if isinstance(name, Variant):
            return name
        variant = self._variants.get(name)
        if variant is None and not self._scanned:
            with self._lock:
                self._scan_entry_points()
                self._scanned = True
            variant = self._variants.get(name)
        if variant is None:
            raise UnknownVariantError(f"unknown variant {name!r}; choose one of: "
                                      f"{', '.join(self.names())}")
        return variant

    def names(self) -> list[str]:
        return list(self._variants)

    def __iter__(self) -> Iterator[Variant]:
        return iter(list(self._variants.values()))

    def __contains__(self, name: object) -> bool:
        try:
            self.get(name)  # type: ignore[arg-type]
        except (UnknownVariantError, TypeError):
            return False
        return True


REGISTRY = Registry()
register = REGISTRY.register
get = REGISTRY.get


def descriptions() -> dict[str, str]:
    """name -> one-line description of every registered variant, now."""
    return {v.name: v.description for v in REGISTRY}


class VariantDescriptions(Mapping[str, str]):
    """``lootlab.VARIANTS``: a live read-only view, name -> description, of the registry
    (so a variant registered later shows up too)."""

    def __getitem__(self, name: str) -> str:
        return REGISTRY.get(name).description

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY.names())

    def __len__(self) -> int:
        return len(REGISTRY.names())

    def __contains__(self, name: object) -> bool:
        return name in REGISTRY

    def __repr__(self) -> str:
        return repr(descriptions())


@dataclass(frozen=True)
class ClientFactory:
    """A picklable zero-argument callable opening one connected client of ``variant``.

    ``network`` is the ``lootlab.Network`` it is reached under (None for a local variant,
    which no network reaches); then ``options`` hold the delaying proxy's target and
    ``upstream`` the server's own, so ``with_network`` can re-route it."""

    variant: Variant
    options: tuple[tuple[str, Any], ...] = ()
    network: Network | None = None
    upstream: str | None = None

    def __call__(self) -> "LootClient":
        return self.variant.open(**dict(self.options))

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def endpoint(self) -> Endpoint | None:
        opts = dict(self.options)
        if "target" not in opts:
            return None
        return Endpoint(opts["target"], tls=self.variant.tls, ca=opts.get("ca"),
                        client_cert=opts.get("client_cert"), client_key=opts.get("client_key"))

    def with_options(self, **options: Any) -> "ClientFactory":
        merged = dict(self.options)
        merged.update(options)
        self.variant.check_options(merged)
        return replace(self, options=tuple(sorted(merged.items())))

    def with_network(self, network: Any) -> "ClientFactory":
        """This factory reaching the same server under ``network`` (a ``Network``, a dict,
        an RTT in ms, or None for none): through a delaying proxy when it is not null."""
        from .conditions.network import Network
        net = Network.coerce(network)
        if not self.variant.remote:
            return replace(self, network=None)
        opts = dict(self.options)
        if self.upstream is not None:
            opts["target"] = self.upstream
            opts = {k: v for k, v in opts.items() if not (k == "server_name"
                                                         and v == _proxy_name(self.upstream))}
        return _through(self.variant, opts, net)

    def __repr__(self) -> str:
        where = dict(self.options).get("target", "local")
        via = f" ({self.network.label} via proxy to {self.upstream})" if self.upstream else ""
        return f"<ClientFactory {self.variant.name} @ {where}{via}>"


def _proxy_name(upstream: str) -> str | None:
    from .conditions.proxies import tls_name
    return tls_name(upstream)


def _through(v: Variant, options: dict[str, Any], network: Network | None) -> ClientFactory:
    """The factory for remote ``v`` at ``options["target"]``, under ``network``."""
    if network is None or network.is_null:
        return ClientFactory(v, tuple(sorted(options.items())), network)
    from .conditions.proxies import through
    upstream = options["target"]
    endpoint = through(Endpoint(upstream, tls=v.tls), network)
    options = {**options, "target": endpoint.target}
    name = _proxy_name(upstream) if v.tls else None
    if name and "server_name" not in options:   # the certificate names the server's host
        options["server_name"] = name
    return ClientFactory(v, tuple(sorted(options.items())), network, upstream)


def resolve(variant: str | Variant, where: Endpoint | HasEndpoint | None = None, *,
            network: Any = None, **options: Any) -> ClientFactory:
    """A factory for ``variant`` reached at ``where``, under ``network``.

    ``where`` is an ``Endpoint``, anything with an ``.endpoint`` (a ``LoopbackServer``), or
    None: then explicit ``target=``/``ca=`` options win, and with no target a remote
    variant uses the embedded default, this process's loopback server on the default index
    (started on demand; see ``lootlab.remote.loopback.default_servers``).

    ``network`` (a ``lootlab.Network``, a dict of its fields, an RTT in ms, or None): a
    remote variant is then reached through a delaying TCP proxy in front of that server
    (``lootlab.conditions.proxies.through``); a local variant ignores it (no network).
    """
    v = get(variant)
    if network is not None:
        from .conditions.network import Network
        network = Network.coerce(network)
    v.check_options(options)
    options = {k: val for k, val in options.items() if val is not None}
    # a LoopbackServer(network=...) is already behind its own proxy: record that network
    served_under, direct = getattr(where, "network", None), getattr(where, "direct_target", None)
    if where is not None and not isinstance(where, Endpoint):
        if not isinstance(where, HasEndpoint):
            raise ResolveError(f"where= must be an Endpoint or a server with .endpoint, "
                               f"got {type(where).__name__}")
        where = where.endpoint
    if v.remote:
        if where is not None:
            options = {**where.options_for(v), **options}
        elif "target" not in options:
            if any(options.get(k) for k in TLS_OPTIONS - {"server_name"}):
                raise ResolveError(f"{v.name}: ca=/client_cert= given without target=; say "
                                   f"which server they are for")
            from .remote.loopback import default_servers
            options = {**default_servers().endpoint(tls=v.tls).options_for(v), **options}
        if v.tls and "ca" not in options:
            from .remote.tls import tls_dir
            dev_ca = tls_dir() / "ca.pem"
            if dev_ca.is_file():    # the CA `lootlab serve` made and printed, on this machine
                options["ca"] = str(dev_ca)
        if network is None and served_under is not None and direct is not None:
            return ClientFactory(v, tuple(sorted(options.items())), served_under, direct)
        return _through(v, options, network)
    if where is not None:
        raise ResolveError(f"variant {v.name!r} is local; it is not reached through a server")
    return ClientFactory(v, tuple(sorted(options.items())))


#: ``lootlab.VARIANTS``: name -> one-line description, live from the registry
VARIANTS: Mapping[str, str] = VariantDescriptions()
