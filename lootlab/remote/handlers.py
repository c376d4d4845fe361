"""The loot service's request handlers, and their registration with a gRPC server.

Query answers leave the handlers as ready bytes (``lootlab.remote.encode``), and the
methods are registered with the identity as response serializer, so gRPC sends them as
they are: no protobuf message is built per answer on the fast path.  The naive encoder
(``encoder="python"``) builds one, and serializes it inside the handler, so its cost
shows in the same compute time.  Every answer carries the server's queue wait and
compute time as trailing metadata (``lootlab.remote.servertiming``).
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

    # -- helpers -----------------------------------------------------------------------
    def _answer(self, res: np.ndarray, packed: bool, context: grpc.ServicerContext) -> bytes:
        n = len(res)
        if n > self.limits.max_results:
            context.abort(grpc.StatusCode.OUT_OF_RANGE,
                          f"query matched {n:,} records; this server returns at most "
                          f"{self.limits.max_results:,}: use a smaller radius, box or k")
        encode = self.encoder.packed if packed else self.encoder.records
        return encode(res, self.index.generation)

    def _pause(self, context: grpc.ServicerContext) -> None:
        """Fault injection (``delay``): a slow server, for tests of client timeouts.  The
        wait ends early when the call does (deadline, cancel), so it holds no worker longer."""
        done = threading.Event()
        if context.add_callback(done.set):
            done.wait(self.delay)

    def _run(self, context: grpc.ServicerContext, query: Callable[[], Any]) -> Any:
        self.counters.note(context)
        if self.delay > 0:
            self._pause(context)
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the query ran")
        try:
            res = query()
        except QueryError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return res

    def _bad(self, context: grpc.ServicerContext, message: str) -> None:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)

    # -- RPCs --------------------------------------------------------------------------
    def Get(self, request: pb.GetRequest, context: grpc.ServicerContext) -> bytes:
        rec = self._run(context, lambda: self.index.get(*_point(request.at)))
        res = (np.empty(0, RESULT_DTYPE) if rec is None
               else np.array([tuple(rec)], dtype=RESULT_DTYPE))
        return self._answer(res, request.packed, context)

    def Near(self, request: pb.NearRequest, context: grpc.ServicerContext) -> bytes:
        r = request.radius
        if not math.isfinite(r) or r < 0 or r > self.limits.max_radius:
            self._bad(context, f"radius must be a finite number in [0, {self.limits.max_radius:g}], "
                               f"got {r!r}")
        res = self._run(context, lambda: self.index.near(*_point(request.at), r))
        return self._answer(res, request.packed, context)

    def Box(self, request: pb.BoxRequest, context: grpc.ServicerContext) -> bytes:
        lo, hi = _point(request.lo), _point(request.hi)
        if any(a > b for a, b in zip(lo, hi)):
            self._bad(context, f"box lo {lo} must be <= hi {hi} on every axis")
        res = self._run(context, lambda: self.index.box(lo, hi))
        return self._answer(res, request.packed, context)

    def Knn(self, request: pb.KnnRequest, context: grpc.ServicerContext) -> bytes:
        if request.k > self.limits.max_k:
            self._bad(context, f"k must be in [0, {self.limits.max_k}], got {request.k}")
        res = self._run(context,
                        lambda: self.index.knn(*_point(request.at), int(request.k)))
        return self._answer(res, request.packed, context)

    def ServerStats(self, request: pb.StatsRequest, context: grpc.ServicerContext) -> pb.Stats:
        t = self.counters.totals()
        return pb.Stats(requests=t["requests"], connections=t["connections"],
                        tls_connections=t["tls_connections"], tls_resumed=t["tls_resumed"],
                        tls_requests=t["tls_requests"], resumed_requests=t["resumed_requests"],
                        generation=self.index.generation, records=len(self.index),
                        cpu_seconds=t["cpu_seconds"], processes=t["processes"],
                        process_requests=t["process_requests"])


def _timed(method: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
    """``method`` with the server's timing in its trailing metadata, errors included."""
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        begun = time.perf_counter_ns()
        queued, started = servertiming.stamp()
        try:
            return method(request, context)
        finally:
            context.set_trailing_metadata(
                servertiming.metadata(started - queued, time.perf_counter_ns() - begun))
    handler.__name__ = getattr(method, "__name__", "handler")
    return handler


def method_handlers(servicer: LootServicer) -> dict[str, grpc.RpcMethodHandler]:
    """Each method's handler: the queries answer ready bytes (identity serializer)."""
    requests = {"Get": pb.GetRequest, "Near": pb.NearRequest, "Box": pb.BoxRequest,
                "Knn": pb.KnnRequest}
    handlers = {name: grpc.unary_unary_rpc_method_handler(
        _timed(getattr(servicer, name)), request_deserializer=message.FromString,
        response_serializer=ready_bytes) for name, message in requests.items()}
    handlers["ServerStats"] = grpc.unary_unary_rpc_method_handler(
        _timed(servicer.ServerStats), request_deserializer=pb.StatsRequest.FromString,
        response_serializer=pb.Stats.SerializeToString)
    return handlers


def register(servicer: LootServicer, server: grpc.Server) -> None:
    """Serve ``servicer``'s methods on ``server`` (as the generated code registers them)."""
    handlers = method_handlers(servicer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
