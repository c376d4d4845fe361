"""The loot service's request handlers, and their registration with a gRPC server.

Query answers leave the handlers as ready bytes (``lootlab.remote.encode``), and the
methods are registered with the identity as response serializer, so gRPC sends them as
they are: no protobuf message is built per answer on the fast path.  The naive encoder
(``encoder="python"``) builds one, and serializes it inside the handler, so its cost
shows in the same compute time.  Every answer carries the server's queue wait and
compute time as trailing metadata (``lootlab.remote.servertiming``).

A request goes through the same steps on either server kind: ``prepare`` (validate, or
``Refused``), count it, the fault-injection pause, the deadline check, ``run`` (query and
encode).  Only the pause and the abort differ, so the thread-pool server (here) and the
asyncio one (``lootlab.remote.aioserver``) share everything else.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from ..errors import QueryError
from ..index import LootIndex
from ..records import RESULT_DTYPE
from . import loot_pb2 as pb
from . import servertiming
from .counters import Counters
from .encode import DEFAULT_ENCODER, get_encoder

SERVICE = "lootlab.v1.LootService"
#: The query methods and their request messages (all answer ``Records`` as ready bytes).
REQUESTS: dict[str, Any] = {"Get": pb.GetRequest, "Near": pb.NearRequest,
                            "Box": pb.BoxRequest, "Knn": pb.KnnRequest}
_EMPTY = np.empty(0, RESULT_DTYPE)

Query = Callable[[], np.ndarray]


@dataclass(frozen=True)
class Limits:
    """What one request may ask for.  Larger answers are refused (OUT_OF_RANGE), not
    truncated.  ``max_results`` keeps every answer inside a standard client's 4 MiB
    receive limit: a record takes at most 43 bytes as a repeated ``Record`` (41 for its
    fields at their longest varints, 2 for tag and length) and 24 packed, so 95,000
    records are at most 4,085,011 bytes (with ``generation``) of 4,194,304.  Raising it
    needs clients that accept more (``grpc.max_receive_message_length``)."""

    max_radius: float = 4096.0
    max_k: int = 10_000
    max_results: int = 95_000
    max_request_bytes: int = 16 * 1024
    max_response_bytes: int = 64 * 1024 * 1024


class Refused(Exception):
    """A request the service answers with an error status: ``code`` and the reason."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code, self.details = code, details


def _point(p: pb.Point) -> tuple[int, int, int]:
    return p.x, p.y, p.z


def ready_bytes(answer: bytes) -> bytes:
    """The response serializer of the query methods: the answer is already encoded."""
    return answer


