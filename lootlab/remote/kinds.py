"""The gRPC server kinds a loot server runs as, and the error a server raises.

Apart from ``remote.server`` so that ``LoopbackServer`` can refuse a bad kind before it
starts a child, without importing the server (grpc, the index) and without the import
cycle server -> group -> loopback -> server.
"""

from __future__ import annotations

from ..errors import LootlabError

#: The server kinds: gRPC's thread-pool server, or its asyncio one (``remote.aioserver``).
SERVER_KINDS = ("sync", "aio")
DEFAULT_SERVER = "sync"


class ServerError(LootlabError):
    """The server could not start (port taken, bad certificate files...)."""


def check_server_kind(kind: str) -> str:
    """``kind`` if it names a server kind, else a ``ServerError`` listing them."""
    if kind not in SERVER_KINDS:
        raise ServerError(f"unknown server kind {kind!r}: use one of "
                          f"{', '.join(SERVER_KINDS)}")
    return kind


__all__ = ["DEFAULT_SERVER", "SERVER_KINDS", "ServerError", "check_server_kind"]
