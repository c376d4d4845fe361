"""The asyncio server (``server="aio"``) answers exactly as the thread-pool one: the same
bytes, the same errors, the same trailing metadata, the same counts; and how it is chosen."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import grpc
import pytest
from _remote import small_index
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lootlab
from lootlab.remote import loot_pb2 as pb
from lootlab.remote import servertiming
from lootlab.remote.loopback import LoopbackError, LoopbackServer
from lootlab.remote.server import Limits, ServerError, start_server


@pytest.fixture(scope="module")
def index_path(tmp_path_factory) -> Path:
    return small_index(tmp_path_factory.mktemp("aio"))


@pytest.fixture(scope="module")
def index(index_path):
    idx = lootlab.open_index(index_path)
    yield idx
    idx.close()


@pytest.fixture(scope="module")
def pair(index):
    """A thread-pool and an asyncio server on the same index, small limits."""
    limits = Limits(max_radius=200.0, max_k=50, max_results=400)
    servers = [start_server(index, limits=limits, server=kind) for kind in ("sync", "aio")]
    channels = [grpc.insecure_channel(s.target) for s in servers]
    yield channels
    for c in channels:
        c.close()
    for s in servers:
        s.stop(0)


def _ask(channel: grpc.Channel, method: str, request) -> tuple:
    """What the server said: ("ok", bytes) or ("error", code, details), and its timing."""
    call = channel.unary_unary(f"/lootlab.v1.LootService/{method}",
                               request_serializer=lambda m: m.SerializeToString())
    try:
        answer, c = call.with_call(request, timeout=30)
        return ("ok", answer), servertiming.parse(c.trailing_metadata())
    except grpc.RpcError as exc:
        return ("error", exc.code(), exc.details()), servertiming.parse(exc.trailing_metadata())


coord = st.integers(-300, 300)
point = st.builds(pb.Point, x=coord, y=st.integers(0, 128), z=coord)
radius = st.one_of(st.floats(-10, 260, allow_nan=False), st.sampled_from([math.nan, math.inf]))
requests = st.one_of(
    st.tuples(st.just("Get"), st.builds(pb.GetRequest, at=point, packed=st.booleans())),
    st.tuples(st.just("Near"), st.builds(pb.NearRequest, at=point, radius=radius,
                                         packed=st.booleans())),
    st.tuples(st.just("Box"), st.builds(pb.BoxRequest, lo=point, hi=point, packed=st.booleans())),
    st.tuples(st.just("Knn"), st.builds(pb.KnnRequest, at=point, k=st.integers(0, 80),
                                        packed=st.booleans())),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(asked=requests)
def test_aio_answers_and_refuses_exactly_as_the_thread_pool_server(pair, asked):
    method, request = asked
    (sync, sync_timing), (aio, aio_timing) = (_ask(c, method, request) for c in pair)
    assert aio == sync, (method, request)
    assert sync_timing is not None and aio_timing is not None


def test_aio_stats_carry_timing_and_count_the_queries(index):
    running = start_server(index, server="aio")
    try:
        with grpc.insecure_channel(running.target) as channel:
            for _ in range(3):
                _ask(channel, "Near", pb.NearRequest(at=pb.Point(x=0, y=64, z=0), radius=20))
            _ask(channel, "Near", pb.NearRequest(radius=-1))        # refused: not counted
            call = channel.unary_unary("/lootlab.v1.LootService/ServerStats",
                                       request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=pb.Stats.FromString)
            stats, c = call.with_call(pb.StatsRequest(), timeout=30)
    finally:
        running.stop(0)
    assert (stats.requests, stats.connections, stats.tls_requests) == (3, 1, 0)
    assert stats.records == len(index) and stats.cpu_seconds > 0
    assert servertiming.parse(c.trailing_metadata()) is not None


def test_a_delayed_aio_call_past_its_deadline_is_refused_and_holds_no_other_call(index):
    """The pause awaits: a call stuck in it does not stop a later one from being served
    (its deadline fires first), and both get their status."""
    running = start_server(index, server="aio", delay=30.0)
    try:
        with grpc.insecure_channel(running.target) as channel:
            call = channel.unary_unary("/lootlab.v1.LootService/Get",
                                       request_serializer=lambda m: m.SerializeToString())
            slow = call.future(pb.GetRequest(), timeout=20)
            with pytest.raises(grpc.RpcError) as err:
                call(pb.GetRequest(), timeout=0.5)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert not slow.done()                   # still paused, yet the other was served
            slow.cancel()
    finally:
        running.stop(0)


def test_the_loop_task_factory_measures_the_wait_behind_a_running_callback():
    loop = asyncio.new_event_loop()
    loop.set_task_factory(servertiming.loop_task_factory)
    block_s = 0.2

    async def body() -> tuple[int, int]:
        return servertiming.task_stamp()

    async def main() -> tuple[int, int]:
        loop.call_soon(time.sleep, block_s)          # runs before the task's first step
        return await loop.create_task(body())

    try:
        queued, started = loop.run_until_complete(main())
    finally:
        loop.close()
    assert started - queued >= block_s * 1e9 * 0.9
    now = servertiming.task_stamp()                  # outside such a task: zero wait
    assert now[0] == now[1]


def test_a_bad_server_kind_is_refused_before_anything_starts(index):
    with pytest.raises(ServerError, match="unknown server kind 'twisted'.*sync, aio"):
        start_server(index, server="twisted")
    with pytest.raises(LoopbackError, match="unknown server kind 'twisted'"):
        LoopbackServer(server="twisted")


def test_loopback_aio_group_counts_tls_requests_exactly(index_path):
    with LoopbackServer(index_path, tls=True, server="aio", processes=2) as srv:
        assert srv.info["server"] == "aio" and len(set(srv.pids)) == 2
        before = srv.stats()
        calls = 0
        for _ in range(2):
            with lootlab.connect("grpc-tls-pooled", srv) as client:
                for _ in range(3):
                    client.near(0, 64, 0, 20)
                    calls += 1
        after = srv.stats()
    assert after["requests"] - before["requests"] == calls
    assert after["tls_requests"] - before["tls_requests"] == calls
    assert after["processes"] == 2


def test_lootlab_serve_passes_server_encoder_and_processes_to_serve(monkeypatch, index_path):
    from lootlab.cli.serve import command
    from lootlab.remote import server

    seen = {}
    monkeypatch.setattr(server, "serve", lambda path, **kw: seen.update(kw))
    res = CliRunner().invoke(command, ["--index", str(index_path), "--plaintext",
                                       "--server", "aio", "--encoder", "python",
                                       "--processes", "3"])
    assert res.exit_code == 0, res.output
    assert (seen["server"], seen["encoder"], seen["processes"]) == ("aio", "python", 3)
    res = CliRunner().invoke(command, ["--index", str(index_path), "--server", "uvloop"])
    assert res.exit_code != 0 and "uvloop" in res.output
