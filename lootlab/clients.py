"""One client interface, ``LootClient``, and the clients of the story's named variants.

``lootlab.connect(name, **options)`` (``lootlab.targets``) returns a client whose ``get/near/box/knn`` give the same
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

import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import QueryError
from .records import RECORD_DTYPE, RESULT_DTYPE, LootRecord, Records, to_results
from .remote import servertiming
from .remote.address import is_loopback_ip, split_target
from .remote.callsplit import CallSplit
from .remote.errors import DeadlineExceeded, RemoteError, ServerBusy, ServerUnavailable, TLSError
from .remote.rpcerrors import translate
from .variants import Variant

DEFAULT_TIMEOUT = 10.0
_METHOD = "/lootlab.v1.LootService/"
_MAX_MESSAGE = 64 * 1024 * 1024

__all__ = ["LootClient", "MmapClient", "GrpcClient", "open_grpc", "open_mmap", "server_stats",
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
    otherwise one channel is kept and at most ``max_streams`` calls run at once.

    ``split`` (a ``CallSplit``) sums where each query's time went: client serialize,
    transport, the server's queue and compute (from its trailing metadata), client
    deserialize; the load generator reads it into ``LoadResult.split``."""

    def __init__(self, name: str, target: str, *, tls: bool, ca: str | Path | None = None,
                 client_cert: str | Path | None = None, client_key: str | Path | None = None,
                 server_name: str | None = None, per_call: bool = False, resume: bool = False,
                 packed: bool = False, timeout: float | None = DEFAULT_TIMEOUT,
                 max_streams: int = 100):
        import grpc

        self._grpc = grpc
        self.name = name
        self.target = target
        split_target(target)
        self.tls = tls
        self.ca = str(ca) if ca else None
        self.client_cert = str(client_cert) if client_cert else None
        self.client_key = str(client_key) if client_key else None
        if resume and server_name is None and is_loopback_ip(target):
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
        self.split = CallSplit()
        self._timing = threading.local()   # this thread's serialize/parse ns of its call
        pb = _pb()
        self._pb = pb
        parse = self._timed_parse(pb.Records.FromString)
        self._decoders = {"Get": parse, "Near": parse, "Box": parse, "Knn": parse,
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

    def _timed_parse(self, parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        """``parse`` that notes its time for this thread's call (gRPC runs a blocking
        call's serializers in the calling thread)."""
        timing, clock = self._timing, time.perf_counter_ns

        def timed(data: bytes) -> Any:
            t = clock()
            try:
                return parse(data)
            finally:
                timing.parse_ns = clock() - t
        return timed

    def _serialize(self, message: Any) -> bytes:
        t = time.perf_counter_ns()
        data = message.SerializeToString()
        self._timing.serialize_ns = time.perf_counter_ns() - t
        return data

    def _multicallable(self, channel, method: str):
        return channel.unary_unary(_METHOD + method,
                                   request_serializer=self._serialize,
                                   response_deserializer=self._decoders[method],
                                   _registered_method=True)

    def _call(self, method: str, request: Any) -> tuple[Any, Any]:
        """(answer, gRPC call) of one request; the call object has the trailing metadata."""
        if self._closed:
            raise RemoteError(f"{self.name} client for {self.target} is closed", target=self.target)
        try:
            if self.per_call:
                channel = self._new_channel()
                try:
                    return self._multicallable(channel, method).with_call(
                        request, timeout=self.timeout)
                finally:
                    channel.close()
            call = self._calls.get(method)
            if call is None:
                call = self._calls[method] = self._multicallable(self._channel, method)
            with self._slots:
                return call.with_call(request, timeout=self.timeout)
        except self._grpc.RpcError as exc:
            raise translate(exc, self) from None

    def _query(self, method: str, started: int, request: Any) -> Records:
        """Send ``request`` (built since ``started``), decode the answer into rows, and
        note where the time went in ``split``."""
        clock = time.perf_counter_ns
        built = clock()
        timing = self._timing
        timing.serialize_ns = timing.parse_ns = 0
        resp, call = self._call(method, request)
        t = clock()
        rows = self._decode(resp)
        ended = clock()
        self.split.note(started, ended, built - started + timing.serialize_ns,
                        timing.parse_ns + ended - t,
                        servertiming.parse(call.trailing_metadata()))
        return rows

    # -- queries -------------------------------------------------------------------------
    def _point(self, x: Any, y: Any, z: Any):
        try:
            return self._pb.Point(x=x, y=y, z=z)
        except (TypeError, ValueError) as exc:
            raise QueryError(f"position ({x!r}, {y!r}, {z!r}) must be integers in the packable "
                             f"range (x, z in [-33554432, 33554431], y in [-2048, 2047])") from exc

    def get(self, x: int, y: int, z: int) -> LootRecord | None:
        started = time.perf_counter_ns()
        req = self._pb.GetRequest(at=self._point(x, y, z), packed=self.packed)
        res = self._query("Get", started, req)
        return LootRecord(*res[0].tolist()) if len(res) else None

    def near(self, x: int, y: int, z: int, r: float) -> Records:
        started = time.perf_counter_ns()
        try:
            req = self._pb.NearRequest(at=self._point(x, y, z), radius=r, packed=self.packed)
        except (TypeError, ValueError) as exc:
            raise QueryError(f"radius must be a number, got {r!r}") from exc
        return self._query("Near", started, req)

    def box(self, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> Records:
        started = time.perf_counter_ns()
        req = self._pb.BoxRequest(lo=self._point(*lo), hi=self._point(*hi), packed=self.packed)
        return self._query("Box", started, req)

    def knn(self, x: int, y: int, z: int, k: int) -> Records:
        started = time.perf_counter_ns()
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < 2**32:
            raise QueryError(f"k must be an integer >= 0, got {k!r}")
        req = self._pb.KnnRequest(at=self._point(x, y, z), k=int(k), packed=self.packed)
        return self._query("Knn", started, req)

    def stats(self) -> dict[str, int]:
        """The server's counters: requests, connections, tls_connections, tls_resumed..."""
        resp, _ = self._call("ServerStats", self._pb.StatsRequest())
        return {f.name: getattr(resp, f.name) for f in resp.DESCRIPTOR.fields}

    def close(self) -> None:
        self._closed = True
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __repr__(self) -> str:
        return f"<GrpcClient {self.name} target={self.target}>"


# -- the registry's openers ----------------------------------------------------------------
def open_mmap(variant: Variant, **options: Any) -> MmapClient:
    """The registry's opener for local index variants."""
    return MmapClient(**options)


def open_grpc(variant: Variant, **options: Any) -> GrpcClient:
    """The registry's opener for gRPC variants: the transport facts come from the Variant."""
    return GrpcClient(variant.name, tls=variant.tls, per_call=variant.channel_per_call,
                      resume=variant.resumption, packed=variant.packed, **options)


def server_stats(target: str, *, ca: str | None = None, client_cert: str | None = None,
                 client_key: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict[str, int]:
    """The counters of the server at ``target`` (plaintext when ``ca`` is None)."""
    client = GrpcClient("stats", target, tls=ca is not None, ca=ca, client_cert=client_cert,
                        client_key=client_key, timeout=timeout)
    try:
        return client.stats()
    finally:
        client.close()
