"""Every client variant gives LootIndex's answers; fresh/resumed/pooled really do what
their names say on the wire (counted by the server, over real loopback TLS)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lootlab
from lootlab.clients import GrpcClient, MmapClient
from lootlab.remote.loopback import LoopbackServer

from _remote import ALL_VARIANTS, CountingProxy, REMOTE_VARIANTS, same_records, small_index


@pytest.fixture(scope="module")
def index_path(tmp_path_factory):
    return small_index(tmp_path_factory.mktemp("clients"))


@pytest.fixture(scope="module")
def servers(index_path):
    with LoopbackServer(index_path) as tls, LoopbackServer(index_path, tls=False) as plain:
        yield {"tls": tls, "plain": plain}


@pytest.fixture(scope="module")
def clients(servers, index_path):
    made = {}
    for name in REMOTE_VARIANTS:
        srv = servers["plain" if name == "grpc-plain" else "tls"]
        made[name] = lootlab.connect(name, srv)
    made["mmap"] = lootlab.connect("mmap", index=index_path)
    yield made
    for c in made.values():
        c.close()


@pytest.fixture(scope="module")
def index(index_path):
    with lootlab.open_index(index_path) as idx:
        yield idx


def test_variants_listed_with_descriptions():
    assert list(lootlab.VARIANTS) == ALL_VARIANTS
    assert all(isinstance(d, str) and d for d in lootlab.VARIANTS.values())


def test_connect_returns_a_lootclient_of_each_kind(clients):
    for name, client in clients.items():
        assert isinstance(client, lootlab.LootClient)
        assert isinstance(client, MmapClient if name == "mmap" else GrpcClient)
        assert client.name == name


_settings = settings(max_examples=20, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])


@_settings
@given(data=st.data())
def test_all_variants_same_answers_on_random_queries(clients, index, data):
    seed = data.draw(st.integers(0, 2**16), label="seed")
    kind = data.draw(st.sampled_from(["near", "box", "knn", "get"]), label="kind")
    rec = index.sample(1, seed=seed)[0]
    x, y, z = (int(rec[f]) + data.draw(st.integers(-40, 40)) for f in "xyz")
    y = max(-2048, min(2047, y))
    if kind == "near":
        args = (x, y, z, data.draw(st.integers(0, 96) | st.floats(0, 96), label="r"))
    elif kind == "box":
        dx, dy, dz = (data.draw(st.integers(0, 120)) for _ in range(3))
        args = ((x, y, z), (x + dx, min(2047, y + dy), z + dz))
    elif kind == "knn":
        args = (x, y, z, data.draw(st.integers(0, 300), label="k"))
    else:
        if data.draw(st.booleans()):
            x, y, z = int(rec["x"]), int(rec["y"]), int(rec["z"])
        args = (x, y, z)
    want = getattr(index, kind)(*args)
    for name, client in clients.items():
        got = getattr(client, kind)(*args)
        if kind == "get":
            assert got == want, name
        else:
            assert isinstance(got, lootlab.Records), name
            assert same_records(got, want), (name, kind, args, len(got), len(want))


def test_overlay_workload_same_answers(clients, index):
    from lootlab.overlay import overlay_queries
    for x, y, z, r in overlay_queries(index, 15, seed=7).tolist():
        want = index.near(x, y, z, r)
        assert len(want) > 0
        for name, client in clients.items():
            assert same_records(client.near(x, y, z, r), want), name


_KEYS = ("requests", "tls_requests", "resumed_requests")


def _delta(srv, before):
    after = srv.stats()
    return {k: after[k] - before[k] for k in _KEYS}


def _through_proxy(srv, name, calls):
    """Run ``calls`` requests of variant ``name`` through a counting TCP proxy: (TCP
    connections opened, server-side counter deltas)."""
    with CountingProxy(srv.target) as proxy, \
            lootlab.connect(name, srv, target=proxy.target) as c:
        before = srv.stats()
        for _ in range(calls):
            c.near(0, 0, 0, 4)
        return proxy.accepts, _delta(srv, before)


def test_fresh_does_a_full_tls_handshake_per_request(servers):
    conns, d = _through_proxy(servers["tls"], "grpc-tls-fresh", 6)
    assert conns == 6
    assert d == {"requests": 6, "tls_requests": 6, "resumed_requests": 0}


def test_resumed_opens_a_connection_per_request_and_resumes_the_session(servers):
    conns, d = _through_proxy(servers["tls"], "grpc-tls-resumed", 6)
    assert conns == 6
    # the first connection has no session to resume; every later one resumes it
    assert d == {"requests": 6, "tls_requests": 6, "resumed_requests": 5}


@pytest.mark.parametrize("name", ["grpc-tls-pooled", "grpc-tls-packed"])
def test_pooled_variants_keep_one_connection(servers, name):
    conns, d = _through_proxy(servers["tls"], name, 8)
    assert conns == 1
    assert d == {"requests": 8, "tls_requests": 8, "resumed_requests": 0}


def test_local_subchannel_pool_is_what_gives_a_channel_its_own_connection(servers):
    """The control experiment behind ``fresh``: gRPC core shares one connection among new
    channels to the same target (seen here with plaintext channels) unless each channel
    has a local subchannel pool."""
    import grpc
    srv = servers["plain"]

    def open_channels(options):
        with CountingProxy(srv.target) as proxy:
            channels = [grpc.insecure_channel(proxy.target, options=options) for _ in range(4)]
            for ch in channels:
                grpc.channel_ready_future(ch).result(timeout=30)
            for ch in channels:
                ch.close()
            return proxy.accepts

    assert open_channels([]) == 1
    assert open_channels([("grpc.use_local_subchannel_pool", 1)]) == 4


def test_plain_uses_no_tls(servers):
    conns, d = _through_proxy(servers["plain"], "grpc-plain", 3)
    assert conns == 1
    assert d == {"requests": 3, "tls_requests": 0, "resumed_requests": 0}


def test_pooled_client_is_thread_safe(clients, index):
    from concurrent.futures import ThreadPoolExecutor
    pts = index.sample(40, seed=11)
    client = clients["grpc-tls-pooled"]

    def one(i):
        p = pts[i]
        return same_records(client.near(int(p["x"]), int(p["y"]), int(p["z"]), 24),
                            index.near(int(p["x"]), int(p["y"]), int(p["z"]), 24))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(one, range(len(pts))))


def test_connect_rejects_unknown_variant_and_options(index_path):
    with pytest.raises(lootlab.LootlabError, match="unknown variant 'grpc-udp'.*mmap"):
        lootlab.connect("grpc-udp")
    with pytest.raises(lootlab.LootlabError, match="does not take option.*index"):
        lootlab.connect("grpc-plain", target="127.0.0.1:1", index=index_path)
    with pytest.raises(lootlab.LootlabError, match="does not take option.*ca"):
        lootlab.connect("mmap", index=index_path, ca="x.pem")
    with pytest.raises(lootlab.LootlabError, match="host:port"):
        lootlab.connect("grpc-plain", target="nonsense")


def test_closed_client_says_so(servers):
    c = lootlab.connect("grpc-plain", servers["plain"])
    c.close()
    c.close()
    with pytest.raises(lootlab.LootlabError, match="closed"):
        c.get(0, 0, 0)


def test_connect_without_options_uses_default_index_and_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOTLAB_DATA", str(tmp_path))
    from lootlab.paths import default_index_path
    from lootlab.remote import loopback
    from lootlab.targets import client_factory
    small_index(tmp_path, n=5_000, seed=9)          # the "default" index, pre-made: fast
    assert default_index_path().exists()
    servers = loopback.DefaultServers()
    monkeypatch.setattr(loopback, "_default", servers)
    try:
        with lootlab.connect("mmap") as local, lootlab.connect("grpc-tls-pooled") as remote:
            srv = servers.server(tls=True)
            assert srv.running and srv.ca and srv.ca.startswith(str(tmp_path))
            assert srv.target in repr(servers)
            rec = local.index.sample(1, seed=1)[0]
            x, y, z = int(rec["x"]), int(rec["y"]), int(rec["z"])
            assert same_records(remote.near(x, y, z, 32), local.near(x, y, z, 32))
            assert servers.server(tls=True) is srv      # one per process
            assert servers.stats()["tls"]["requests"] >= 1
            # a spawned worker reaches the parent's server through the factory it is given
            import multiprocessing
            factory = client_factory("grpc-tls-packed")
            assert factory.endpoint.target == srv.target
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                got = pool.apply(_worker_sees, (factory, (x, y, z)))
            assert got == len(local.near(x, y, z, 32))
            assert servers.stats()["tls"]["connections"] >= 2    # the worker's own channel
    finally:
        servers.stop()
    assert not srv.running
    assert "LOOTLAB_LOOPBACK_TLS" not in os.environ       # no environment writes


def _worker_sees(factory, point):
    with factory() as c:
        return len(c.near(*point, 32))
