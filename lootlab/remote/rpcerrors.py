"""A failed gRPC call as the lootlab error that names its cause (``clients.GrpcClient``)."""

from __future__ import annotations

from typing import Any

from ..errors import LootlabError, QueryError
from .errors import DeadlineExceeded, RemoteError, ServerBusy, ServerUnavailable, TLSError


def translate(exc: Any, client: Any) -> LootlabError:
    """The error for ``exc`` (a ``grpc.RpcError``) from ``client`` (its ``target``,
    ``timeout``, ``tls`` and certificate paths say what to check)."""
    import grpc

    code = exc.code()
    name = code.name if code is not None else "UNKNOWN"
    details = exc.details() or ""
    C = grpc.StatusCode
    t = client.target
    if code in (C.INVALID_ARGUMENT, C.OUT_OF_RANGE):
        return QueryError(details)
    if code == C.DEADLINE_EXCEEDED:
        return DeadlineExceeded(
            f"no answer from {t} within {client.timeout:g} s: check that the server is not "
            f"stopped or overloaded, or pass a larger timeout=", target=t, code=name)
    if code == C.RESOURCE_EXHAUSTED:
        return ServerBusy(f"{t} refused the call ({details}): the server's queue is full; "
                          f"send fewer concurrent requests", target=t, code=name)
    if code == C.UNIMPLEMENTED:
        return RemoteError(f"{t} does not implement the lootlab service ({details}): is the "
                           f"target the lootlab server?", target=t, code=name)
    if code == C.UNAVAILABLE:
        return _unavailable(client, details, name)
    return RemoteError(f"call to {t} failed: {name}: {details}", target=t, code=name)

def _unavailable(client: Any, details: str, code: str) -> RemoteError:
    t = client.target
    low = details.lower()
    if "connection refused" in low or "failed to connect to remote host" in low \
            or "name resolution" in low or "dns resolution" in low:
        return ServerUnavailable(
            f"cannot connect to {t}: nothing is listening there. Is `lootlab serve` "
            f"running, and is the port right?", target=t, code=code)
    if client.tls:
        from .tlsdiag import diagnose_tls
        problem = diagnose_tls(t, client.ca, client.client_cert, client.client_key,
                               client.server_name)
        if problem:
            return TLSError(f"TLS handshake with {t} failed: {problem}", target=t, code=code)
        return TLSError(f"TLS handshake with {t} failed ({details})", target=t, code=code)
    return ServerUnavailable(
        f"{t} closed the connection ({details}): if that server uses TLS, connect with a "
        f"grpc-tls-* variant and ca=<the CA it printed>", target=t, code=code)


__all__ = ["translate"]
