"""Errors a remote client raises: each names the cause and what to check, not gRPC codes."""

from __future__ import annotations

from ..errors import LootlabError, LootlabTimeout


class RemoteError(LootlabError):
    """A call to the loot service failed.  ``target`` is the address, ``code`` the gRPC
    status name when there was one."""

    def __init__(self, message: str, *, target: str = "", code: str = ""):
        self.target = target
        self.code = code
        super().__init__(message)


class ServerUnavailable(RemoteError):
    """Nothing answered at the target: server not running, wrong host or port."""


class TLSError(RemoteError):
    """The TLS handshake failed: wrong CA, expired or wrong-host certificate, TLS against a
    plaintext server, or a missing/refused client certificate (mutual TLS)."""


class DeadlineExceeded(RemoteError, LootlabTimeout):
    """No answer within the client's timeout (a ``TimeoutError``: load runs count it as a
    timeout, not an error)."""


class ServerBusy(RemoteError):
    """The server refused the call because its queue is full."""
