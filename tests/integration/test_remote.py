"""The gRPC service over real loopback TLS: schema freshness, validation, the errors users
hit (each a lootlab exception naming the cause), hot swaps, loopback lifecycle, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

import lootlab
from lootlab.remote import DeadlineExceeded, ServerUnavailable, TLSError
from lootlab.remote import loot_pb2 as pb
from lootlab.remote import loot_pb2_grpc as pb_grpc
from lootlab.remote.loopback import LoopbackError, LoopbackServer
from lootlab.remote.tls import ensure_dev_tls

from _remote import broken_certs, free_port, other_ca, same_records, sigcont, small_index, wait_gone


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One LOOTLAB_DATA for the module, so the development CA is made once."""
    path = tmp_path_factory.mktemp("remote-data")
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
def server(index_path):
    with LoopbackServer(index_path, limits={"max_results": 5_000}) as srv:
        yield srv


# -- schema ---------------------------------------------------------------------------------
def test_generated_code_is_fresh_against_the_proto():
    pytest.importorskip("grpc_tools")
    from lootlab.remote import codegen
    assert codegen.stale() == [], "run: python -m lootlab.remote.codegen"


def test_generated_stub_imports_package_relative():
    text = Path(pb_grpc.__file__).read_text()
    assert "from . import loot_pb2" in text
    assert "\nimport loot_pb2" not in text
    assert pb_grpc.loot__pb2 is pb


# -- validation -----------------------------------------------------------------------------
def _raw_stub(server):
    creds = grpc.ssl_channel_credentials(Path(server.ca).read_bytes())
    channel = grpc.secure_channel(server.target, creds)
    return channel, pb_grpc.LootServiceStub(channel)


