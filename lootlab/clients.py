"""One client interface, ``LootClient``, and the named variants of the story.

``connect(name, **options)`` returns a client whose ``get/near/box/knn`` give the same
answers as ``LootIndex`` (same dtype, rows and order), whatever travels underneath:

- ``grpc-tls-fresh``: a new channel and a full TLS handshake for every request;
- ``grpc-tls-resumed``: a new channel per request, resuming the TLS session;
- ``grpc-tls-pooled``: one long-lived channel, a bound on concurrent streams;
- ``grpc-tls-packed``: pooled, records as one packed bytes field decoded by numpy;
- ``grpc-plain``: pooled without TLS;
- ``mmap``: the local index file.

Options: ``target="host:port"``, ``ca=PATH`` (TLS variants), ``client_cert=``/
``client_key=`` (mutual TLS), ``server_name=`` (certificate host override),
``timeout=`` seconds per call, ``max_streams=`` (pooled variants), ``index=PATH``
(``mmap``).  Without a target, remote variants use a loopback server on the default index
that lootlab starts itself.  Create remote clients after any ``fork`` (gRPC does not
survive one); use the ``spawn`` start method with multiprocessing.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import LootlabError, QueryError
from .records import RECORD_DTYPE, RESULT_DTYPE, LootRecord, Records, to_results
from .remote.errors import DeadlineExceeded, RemoteError, ServerBusy, ServerUnavailable, TLSError

VARIANTS: dict[str, str] = {
    "grpc-tls-fresh": "gRPC over TLS, a new channel and full TLS handshake per request",
    "grpc-tls-resumed": "gRPC over TLS, a new channel per request resuming the TLS session",
    "grpc-tls-pooled": "gRPC over TLS, one long-lived channel with bounded concurrent streams",
    "grpc-tls-packed": "pooled gRPC over TLS, records as one packed bytes field decoded by numpy",
    "grpc-plain": "pooled gRPC without TLS (isolates the cost of TLS)",
    "mmap": "the local memory-mapped index file (no network)",
}

DEFAULT_TIMEOUT = 10.0
_METHOD = "/lootlab.v1.LootService/"
_MAX_MESSAGE = 64 * 1024 * 1024

__all__ = ["connect", "VARIANTS", "LootClient", "MmapClient", "GrpcClient", "server_stats",
           "RemoteError", "ServerUnavailable", "TLSError", "DeadlineExceeded", "ServerBusy"]


class LootClient:
    """The interface every variant implements.  Context manager; ``close()`` is idempotent."""

    name: str = ""

    def get(self, x: int, y: int, z: int) -> LootRecord | None:
        raise NotImplementedError

    def near(self, x: int, y: int, z: int, r: float) -> Records:
        raise NotImplementedError

    def box(self, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> Records:
        raise NotImplementedError

    def knn(self, x: int, y: int, z: int, k: int) -> Records:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "LootClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# -- local ----------------------------------------------------------------------------------
class MmapClient(LootClient):
    """A thin client over ``open_index``: the flat-file architecture."""

    name = "mmap"

    def __init__(self, index: str | Path | None = None, *, refresh_interval: float | None = 0.05,
                 verify: bool = False):
        from .index import open_index
        from .paths import ensure_default_index
        self.path = Path(index) if index is not None else ensure_default_index()
        self.index = open_index(self.path, verify=verify, refresh_interval=refresh_interval)
        self.get = self.index.get        # bound directly: no extra call layer on the hot path
        self.near = self.index.near
        self.box = self.index.box
        self.knn = self.index.knn

    def close(self) -> None:
        self.index.close()


# -- remote ---------------------------------------------------------------------------------
def _pb():
    from .remote import loot_pb2
    return loot_pb2


def _split_target(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise LootlabError(f"target must look like host:port, got {target!r}")
    return host.strip("[]"), int(port)


def _is_loopback_ip(target: str) -> bool:
    import ipaddress
    try:
        return ipaddress.ip_address(_split_target(target)[0]).is_loopback
    except ValueError:
        return False


def _decode_messages(resp: Any) -> Records:
    """The generic path: one Python tuple per protobuf message."""
    recs = resp.records
    out = np.zeros(len(recs), RESULT_DTYPE)
    if len(recs):
        out[:] = [(r.x, r.y, r.z, r.item_id, r.value, r.quantity, r.rarity, r.flags, r.tick)
                  for r in recs]
    return out.view(Records)


def _decode_packed(resp: Any) -> Records:
    """The hand-coded path: the bytes are already 24-byte records; one view, one decode."""
    raw = resp.packed
    if len(raw) % RECORD_DTYPE.itemsize:
        raise RemoteError(f"packed answer of {len(raw)} bytes is not a whole number of "
                          f"{RECORD_DTYPE.itemsize}-byte records")
    return to_results(np.frombuffer(raw, RECORD_DTYPE))


class GrpcClient(LootClient):
    """A client of the loot service.  ``per_call`` opens a new channel for every request
    (with ``resume`` a shared TLS session cache lets it skip the full handshake);
    otherwise one channel is kept and at most ``max_streams`` calls run at once."""

    def __init__(self, name: str, target: str, *, tls: bool, ca: str | Path | None = None,
                 client_cert: str | Path | None = None, client_key: str | Path | None = None,
                 server_name: str | None = None, per_call: bool = False, resume: bool = False,
                 packed: bool = False, timeout: float | None = DEFAULT_TIMEOUT,
                 max_streams: int = 100):
        import grpc

        self._grpc = grpc
        self.name = name
        self.target = target
        _split_target(target)
        self.tls = tls
        self.ca = str(ca) if ca else None
        self.client_cert = str(client_cert) if client_cert else None
        self.client_key = str(client_key) if client_key else None
        if resume and server_name is None and _is_loopback_ip(target):
            # gRPC core keys its TLS session cache by server name and sends no name to an IP
            # address, so sessions to 127.0.0.1 are never resumed; the development
            # certificate lists "localhost", which names the same machine.
            server_name = "localhost"
        self.server_name = server_name
        self.per_call = per_call
        self.packed = packed
        self.timeout = timeout
        self._decode = _decode_packed if packed else _decode_messages
        self._closed = False
        options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", _MAX_MESSAGE)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if per_call:
            # Without a local pool, gRPC core may share one connection among channels to
            # the same target (tests show it for plaintext channels) and "a new channel"
            # would silently reuse it.
            options.append(("grpc.use_local_subchannel_pool", 1))
            if resume:
                from grpc.experimental import session_cache
                options.append(("grpc.ssl_session_cache", session_cache.ssl_session_cache_lru(16)))
        self._options = options
        self._creds = self._credentials() if tls else None
        self._channel = None if per_call else self._new_channel()
        self._slots = threading.BoundedSemaphore(max_streams) if not per_call else None
        self._calls: dict[str, Callable] = {}
        pb = _pb()
        self._pb = pb
        self._decoders = {"Get": pb.Records.FromString, "Near": pb.Records.FromString,
                          "Box": pb.Records.FromString, "Knn": pb.Records.FromString,
                          "ServerStats": pb.Stats.FromString}

    def _credentials(self):
        def read(path: str | None, what: str) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise TLSError(f"cannot read the {what} file {path}: {exc.strerror}",
                               target=self.target) from exc
        if (self.client_cert is None) != (self.client_key is None):
            raise TLSError("mutual TLS needs both client_cert= and client_key=", target=self.target)
        return self._grpc.ssl_channel_credentials(
            root_certificates=read(self.ca, "CA certificate"),
            private_key=read(self.client_key, "client key"),
            certificate_chain=read(self.client_cert, "client certificate"))

    def _new_channel(self):
        if self._creds is not None:
            return self._grpc.secure_channel(self.target, self._creds, options=self._options)
        return self._grpc.insecure_channel(self.target, options=self._options)

    def _multicallable(self, channel, method: str):
        return channel.unary_unary(_METHOD + method,
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=self._decoders[method],
                                   _registered_method=True)

    def _call(self, method: str, request: Any) -> Any:
        if self._closed:
            raise RemoteError(f"{self.name} client for {self.target} is closed", target=self.target)
        try:
            if self.per_call:
                channel = self._new_channel()
                try:
                    return self._multicallable(channel, method)(request, timeout=self.timeout)
                finally:
                    channel.close()
            call = self._calls.get(method)
            if call is None:
                call = self._calls[method] = self._multicallable(self._channel, method)
            with self._slots:
                return call(request, timeout=self.timeout)
        except self._grpc.RpcError as exc:
            raise self._translate(exc) from None

    # -- queries -------------------------------------------------------------------------
    def _point(self, x: Any, y: Any, z: Any):
        try:
            return self._pb.Point(x=x, y=y, z=z)
        except (TypeError, ValueError) as exc:
            raise QueryError(f"position ({x!r}, {y!r}, {z!r}) must be integers in the packable "
                             f"range (x, z in [-33554432, 33554431], y in [-2048, 2047])") from exc

    def get(self, x: int, y: int, z: int) -> LootRecord | None:
        resp = self._call("Get", self._pb.GetRequest(at=self._point(x, y, z), packed=self.packed))
        res = self._decode(resp)
        return LootRecord(*res[0].tolist()) if len(res) else None

    def near(self, x: int, y: int, z: int, r: float) -> Records:
        try:
            req = self._pb.NearRequest(at=self._point(x, y, z), radius=r, packed=self.packed)
        except (TypeError, ValueError) as exc:
            raise QueryError(f"radius must be a number, got {r!r}") from exc
        return self._decode(self._call("Near", req))

    def box(self, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> Records:
        req = self._pb.BoxRequest(lo=self._point(*lo), hi=self._point(*hi), packed=self.packed)
        return self._decode(self._call("Box", req))

    def knn(self, x: int, y: int, z: int, k: int) -> Records:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < 2**32:
            raise QueryError(f"k must be an integer >= 0, got {k!r}")
        req = self._pb.KnnRequest(at=self._point(x, y, z), k=int(k), packed=self.packed)
        return self._decode(self._call("Knn", req))

    def stats(self) -> dict[str, int]:
        """The server's counters: requests, connections, tls_connections, tls_resumed..."""
        resp = self._call("ServerStats", self._pb.StatsRequest())
        return {f.name: getattr(resp, f.name) for f in resp.DESCRIPTOR.fields}

    def close(self) -> None:
        self._closed = True
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __repr__(self) -> str:
        return f"<GrpcClient {self.name} target={self.target}>"

    # -- errors --------------------------------------------------------------------------
    def _translate(self, exc: Any) -> LootlabError:
        code = exc.code()
        name = code.name if code is not None else "UNKNOWN"
        details = exc.details() or ""
        C = self._grpc.StatusCode
        t = self.target
        if code in (C.INVALID_ARGUMENT, C.OUT_OF_RANGE):
            return QueryError(details)
        if code == C.DEADLINE_EXCEEDED:
            return DeadlineExceeded(
                f"no answer from {t} within {self.timeout:g} s: check that the server is not "
                f"stopped or overloaded, or pass a larger timeout=", target=t, code=name)
        if code == C.RESOURCE_EXHAUSTED:
            return ServerBusy(f"{t} refused the call ({details}): the server's queue is full; "
                              f"send fewer concurrent requests", target=t, code=name)
        if code == C.UNIMPLEMENTED:
            return RemoteError(f"{t} does not implement the lootlab service ({details}): is the "
                               f"target the lootlab server?", target=t, code=name)
        if code == C.UNAVAILABLE:
            return self._unavailable(details, name)
        return RemoteError(f"call to {t} failed: {name}: {details}", target=t, code=name)

    def _unavailable(self, details: str, code: str) -> RemoteError:
        t = self.target
        low = details.lower()
        if "connection refused" in low or "failed to connect to remote host" in low \
                or "name resolution" in low or "dns resolution" in low:
            return ServerUnavailable(
                f"cannot connect to {t}: nothing is listening there. Is `lootlab serve` "
                f"running, and is the port right?", target=t, code=code)
        if self.tls:
            problem = diagnose_tls(t, self.ca, self.client_cert, self.client_key,
                                   self.server_name)
            if problem:
                return TLSError(f"TLS handshake with {t} failed: {problem}", target=t, code=code)
            return TLSError(f"TLS handshake with {t} failed ({details})", target=t, code=code)
        return ServerUnavailable(
            f"{t} closed the connection ({details}): if that server uses TLS, connect with a "
            f"grpc-tls-* variant and ca=<the CA it printed>", target=t, code=code)


