"""The loot service on gRPC's asyncio server (``grpc.aio``): ``server="aio"``.

Every handler runs on one event loop, in the task gRPC starts for the call, so a call is
never handed to a worker thread and back (the thread-pool server's per-call cost).  The
loop runs in one daemon thread per process, shared by the asyncio servers it starts, so
``serve`` still waits on its stop event in the calling thread.  The handlers are the
thread-pool server's steps (``LootServicer.prepare`` / ``run``): same validation, same
errors, same bytes, same trailing metadata; only the fault-injection pause awaits
instead of blocking, so a slow call holds no other call up.  A query itself runs on the
loop: calls answer one after another, as the GIL made them do on the pool.  Queue wait
is the time a call's task waited for the loop (``servertiming.loop_task_factory``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from . import servertiming
from .handlers import LootServicer, Refused, handler_table

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def shared_loop() -> asyncio.AbstractEventLoop:
    """This process's asyncio server loop, started on first use (a daemon thread)."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            loop.set_task_factory(servertiming.loop_task_factory)
            threading.Thread(target=loop.run_forever, daemon=True,
                             name="lootlab-aio-server").start()
            _loop = loop
        return _loop


def on_loop(make: Callable[[], Awaitable[Any]], timeout: float | None = None) -> Any:
    """Run the coroutine ``make()`` on the shared loop and wait for its result here."""
    async def call() -> Any:
        return await make()
    return asyncio.run_coroutine_threadsafe(call(), shared_loop()).result(timeout)


async def _pause(context: grpc.aio.ServicerContext, delay: float) -> None:
    """Fault injection: wait ``delay`` seconds, less if the call ends first."""
    if context.done():
        return
    ended = asyncio.Event()
    context.add_done_callback(lambda *_: ended.set())
    try:
        await asyncio.wait_for(ended.wait(), delay)
    except TimeoutError:
        pass


def _timing(begun: int) -> tuple[tuple[str, str], ...]:
    queued, started = servertiming.task_stamp()
    return servertiming.metadata(started - queued, time.perf_counter_ns() - begun)


def _query_handler(servicer: LootServicer, method: str) -> Callable[..., Awaitable[bytes]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> bytes:
        begun = time.perf_counter_ns()
        try:
            query = servicer.prepare(method, request)
            servicer.counters.note(context)
            if servicer.delay > 0:
                await _pause(context, servicer.delay)
            servicer.check_deadline(context)
            answer = servicer.run(query, request.packed)
        except Refused as refused:
            # abort sends the status now: the timing goes with it, not after it
            await context.abort(refused.code, refused.details, trailing_metadata=_timing(begun))
        except BaseException:
            context.set_trailing_metadata(_timing(begun))
            raise
        context.set_trailing_metadata(_timing(begun))
        return answer
    handler.__name__ = method
    return handler


def aio_handlers(servicer: LootServicer) -> dict[str, grpc.RpcMethodHandler]:
    """The asyncio server's handlers: coroutines, run on its loop."""
    async def stats(request: Any, context: grpc.aio.ServicerContext) -> Any:
        begun = time.perf_counter_ns()
        try:
            return servicer.stats()
        finally:
            context.set_trailing_metadata(_timing(begun))
    return handler_table(lambda name: _query_handler(servicer, name), stats)


def start_aio(servicer: LootServicer, *, address: str, tls: Any,
              options: list[tuple[str, Any]], max_pending_rpcs: int | None,
              bind: Callable[[Any, str, Any], int]) -> tuple[grpc.aio.Server, int]:
    """Create, bind (with ``bind(server, address, tls)``) and start an asyncio server on
    the shared loop; returns it and its bound port."""
    from .handlers import register

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(options=options, maximum_concurrent_rpcs=max_pending_rpcs)
        register(aio_handlers(servicer), server)
        port = bind(server, address, tls)        # raises ServerError: nothing started
        await server.start()
        return server, port
    return on_loop(start, timeout=60)


def stop_aio(server: grpc.aio.Server, grace: float | None) -> None:
    """Refuse new calls, let running ones finish for up to ``grace`` seconds."""
    on_loop(lambda: server.stop(grace))
