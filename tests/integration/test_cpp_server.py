"""The C++ loot server (build/lootlab-server) against the oracle and the Python server.

Every client variant must get exactly what ``lootlab.open_index`` returns, the answer bytes
must equal the Python server's for the same requests (both encodings), errors must carry
the same status and message, and the server must not outlive its parent.  Without the
binary the tests skip, except under CI=true on a machine with the toolchain, where a
missing build is a failure (make test builds it there).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from _remote import REMOTE_VARIANTS, same_records, small_index, wait_gone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lootlab
from lootlab.errors import QueryError
from lootlab.remote import loot_pb2 as pb
from lootlab.remote import servertiming
from lootlab.remote.cppserver import CppServer, CppServerError, find_binary
from lootlab.remote.loopback import LoopbackServer
from lootlab.targets import client_factory

GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden.idx"


def _toolchain() -> bool:
    tools = all(shutil.which(t) for t in ("g++", "protoc", "grpc_cpp_plugin", "pkg-config"))
    return tools and subprocess.run(["pkg-config", "--exists", "grpc++", "protobuf"],
                                    check=False).returncode == 0


def gate() -> None:
    """Skip without the binary; under CI=true with the toolchain installed, fail instead."""
    try:
        find_binary()
    except CppServerError as exc:
        if os.environ.get("CI") == "true" and _toolchain():
            pytest.fail(f"{exc} (CI=true and the toolchain is installed: make test builds it)")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One LOOTLAB_DATA for the module, so the development CA is made once."""
    gate()
    path = tmp_path_factory.mktemp("cpp-data")
    old = os.environ.get("LOOTLAB_DATA")
    os.environ["LOOTLAB_DATA"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LOOTLAB_DATA", None)
    else:
        os.environ["LOOTLAB_DATA"] = old


@pytest.fixture(scope="module")
def index_path(data_dir):
    return small_index(data_dir / "idx")


@pytest.fixture(scope="module")
def oracle(index_path):
    with lootlab.open_index(index_path) as ix:
        yield ix


@pytest.fixture(scope="module")
def cpp(index_path):
    with CppServer(index_path, threads=2) as srv:
        yield srv


@pytest.fixture(scope="module")
def cpp_plain(index_path):
    with CppServer(index_path, tls=False, threads=2) as srv:
        yield srv


@pytest.fixture(scope="module")
def clients(cpp, cpp_plain):
    made = {v: client_factory(v, cpp_plain if v == "grpc-plain" else cpp)()
            for v in REMOTE_VARIANTS}
    yield made
    for c in made.values():
        c.close()


@pytest.fixture(scope="module")
def pair(index_path):
    """A C++ and a Python server, plaintext, answering at most 50 records (so OUT_OF_RANGE
    is reachable on the small index)."""
    limits = {"max_results": 50}
    with CppServer(index_path, tls=False, limits=limits) as c, \
            LoopbackServer(index_path, tls=False, limits=limits) as p:
        channels = [grpc.insecure_channel(s.target) for s in (c, p)]
        yield channels
        for ch in channels:
            ch.close()


def _raw(channel: grpc.Channel, method: str, request) -> tuple[str, bytes | str]:
    """(status name, answer bytes or error details) of one call, no decoding."""
    call = channel.unary_unary(f"/lootlab.v1.LootService/{method}",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=None)
    try:
        answer, info = call.with_call(request, timeout=10)
    except grpc.RpcError as exc:
        assert servertiming.parse(exc.trailing_metadata()) is not None
        return exc.code().name, exc.details()
    assert servertiming.parse(info.trailing_metadata()) is not None
    return "OK", answer


# -- queries -----------------------------------------------------------------------------
coord = st.integers(-1500, 1500)
height = st.integers(-40, 140)
points = st.tuples(coord, height, coord)


def _near_point(oracle, pick: int, jitter: tuple[int, int, int]) -> tuple[int, int, int]:
    """A point near a real record (random points on a sparse index mostly find nothing)."""
    rec = oracle.sample(1, seed=pick)[0]
    return (int(rec["x"]) + jitter[0], int(rec["y"]) + jitter[1], int(rec["z"]) + jitter[2])


queries = st.one_of(
    st.tuples(st.just("near"), st.integers(0, 10**6), st.tuples(*[st.integers(-20, 20)] * 3),
              st.floats(0, 120, allow_nan=False)),
    st.tuples(st.just("box"), st.integers(0, 10**6), st.tuples(*[st.integers(-60, 10)] * 3),
              st.tuples(*[st.integers(0, 70)] * 3)),
    st.tuples(st.just("get"), st.integers(0, 10**6), st.tuples(*[st.integers(-1, 1)] * 3),
              st.none()),
    st.tuples(st.just("knn"), st.integers(0, 10**6), st.tuples(*[st.integers(-500, 500)] * 3),
              st.integers(0, 300)),
)


def _run(target, oracle, q):
    kind, pick, jitter, arg = q
    x, y, z = _near_point(oracle, pick, jitter)
    if kind == "near":
        return target.near(x, y, z, arg)
    if kind == "box":
        return target.box((x, y, z), (x + arg[0], y + arg[1], z + arg[2]))
    if kind == "knn":
        return target.knn(x, y, z, arg)
    return target.get(x, y, z)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=queries)