def diagnose_tls(target: str, ca: str | None, client_cert: str | None = None,
                 client_key: str | None = None, server_name: str | None = None,
                 timeout: float = 3.0) -> str | None:
    """Redo the handshake with Python's ssl module to name why it fails (None if it works).

    gRPC reports every handshake failure alike; OpenSSL's verify message tells expired
    from wrong host from unknown CA.
    """
    host, port = _split_target(target)
    try:
        ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
        ctx.set_alpn_protocols(["h2"])
        if client_cert and client_key:
            ctx.load_cert_chain(client_cert, client_key)
    except (OSError, ssl.SSLError) as exc:
        return f"cannot load the TLS files (ca={ca}, client_cert={client_cert}): {exc}"
    name = server_name or host
    ca_hint = f"ca={ca}" if ca else "the system CAs (no ca= given)"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with ctx.wrap_socket(sock, server_hostname=name) as tls:
                # TLS 1.3 servers reject a missing client certificate after the handshake.
                tls.settimeout(3.0)   # only a failing server gets here; a good one speaks at once
                try:
                    closed = tls.recv(1) == b""
                except (socket.timeout, TimeoutError):
                    closed = False
                if closed:
                    raise ConnectionResetError("closed right after the handshake")
    except ssl.SSLCertVerificationError as exc:
        msg = (exc.verify_message or str(exc)).lower()
        if "expired" in msg:
            return (f"the server's certificate has expired ({exc.verify_message}); "
                    f"renew it (delete the server's tls/ files to get a new development one)")
        if "not yet valid" in msg:
            return "the server's certificate is not valid yet; check the clocks"
        if "hostname" in msg or "ip address mismatch" in msg or "mismatch" in msg:
            return (f"the server's certificate is not issued for {name!r} "
                    f"({exc.verify_message}); connect by a name the certificate lists, or "
                    f"pass server_name=")
        return (f"the server's certificate is not trusted by {ca_hint} ({exc.verify_message}); "
                f"pass ca= the CA certificate that `lootlab serve` printed")
    except ssl.SSLError as exc:
        text = f"{exc.reason or ''} {exc}".lower()
        if "wrong_version_number" in text or "record layer failure" in text \
                or "packet length too long" in text or "http request" in text:
            return (f"{target} does not speak TLS (is it serving with --plaintext?); "
                    f"use the grpc-plain variant for a plaintext server")
        if "certificate required" in text or "certificate_required" in text \
                or "handshake failure" in text and not client_cert:
            return ("the server requires a client certificate (mutual TLS); pass "
                    "client_cert= and client_key=")
        if "unknown ca" in text or "bad certificate" in text or "certificate unknown" in text:
            return ("the server rejected the client certificate: it is not signed by the CA "
                    "the server trusts (--client-ca)")
        return f"{exc}"
    except ConnectionRefusedError:
        return f"nothing is listening at {target}"
    except (ConnectionResetError, BrokenPipeError, EOFError):
        if client_cert is None:
            return ("the server closed the connection during the handshake: it may require "
                    "a client certificate (mutual TLS); pass client_cert= and client_key=")
        return ("the server closed the connection right after the handshake: it "
                "rejected the client certificate (is it signed by the CA the server trusts "
                "with --client-ca, and still valid?)")
    except OSError as exc:
        return f"cannot reach {target}: {exc}"
    return None