class LootServicer:
    """Request handlers.  Validation errors become INVALID_ARGUMENT with the reason."""

    def __init__(self, index: LootIndex, limits: Limits = Limits(), delay: float = 0.0,
                 encoder: str = DEFAULT_ENCODER, counters: Counters | None = None):
        self.index = index
        self.limits = limits
        self.delay = delay
        self.encoder = get_encoder(encoder)
        self.counters = counters or Counters()

    # -- the steps both server kinds share ---------------------------------------------
    def prepare(self, method: str, request: Any) -> Query:
        """Validate ``request`` (``Refused`` if it is bad); the query that answers it."""
        index = self.index
        if method == "Near":
            r = request.radius
            if not math.isfinite(r) or r < 0 or r > self.limits.max_radius:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                              f"radius must be a finite number in [0, "
                              f"{self.limits.max_radius:g}], got {r!r}")
            return lambda: index.near(*_point(request.at), r)
        if method == "Get":
            def get() -> np.ndarray:
                rec = index.get(*_point(request.at))
                return _EMPTY if rec is None else np.array([tuple(rec)], dtype=RESULT_DTYPE)
            return get
        if method == "Box":
            lo, hi = _point(request.lo), _point(request.hi)
            if any(a > b for a, b in zip(lo, hi)):
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                              f"box lo {lo} must be <= hi {hi} on every axis")
            return lambda: index.box(lo, hi)
        if method == "Knn":
            if request.k > self.limits.max_k:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                              f"k must be in [0, {self.limits.max_k}], got {request.k}")
            return lambda: index.knn(*_point(request.at), int(request.k))
        raise ValueError(f"unknown query method {method!r}")

    def check_deadline(self, context: Any) -> None:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise Refused(grpc.StatusCode.DEADLINE_EXCEEDED,
                          "deadline passed before the query ran")

    def run(self, query: Query, packed: bool) -> bytes:
        """Run ``query`` and encode its answer (``Refused`` if it fails or is too large)."""
        try:
            res = query()
        except QueryError as exc:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        n = len(res)
        if n > self.limits.max_results:
            raise Refused(grpc.StatusCode.OUT_OF_RANGE,
                          f"query matched {n:,} records; this server returns at most "
                          f"{self.limits.max_results:,}: use a smaller radius, box or k")
        encode = self.encoder.packed if packed else self.encoder.records
        return encode(res, self.index.generation)

    def stats(self) -> pb.Stats:
        t = self.counters.totals()
        return pb.Stats(requests=t["requests"], connections=t["connections"],
                        tls_connections=t["tls_connections"], tls_resumed=t["tls_resumed"],
                        tls_requests=t["tls_requests"], resumed_requests=t["resumed_requests"],
                        generation=self.index.generation, records=len(self.index),
                        cpu_seconds=t["cpu_seconds"], processes=t["processes"],
                        process_requests=t["process_requests"])

    # -- the thread-pool server's handlers ---------------------------------------------
    def _pause(self, context: grpc.ServicerContext) -> None:
        """Fault injection (``delay``): a slow server, for tests of client timeouts.  The
        wait ends early when the call does (deadline, cancel), so it holds no worker longer."""
        done = threading.Event()
        if context.add_callback(done.set):
            done.wait(self.delay)

    def answer(self, method: str, request: Any, context: grpc.ServicerContext) -> bytes:
        try:
            query = self.prepare(method, request)
            self.counters.note(context)
            if self.delay > 0:
                self._pause(context)
            self.check_deadline(context)
            return self.run(query, request.packed)
        except Refused as refused:
            context.abort(refused.code, refused.details)
            raise   # abort raised already; this line is for type checkers

    def Get(self, request: pb.GetRequest, context: grpc.ServicerContext) -> bytes:
        return self.answer("Get", request, context)

    def Near(self, request: pb.NearRequest, context: grpc.ServicerContext) -> bytes:
        return self.answer("Near", request, context)

    def Box(self, request: pb.BoxRequest, context: grpc.ServicerContext) -> bytes:
        return self.answer("Box", request, context)

    def Knn(self, request: pb.KnnRequest, context: grpc.ServicerContext) -> bytes:
        return self.answer("Knn", request, context)

    def ServerStats(self, request: pb.StatsRequest, context: grpc.ServicerContext) -> pb.Stats:
        return self.stats()


def _timed(method: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
    """``method`` with the server's timing in its trailing metadata, errors included."""
    clock, stamp, metadata = time.perf_counter_ns, servertiming.stamp, servertiming.metadata

    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        begun = clock()
        queued, started = stamp()
        try:
            return method(request, context)
        finally:
            context.set_trailing_metadata(metadata(started - queued, clock() - begun))
    handler.__name__ = getattr(method, "__name__", "handler")
    return handler


def handler_table(make: Callable[[str], Callable[..., Any]],
                  stats: Callable[..., Any]) -> dict[str, grpc.RpcMethodHandler]:
    """Each method's handler from ``make(method)``; the queries answer ready bytes
    (identity serializer), ``ServerStats`` a ``Stats`` message."""
    handlers = {name: grpc.unary_unary_rpc_method_handler(
        make(name), request_deserializer=message.FromString,
        response_serializer=ready_bytes) for name, message in REQUESTS.items()}
    handlers["ServerStats"] = grpc.unary_unary_rpc_method_handler(
        stats, request_deserializer=pb.StatsRequest.FromString,
        response_serializer=pb.Stats.SerializeToString)
    return handlers


def method_handlers(servicer: LootServicer) -> dict[str, grpc.RpcMethodHandler]:
    """The thread-pool server's handlers."""
    return handler_table(lambda name: _timed(getattr(servicer, name)),
                         _timed(servicer.ServerStats))


def register(handlers: dict[str, grpc.RpcMethodHandler], server: Any) -> None:
    """Serve ``handlers`` on ``server`` (as the generated code registers them)."""
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