def test_every_variant_answers_what_the_index_answers(clients, oracle, q):
    want = _run(oracle, oracle, q)
    for name, client in clients.items():
        got = _run(client, oracle, q)
        if q[0] == "get":
            assert got == want, name
        else:
            assert same_records(got, want), (name, q, len(got), len(want))


def _requests(oracle, q, packed: bool):
    kind, pick, jitter, arg = q
    x, y, z = _near_point(oracle, pick, jitter)
    at = pb.Point(x=x, y=y, z=z)
    if kind == "near":
        return "Near", pb.NearRequest(at=at, radius=arg, packed=packed)
    if kind == "box":
        hi = pb.Point(x=x + arg[0], y=y + arg[1], z=z + arg[2])
        return "Box", pb.BoxRequest(lo=at, hi=hi, packed=packed)
    if kind == "knn":
        return "Knn", pb.KnnRequest(at=at, k=arg, packed=packed)
    return "Get", pb.GetRequest(at=at, packed=packed)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=queries, packed=st.booleans())
def test_answer_bytes_equal_the_python_servers(pair, oracle, q, packed):
    method, request = _requests(oracle, q, packed)
    assert _raw(pair[0], method, request) == _raw(pair[1], method, request)


BAD = [
    ("Near", pb.NearRequest(radius=math.nan)),
    ("Near", pb.NearRequest(radius=math.inf)),
    ("Near", pb.NearRequest(radius=-1.0)),
    ("Near", pb.NearRequest(radius=4096.5)),
    ("Near", pb.NearRequest(radius=1e300)),
    ("Near", pb.NearRequest(radius=1.5e-7 - 1)),
    ("Near", pb.NearRequest(at=pb.Point(x=1 << 25), radius=1)),
    ("Near", pb.NearRequest(radius=4096, packed=True)),          # OUT_OF_RANGE
    ("Get", pb.GetRequest(at=pb.Point(y=2048))),
    ("Get", pb.GetRequest(at=pb.Point(x=-(1 << 25) - 1, z=5))),
    ("Box", pb.BoxRequest(lo=pb.Point(x=5), hi=pb.Point(x=4, y=9, z=9))),
    ("Box", pb.BoxRequest(lo=pb.Point(y=-3000), hi=pb.Point(x=4, y=9, z=9))),
    ("Box", pb.BoxRequest(lo=pb.Point(x=-(1 << 25), y=-2048, z=-(1 << 25)),
                          hi=pb.Point(x=(1 << 25) - 1, y=2047, z=(1 << 25) - 1))),
    ("Knn", pb.KnnRequest(k=10_001)),
    ("Knn", pb.KnnRequest(at=pb.Point(z=1 << 26), k=3)),
]


@pytest.mark.parametrize("method,request_", BAD, ids=[f"{m}-{i}" for i, (m, _) in enumerate(BAD)])
def test_errors_have_the_python_servers_status_and_message(pair, method, request_):
    got, want = _raw(pair[0], method, request_), _raw(pair[1], method, request_)
    assert got[0] != "OK" and got == want


def test_extreme_records_encode_as_the_python_encoder_does(data_dir):
    """The golden file holds the packable range's corners (zigzag and varint extremes)."""
    from lootlab.remote.encode import encode_packed, encode_records
    with lootlab.open_index(GOLDEN) as ix, CppServer(GOLDEN, tls=False) as srv, \
            grpc.insecure_channel(srv.target) as channel:
        lo, hi = (-(1 << 25), -2048, -(1 << 25)), ((1 << 25) - 1, 2047, (1 << 25) - 1)
        rows = ix.box(lo, hi)
        assert len(rows) == len(ix)
        for packed, encode in ((False, encode_records), (True, encode_packed)):
            req = pb.BoxRequest(lo=pb.Point(x=lo[0], y=lo[1], z=lo[2]),
                                hi=pb.Point(x=hi[0], y=hi[1], z=hi[2]), packed=packed)
            assert _raw(channel, "Box", req) == ("OK", encode(rows, ix.generation))