# -- connect --------------------------------------------------------------------------------
_REMOTE = {
    # name: (tls, per_call, resume, packed)
    "grpc-tls-fresh": (True, True, False, False),
    "grpc-tls-resumed": (True, True, True, False),
    "grpc-tls-pooled": (True, False, False, False),
    "grpc-tls-packed": (True, False, False, True),
    "grpc-plain": (False, False, False, False),
}
_TLS_OPTIONS = {"ca", "client_cert", "client_key", "server_name"}
_REMOTE_OPTIONS = {"target", "timeout"}
_POOLED_OPTIONS = {"max_streams"}
_MMAP_OPTIONS = {"index", "refresh_interval", "verify"}


def _allowed(name: str) -> set[str]:
    if name == "mmap":
        return _MMAP_OPTIONS
    tls, per_call, _, _ = _REMOTE[name]
    return _REMOTE_OPTIONS | (_TLS_OPTIONS if tls else set()) | (set() if per_call else _POOLED_OPTIONS)


def connect(name: str, **options: Any) -> LootClient:
    """A client of the named variant (see ``VARIANTS``); the same answers as ``LootIndex``."""
    if name not in VARIANTS:
        raise LootlabError(f"unknown variant {name!r}; choose one of: {', '.join(VARIANTS)}")
    unknown = set(options) - _allowed(name)
    if unknown:
        raise LootlabError(f"variant {name!r} does not take option(s) "
                           f"{', '.join(sorted(unknown))}; it takes: "
                           f"{', '.join(sorted(_allowed(name)))}")
    if name == "mmap":
        return MmapClient(**options)
    tls, per_call, resume, packed = _REMOTE[name]
    if options.get("target") is None:
        if any(options.get(k) for k in _TLS_OPTIONS):
            raise LootlabError(f"{name}: ca=/client_cert= given without target=; say which "
                               f"server they are for")
        from .remote.loopback import shared_server
        srv = shared_server(tls=tls)
        options["target"] = srv.target
        if tls:
            options["ca"] = srv.ca
    elif tls and options.get("ca") is None:
        from .remote.tls import tls_dir
        dev_ca = tls_dir() / "ca.pem"
        if dev_ca.is_file():    # the CA `lootlab serve` made and printed, on this machine
            options["ca"] = str(dev_ca)
    return GrpcClient(name, tls=tls, per_call=per_call, resume=resume, packed=packed, **options)


def server_stats(target: str, *, ca: str | None = None, client_cert: str | None = None,
                 client_key: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict[str, int]:
    """The counters of the server at ``target`` (plaintext when ``ca`` is None)."""
    client = GrpcClient("stats", target, tls=ca is not None, ca=ca, client_cert=client_cert,
                        client_key=client_key, timeout=timeout)
    try:
        return client.stats()
    finally:
        client.close()
