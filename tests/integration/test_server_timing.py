"""Every answer carries the server's queue wait and compute time (trailing metadata), the
query methods hand gRPC ready bytes, and both encoders answer byte for byte alike."""

from __future__ import annotations

import threading

import grpc
import pytest
from _remote import small_index

import lootlab
from lootlab.remote import encode, handlers, servertiming
from lootlab.remote import loot_pb2 as pb
from lootlab.remote.server import start_server

DELAY = 0.3


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    idx = lootlab.open_index(small_index(tmp_path_factory.mktemp("timing")))
    yield idx
    idx.close()


def _raw(channel: grpc.Channel, method: str, request) -> grpc.UnaryUnaryMultiCallable:
    """A call that returns the answer's bytes undecoded."""
    return channel.unary_unary(f"/lootlab.v1.LootService/{method}",
                               request_serializer=lambda m: m.SerializeToString())


def _spot(index) -> pb.Point:
    p = index.sample(1, seed=2)[0]
    return pb.Point(x=int(p["x"]), y=int(p["y"]), z=int(p["z"]))


def test_second_of_two_calls_waits_at_least_the_first_ones_compute(index):
    """One worker, two slow calls queued together: the one served second waited for the
    whole of the first one's compute (which includes its DELAY)."""
    running = start_server(index, workers=1, delay=DELAY)
    release = threading.Event()
    try:
        blocker = running.executor.submit(release.wait, 30)     # holds the only worker
        with grpc.insecure_channel(running.target) as channel:
            call = _raw(channel, "Near", None)
            req = pb.NearRequest(at=_spot(index), radius=20)
            futures = [call.future(req, timeout=60) for _ in range(2)]
            assert running.executor.wait_waiting(2, timeout=30), "calls never queued"
            release.set()
            blocker.result(timeout=30)
            timings = [servertiming.parse(f.trailing_metadata()) for f in futures]
            answers = [f.result() for f in futures]
    finally:
        release.set()
        running.stop(0)
    assert None not in timings
    first, second = sorted(timings, key=lambda t: t.queue_us)
    assert first.compute_us >= DELAY * 1e6 * 0.9
    assert second.queue_us >= first.compute_us
    assert answers[0] == answers[1] == encode.encode_records(
        index.near(req.at.x, req.at.y, req.at.z, 20), index.generation)


@pytest.mark.parametrize("encoder", ["fast", "python"])
def test_every_method_and_every_error_carries_the_timing(index, encoder):
    running = start_server(index, encoder=encoder)
    at = _spot(index)
    calls = {
        "Get": pb.GetRequest(at=at), "Near": pb.NearRequest(at=at, radius=30),
        "Box": pb.BoxRequest(lo=at, hi=pb.Point(x=at.x + 9, y=at.y + 9, z=at.z + 9)),
        "Knn": pb.KnnRequest(at=at, k=7, packed=True), "ServerStats": pb.StatsRequest(),
    }
    try:
        with grpc.insecure_channel(running.target) as channel:
            for method, req in calls.items():
                _, call = _raw(channel, method, req).with_call(req, timeout=30)
                assert servertiming.parse(call.trailing_metadata()) is not None, method
            bad = pb.NearRequest(at=at, radius=-1)
            with pytest.raises(grpc.RpcError) as err:
                _raw(channel, "Near", bad)(bad, timeout=30)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert servertiming.parse(err.value.trailing_metadata()) is not None
    finally:
        running.stop(0)


def test_both_encoders_answer_the_same_bytes(index):
    fast, naive = start_server(index, encoder="fast"), start_server(index, encoder="python")
    at = _spot(index)
    try:
        with grpc.insecure_channel(fast.target) as a, grpc.insecure_channel(naive.target) as b:
            for method, req in [("Near", pb.NearRequest(at=at, radius=50)),
                                ("Near", pb.NearRequest(at=at, radius=50, packed=True)),
                                ("Get", pb.GetRequest(at=at)),
                                ("Get", pb.GetRequest(at=pb.Point(x=1, y=2, z=3))),
                                ("Knn", pb.KnnRequest(at=at, k=40))]:
                got = _raw(a, method, req)(req, timeout=30)
                assert got == _raw(b, method, req)(req, timeout=30), (method, req)
                assert pb.Records.FromString(got).generation == index.generation
    finally:
        fast.stop(0)
        naive.stop(0)


def test_query_answers_are_ready_bytes_with_an_identity_serializer(index):
    servicer = handlers.LootServicer(index)
    table = handlers.method_handlers(servicer)
    for method in ("Get", "Near", "Box", "Knn"):
        assert table[method].response_serializer is handlers.ready_bytes
    assert table["ServerStats"].response_serializer is pb.Stats.SerializeToString
    assert handlers.ready_bytes(b"\x0a\x00") == b"\x0a\x00"


def test_parse_reads_pairs_and_refuses_what_is_not_ours():
    ok = servertiming.parse([("lootlab-queue-us", "12"), ("other", "x"),
                             ("lootlab-compute-us", b"340")])
    assert ok == servertiming.ServerTiming(12, 340) and ok.total_us == 352
    assert servertiming.parse(None) is None
    assert servertiming.parse([("lootlab-queue-us", "1")]) is None
    assert servertiming.parse([("lootlab-queue-us", "1"), ("lootlab-compute-us", "x")]) is None
    assert servertiming.metadata(4_000, 4_999) == (("lootlab-queue-us", "4"),
                                                  ("lootlab-compute-us", "4"))
    assert servertiming.metadata(-5, 0) == (("lootlab-queue-us", "0"), ("lootlab-compute-us", "0"))


def test_a_bad_encoder_name_is_refused_before_binding(index):
    with pytest.raises(ValueError, match="unknown encoder 'protobuf'"):
        start_server(index, encoder="protobuf")