def test_invalid_radius_is_a_query_error(clients):
    for client in clients.values():
        with pytest.raises(QueryError, match="radius must be a finite number in"):
            client.near(0, 64, 0, math.nan)
        with pytest.raises(QueryError, match="outside the packable range"):
            client.get(0, 4000, 0)


def test_trailing_metadata_says_the_compute_time(cpp):
    with grpc.secure_channel(cpp.target, grpc.ssl_channel_credentials(
            Path(cpp.ca).read_bytes())) as ch:
        call = ch.unary_unary("/lootlab.v1.LootService/Near",
                              request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=None)
        _, info = call.with_call(pb.NearRequest(radius=64), timeout=10)
        timing = servertiming.parse(info.trailing_metadata())
        assert timing is not None and timing.queue_us == 0 and timing.compute_us >= 0


def test_server_stats_count_requests_and_cpu(cpp, clients):
    client = clients["grpc-tls-pooled"]
    before = cpp.stats()
    for i in range(25):
        client.near(i, 64, -i, 64)
    with pytest.raises(QueryError):
        client.near(0, 0, 0, -1)             # refused before counting, as in Python
    after = cpp.stats()
    assert after["requests"] - before["requests"] == 25
    assert after["tls_requests"] - before["tls_requests"] == 25
    assert after["cpu_seconds"] >= before["cpu_seconds"] > 0
    assert after["processes"] == 1 and after["process_requests"] == [after["requests"]]
    assert after["records"] == 20_000 and after["generation"] >= 1
    assert after["connections"] >= 1


def test_server_exits_when_its_parent_is_killed(index_path):
    script = (
        "import time\n"
        "from lootlab.remote.cppserver import CppServer\n"
        f"srv = CppServer({str(index_path)!r}, tls=False).start()\n"
        "print(srv.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        os.kill(child, 0)                                  # it runs
        os.kill(parent.pid, signal.SIGKILL)                # no atexit, no cleanup
        parent.wait()
        assert wait_gone(child), "the C++ server outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_sigterm_stops_it_cleanly(index_path):
    srv = CppServer(index_path, tls=False).start()
    proc = srv.proc
    srv.stop()
    assert proc.returncode == 0


@pytest.mark.parametrize("damage,problem", [
    (lambda b: b[:-7], "truncated: the header says"),
    (lambda b: b + b"\0" * 3, "3 unexpected trailing bytes"),
    (lambda b: b[:24] + b"\xff" + b[25:], "header checksum mismatch"),
    (lambda b: b"NOTANIDX" + b[8:], "not a lootlab index"),
    (lambda b: b[:100], "too small to be a lootlab index"),
])
def test_a_bad_index_is_refused_naming_what_is_wrong(tmp_path, damage, problem):
    gate()
    bad = tmp_path / "bad.idx"
    bad.write_bytes(damage(GOLDEN.read_bytes()))
    with pytest.raises(lootlab.InvalidIndexError, match=problem):
        lootlab.open_index(bad)                          # the Python reader agrees
    with pytest.raises(CppServerError, match=f"before it was ready: .*bad.idx: {problem}"):
        CppServer(bad, tls=False).start()


def test_a_missing_binary_says_how_to_build_it(monkeypatch, tmp_path):
    monkeypatch.setenv("LOOTLAB_CPP_SERVER", str(tmp_path / "nothing"))
    with pytest.raises(CppServerError, match="make cpp-server"):
        CppServer(GOLDEN, tls=False).start()


def test_story_steps_run_against_it(cpp):
    """``story.run_steps(..., server=cpp)`` reaches the C++ server, unchanged."""
    from lootlab.targets import client_factory
    factory = client_factory("grpc-tls-pooled", cpp)
    with factory() as client:
        assert client.target == cpp.target
        assert isinstance(client.near(0, 64, 0, 16), np.ndarray)


def test_a_newly_published_generation_is_served(tmp_path):
    """Like LootIndex, the server swaps to the file a publisher renames over its path."""
    gate()
    path = small_index(tmp_path, n=2_000, seed=5)
    with CppServer(path, tls=False) as srv, lootlab.open_index(path) as ix:
        first = srv.stats()["generation"]
        rows = ix.sample(10, seed=1).to_pandas()
        lootlab.build_index(rows, path)                     # generation + 1, same lineage
        deadline = time.monotonic() + 20
        while srv.stats()["generation"] == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.stats()["generation"] == first + 1
        with client_factory("grpc-plain", srv)() as client:
            everything = ((-(1 << 25), -2048, -(1 << 25)), ((1 << 25) - 1, 2047, (1 << 25) - 1))
            assert len(client.box(*everything)) == len(lootlab.open_index(path)) <= 10