@pytest.mark.parametrize("method,request_, pattern", [
    ("Near", pb.NearRequest(at=pb.Point(x=0, y=0, z=0), radius=-1), "radius"),
    ("Near", pb.NearRequest(at=pb.Point(x=0, y=0, z=0), radius=1e12), "radius"),
    ("Near", pb.NearRequest(at=pb.Point(x=0, y=0, z=0), radius=float("nan")), "radius"),
    ("Near", pb.NearRequest(at=pb.Point(x=0, y=5000, z=0), radius=4), "packable range"),
    ("Get", pb.GetRequest(at=pb.Point(x=2**30, y=0, z=0)), "packable range"),
    ("Knn", pb.KnnRequest(at=pb.Point(x=0, y=0, z=0), k=10**6), "k must be"),
    ("Box", pb.BoxRequest(lo=pb.Point(x=5, y=0, z=0), hi=pb.Point(x=4, y=0, z=0)), "lo .* <= hi"),
])
def test_invalid_requests_get_invalid_argument(server, index_path, method, request_, pattern):
    channel, stub = _raw_stub(server)
    with channel:
        with pytest.raises(grpc.RpcError) as info:
            getattr(stub, method)(request_, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert __import__("re").search(pattern, info.value.details())
        # the server is still there, and still finds what the index holds
        with lootlab.open_index(index_path) as idx:
            near = idx.knn(0, 0, 0, 1)[0]                  # a position that has loot
            x, y, z = int(near["x"]), int(near["y"]), int(near["z"])
            want = len(idx.near(x, y, z, 64))
        ans = stub.Near(pb.NearRequest(at=pb.Point(x=x, y=y, z=z), radius=64), timeout=10)
        assert want >= 1 and len(ans.records) + len(ans.packed) // 24 == want


def test_invalid_queries_raise_query_error_from_every_remote_variant(server):
    for name in ("grpc-tls-pooled", "grpc-tls-packed", "grpc-tls-fresh"):
        with lootlab.connect(name, server) as c:
            with pytest.raises(lootlab.QueryError, match="radius"):
                c.near(0, 0, 0, -5)
            with pytest.raises(lootlab.QueryError, match="packable"):
                c.get(0, 9999, 0)
            with pytest.raises(lootlab.QueryError):
                c.knn(0, 0, 0, -1)
            with pytest.raises(lootlab.QueryError, match="lo"):
                c.box((1, 1, 1), (0, 0, 0))


def test_too_large_an_answer_is_refused_not_crashed(server, index_path):
    with lootlab.connect("grpc-tls-pooled", server) as c, lootlab.open_index(index_path) as idx:
        with pytest.raises(lootlab.QueryError, match="at most 5,000"):
            c.box((-40000, -64, -40000), (40000, 200, 40000))
        p = idx.sample(1, seed=11)[0]
        x, y, z = int(p["x"]), int(p["y"]), int(p["z"])
        assert c.get(x, y, z) == idx.get(x, y, z) is not None     # still serving, correctly


def test_request_size_limit(server):
    channel, _ = _raw_stub(server)
    with channel:
        call = channel.unary_unary("/lootlab.v1.LootService/Get")
        with pytest.raises(grpc.RpcError) as info:
            call(b"\x00" * (64 * 1024), timeout=10)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# -- errors users hit -----------------------------------------------------------------------
def test_server_not_running(data_dir):
    target = f"127.0.0.1:{free_port()}"
    for name in ("grpc-tls-pooled", "grpc-plain", "grpc-tls-fresh"):
        with lootlab.connect(name, target=target) as c:
            with pytest.raises(ServerUnavailable, match="nothing is listening.*lootlab serve"):
                c.get(0, 0, 0)


def test_wrong_ca(server, data_dir):
    ca = other_ca(data_dir / "other")
    with lootlab.connect("grpc-tls-pooled", target=server.target, ca=ca) as c:
        with pytest.raises(TLSError, match="not trusted by ca=.*other-ca.pem.*lootlab serve"):
            c.get(0, 0, 0)


@pytest.mark.parametrize("kind,pattern", [("expired", "expired"),
                                          ("wrong-host", "not issued for '127.0.0.1'")])
def test_bad_server_certificates(index_path, data_dir, kind, pattern):
    files = ensure_dev_tls()
    cert, key = broken_certs(data_dir / "broken", files.ca, files.ca_key)[kind]
    with LoopbackServer(index_path, cert=cert, key=key) as srv:
        with lootlab.connect("grpc-tls-pooled", srv) as c:
            with pytest.raises(TLSError, match=pattern):
                c.get(0, 0, 0)


def test_tls_client_against_plaintext_server_and_back(index_path):
    with LoopbackServer(index_path, tls=False) as plain:
        with lootlab.connect("grpc-tls-pooled", target=plain.target) as c:
            with pytest.raises(TLSError, match="does not speak TLS.*grpc-plain"):
                c.get(0, 0, 0)


def test_plaintext_client_against_tls_server(server):
    with lootlab.connect("grpc-plain", target=server.target) as c:
        with pytest.raises(ServerUnavailable, match="grpc-tls"):
            c.get(0, 0, 0)


def test_deadline_exceeded_names_the_cause(index_path):
    with LoopbackServer(index_path) as srv:
        with lootlab.connect("grpc-tls-pooled", srv) as c:
            assert c.near(0, 0, 0, 4) is not None          # connected and warm
            c.timeout = 0.5
            os.kill(srv.pid, signal.SIGSTOP)               # a hung server
            try:
                with pytest.raises(DeadlineExceeded, match="within 0.5 s.*timeout="):
                    c.near(0, 0, 0, 4)
            finally:
                sigcont(srv.pid)


def test_mutual_tls(index_path):
    files = ensure_dev_tls()
    with LoopbackServer(index_path, client_ca=files.ca) as srv:
        with lootlab.connect("grpc-tls-pooled", srv) as c, lootlab.open_index(index_path) as idx:
            p = idx.sample(1, seed=12)[0]                  # gets the dev client certificate
            want = idx.near(int(p["x"]), int(p["y"]), int(p["z"]), 16)
            assert len(want) >= 1
            assert same_records(c.near(int(p["x"]), int(p["y"]), int(p["z"]), 16), want)
        with lootlab.connect("grpc-tls-pooled", target=srv.target, ca=srv.ca) as c:
            with pytest.raises(TLSError, match="client certificate"):
                c.get(0, 0, 0)
        # a client certificate from a CA the server does not trust
        from lootlab.remote.tls import make_ca, make_cert
        from _remote import write_pair
        rogue_ca = make_ca("rogue CA")
        cert, key = write_pair(index_path.parent, "rogue-client",
                               make_cert(*rogue_ca, hosts=("rogue",), client=True))
        with lootlab.connect("grpc-tls-pooled", target=srv.target, ca=srv.ca,
                             client_cert=cert, client_key=key) as c:
            with pytest.raises(TLSError, match="rejected the client certificate"):
                c.get(0, 0, 0)
        assert srv.stats()["tls_connections"] >= 1


def test_errors_are_lootlab_errors_without_grpc_tracebacks(data_dir):
    target = f"127.0.0.1:{free_port()}"
    with lootlab.connect("grpc-tls-pooled", target=target) as c:
        with pytest.raises(lootlab.LootlabError) as info:
            c.get(0, 0, 0)
    assert info.value.__suppress_context__ and not isinstance(info.value, grpc.RpcError)


# -- hot swap -------------------------------------------------------------------------------
def test_server_sees_a_newly_published_index(data_dir):
    path = small_index(data_dir / "swap", n=3_000, seed=1)
    with LoopbackServer(path) as srv:
        assert srv.stats()["generation"] == 1
        lootlab.build_index(lootlab.generate_world(4_000, seed=2), path)
        deadline = time.monotonic() + 30
        while srv.stats()["generation"] != 2 and time.monotonic() < deadline:
            with lootlab.connect("grpc-tls-pooled", srv) as c:
                c.get(0, 0, 0)
            time.sleep(0.05)
        assert srv.stats()["generation"] == 2
        assert srv.stats()["records"] == len(lootlab.open_index(path))


# -- loopback lifecycle ---------------------------------------------------------------------
def test_loopback_stops_cleanly_on_exit(index_path):
    with LoopbackServer(index_path) as srv:
        pid = srv.pid
        assert srv.running
    assert not srv.running
    assert wait_gone(pid)


def test_loopback_child_exits_when_parent_is_killed(index_path, tmp_path):
    script = (
        "import sys, time\n"
        "from lootlab.remote.loopback import LoopbackServer\n"
        f"srv = LoopbackServer({str(index_path)!r}).start()\n"
        "print(srv.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        os.kill(child, 0)                                  # it runs
        parent.kill()                                      # no atexit, no cleanup
        parent.wait()
        assert wait_gone(child), "loopback server outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_loopback_reports_a_child_that_cannot_start(tmp_path):
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"not an index")
    with pytest.raises(LoopbackError, match="exited with code 1 before it was ready.*bad.idx"):
        LoopbackServer(bad).start()


# -- the CLI as a new user runs it ----------------------------------------------------------
def _lootlab(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from lootlab.cli import main; main()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_cli_serve_prints_target_and_ca_and_stops_on_sigterm(index_path):
    proc = _lootlab("serve", "--index", str(index_path), "--port", "0")
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        target = lines[0].split(" on ")[1].split()[0]
        ca = lines[1].split(": ", 1)[1].strip()
        assert Path(ca).is_file() and "ca=" in lines[2]
        with lootlab.connect("grpc-tls-pooled", target=target, ca=ca) as c:
            idx = lootlab.open_index(index_path)
            p = idx.sample(1, seed=5)[0]
            assert same_records(c.near(int(p["x"]), int(p["y"]), int(p["z"]), 40),
                                idx.near(int(p["x"]), int(p["y"]), int(p["z"]), 40))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "server stopped" in out


def test_cli_serve_errors_are_one_line(tmp_path):
    proc = _lootlab("serve", "--index", str(tmp_path / "missing.idx"), "--port", "0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().count("\n") == 0 and "missing.idx does not exist" in err
    proc = _lootlab("serve", "--index", str(tmp_path / "missing.idx"), "--cert", "x.pem")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err


@pytest.mark.parametrize("mode", [[], ["--plaintext"]], ids=["tls", "plaintext"])
def test_cli_serve_port_in_use_prints_only_lootlabs_line(index_path, mode):
    import socket
    with socket.socket() as held:                      # a port something else listens on
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = _lootlab("serve", "--index", str(index_path), "--port", str(port), *mode)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    lines = err.splitlines()
    assert len(lines) == 1, err                        # no gRPC core log line (add_port.cc)
    assert lines[0].startswith(f"lootlab: error: cannot listen on 127.0.0.1:{port}: "
                               f"the port is in use"), err
    assert out == ""


def test_serve_host_not_on_this_machine_is_named():
    from lootlab.remote.server import ServerError, start_server
    with pytest.raises(ServerError, match="192.0.2.1:0: the host is not an address of this"):
        start_server(None, host="192.0.2.1", port=0)    # TEST-NET-1: never a local address


# -- limits a standard client works with ----------------------------------------------------
def test_timeouts_are_timeout_errors():
    from lootlab.loadgen.senders import TIMEOUT, _classify
    from lootlab.remote.loopback import LoopbackTimeout
    for exc in (DeadlineExceeded("no answer", target="t", code="DEADLINE_EXCEEDED"),
                LoopbackTimeout("not ready")):
        assert isinstance(exc, TimeoutError) and isinstance(exc, lootlab.LootlabError)
        assert _classify(exc) == TIMEOUT


def test_load_run_against_a_slow_server_counts_timeouts_not_errors(index_path):
    import functools
    from lootlab import loadgen
    with lootlab.open_index(index_path) as idx:
        p = idx.sample(1, seed=3)[0]
    workload = [[int(p["x"]), int(p["y"]), int(p["z"]), 8]]
    with LoopbackServer(index_path, tls=False, delay=30.0) as srv:     # far slower than 0.2 s
        factory = functools.partial(lootlab.connect, "grpc-plain", target=srv.target,
                                    timeout=0.2)
        res = loadgen.run(factory, loadgen.constant(rate=4, duration=1), warmup=0,
                          workload=workload)
    c = res.counts
    assert c["measured"] >= 1 and c["timeouts"] == c["measured"], c
    assert c["failed"] == 0 and c["ok"] == 0, (c, res.to_frame())


def _worst_case_records(n: int, x0: int):
    """``n`` records whose every field has the longest protobuf encoding (43 bytes a
    record as a repeated message): |x|, |z| >= 2**20, |y| >= 64, u32 fields >= 2**28..."""
    import numpy as np
    i = np.arange(n)
    side = int(np.ceil(np.sqrt(n / 64)))
    return np.rec.fromarrays([
        x0 + i // (64 * side), -2000 + i % 64, -(2**24) - (i // 64) % side,
        np.full(n, 2**32 - 1), np.full(n, 2**32 - 2), np.full(n, 65535),
        np.full(n, 255), np.full(n, 255), np.full(n, 2**32 - 3)],
        names=list(lootlab.FIELDS)).view(np.ndarray)


def test_standard_client_gets_the_largest_legal_answer_in_both_encodings(tmp_path):
    import numpy as np
    import pandas as pd
    from lootlab.clients import _decode_messages, _decode_packed
    from lootlab.remote.server import STANDARD_CLIENT_MAX_MESSAGE, Limits
    cap = Limits().max_results
    block = _worst_case_records(cap, x0=2**24)
    extra = _worst_case_records(1, x0=-(2**24))         # one more record, far away
    rows = pd.DataFrame(np.concatenate([block, extra]))
    path = tmp_path / "big.idx"
    lootlab.build_index(rows, path)
    lo = (int(block["x"].min()), -2048, int(block["z"].min()))
    hi = (int(block["x"].max()), 2047, int(block["z"].max()))
    with LoopbackServer(path, tls=False) as srv, lootlab.open_index(path) as idx:
        want = idx.box(lo, hi)
        assert len(want) == cap
        channel = grpc.insecure_channel(srv.target)     # default options: 4 MiB to receive
        with channel:
            stub = pb_grpc.LootServiceStub(channel)
            for packed in (False, True):
                resp = stub.Box(pb.BoxRequest(lo=pb.Point(x=lo[0], y=lo[1], z=lo[2]),
                                              hi=pb.Point(x=hi[0], y=hi[1], z=hi[2]),
                                              packed=packed), timeout=120)
                assert resp.ByteSize() <= STANDARD_CLIENT_MAX_MESSAGE
                assert same_records((_decode_packed if packed else _decode_messages)(resp), want)
            # the encoding really is near the limit: the test is about the cap, not luck
            full = stub.Box(pb.BoxRequest(lo=pb.Point(x=lo[0], y=lo[1], z=lo[2]),
                                          hi=pb.Point(x=hi[0], y=hi[1], z=hi[2])), timeout=120)
            assert full.ByteSize() > 0.9 * STANDARD_CLIENT_MAX_MESSAGE
            with pytest.raises(grpc.RpcError) as info:   # one record more: a clear refusal
                stub.Box(pb.BoxRequest(lo=pb.Point(x=-(2**25), y=-2048, z=-(2**25)),
                                       hi=pb.Point(x=2**25 - 1, y=2047, z=2**25 - 1)),
                         timeout=120)
            assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
            assert f"at most {cap:,}" in info.value.details()


def test_150_calls_in_flight_on_one_standard_channel_all_succeed(index_path):
    with lootlab.open_index(index_path) as idx:
        p = idx.sample(1, seed=6)[0]
        at = pb.Point(x=int(p["x"]), y=int(p["y"]), z=int(p["z"]))
        want = len(idx.near(at.x, at.y, at.z, 8))
    with LoopbackServer(index_path, delay=0.05) as srv:   # calls overlap: each waits 50 ms
        creds = grpc.ssl_channel_credentials(Path(srv.ca).read_bytes())
        with grpc.secure_channel(srv.target, creds) as channel:
            near = pb_grpc.LootServiceStub(channel).Near
            calls = [near.future(pb.NearRequest(at=at, radius=8), timeout=120)
                     for _ in range(150)]
            failures = []
            for call in calls:
                try:
                    assert len(call.result().records) == want
                except grpc.RpcError as exc:
                    failures.append(f"{exc.code().name}: {exc.details()}")
    assert not failures, f"{len(failures)} of 150 failed, first: {failures[0]}"
