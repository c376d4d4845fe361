"""The Variant registry: the one place that says what each client variant is.

A ``Variant`` is data: its name, a one-line description, the step of the story it
reproduces, its transport facts (remote or local, TLS, a channel per call, session
resumption, the packed encoding), the options it accepts and the function that opens its
client (``"module:function"``, imported when first used, so this module stays light).
How a variant is reached (which server, which network, the client factory workers get)
is ``lootlab.targets``'s job.

Adding a variant is one ``Variant(...)`` plus its client class: ``register()`` it in-process,
or publish it from another package under the ``lootlab.variants`` entry-point group so every
process (spawned load workers, ``python -m lootlab.workload``) finds it by name.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

from .errors import LootlabError

if TYPE_CHECKING:
    from .clients import LootClient

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
    TLS files without a target...): raised by ``lootlab.targets``."""


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
        """A connected client of this variant (no defaults filled in: ``lootlab.targets``
        fills them)."""
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


#: ``lootlab.VARIANTS``: name -> one-line description, live from the registry
VARIANTS: Mapping[str, str] = VariantDescriptions()
