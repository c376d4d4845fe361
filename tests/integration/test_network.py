"""Network conditions: the delaying TCP proxy delays by the asked RTT,
spreads it as documented, keeps byte order, meters bandwidth, charges the TCP handshake,
never outlives its parent, and is wired into lootlab.targets (client factories, connect),
the profilers' workload and serve.

Timing assertions compare medians measured in the same test, with bounds that a second
round trip (or a missing delay) would cross but a busy machine would not."""

from __future__ import annotations

import math
import os
import pickle
import signal
import statistics
import subprocess
import sys
import threading
import time

import pytest
from _remote import small_index
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import lootlab
from lootlab.cli import main as cli_main
from lootlab.conditions import ConditionsError, Network
from lootlab.conditions.delays import OneWay, due_time, rtt_cdf, rtt_quantile
from lootlab.conditions.echo import EchoServer, dial, ping_pong
from lootlab.conditions.proxies import DelayProxy, ProxiedEcho, proxy_for
from lootlab.remote.loopback import LoopbackServer
from lootlab.targets import client_factory

DEADLINE = 20.0


@pytest.fixture(scope="module")
def echo():
    with EchoServer() as server:
        yield server.target


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LoopbackServer(small_index(tmp_path_factory.mktemp("net"), n=3_000, seed=4)) as srv:
        yield srv


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


# -- Network ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [{"rtt_ms": -1}, {"rtt_ms": math.nan}, {"jitter_ms": -0.5},
                                 {"rtt_ms": math.inf}, {"rtt_ms": "x"}, {"rtt_ms": True},
                                 {"bandwidth_mbit": 0}, {"bandwidth_mbit": -3}])
def test_a_bad_network_is_a_named_lootlab_error(bad):
    """One line that names the field and the value it got (``ConditionsError`` is a
    ``LootlabError``, which the CLI prints as such)."""
    key, value = next(iter(bad.items()))
    with pytest.raises(ConditionsError, match=key) as err:
        Network(**bad)
    text = str(err.value)
    assert text.startswith(f"network {key} must be") and "\n" not in text
    shown = repr(value) if isinstance(value, (str, bool)) else f"{float(value)!r}"
    assert text.endswith(f"got {shown}"), text


def test_network_coerce_label_and_pickle():
    net = Network(5, 1, 100)
    assert Network.coerce(None) is None and Network.coerce(net) is net
    assert Network.coerce(2.5) == Network(rtt_ms=2.5)
    assert Network.coerce(net.to_dict()) == net
    assert pickle.loads(pickle.dumps(net)) == net and lootlab.Network is Network
    assert net.label == "RTT 5 ms ± 1 ms, 100 Mbit/s" and Network().label == "loopback"
    assert Network().is_null and not Network(jitter_ms=1).is_null
    assert not Network(bandwidth_mbit=10).is_null
    for bad in ({"rtt": 1}, "5 ms", [5]):
        with pytest.raises(ConditionsError):
            Network.coerce(bad)


# -- the delay model, against a brute-force oracle -------------------------------------------
chunks = st.lists(st.tuples(st.floats(0, 0.01), st.integers(0, 100_000), st.floats(0, 0.005)),
                  min_size=1, max_size=30)


@given(chunks, st.sampled_from([0.0, 8 / 80e6, 8 / 1e6]))
def test_due_times_keep_order_and_match_the_link_oracle(items, spb):
    arrival, dues, prev, free = 0.0, [], 0.0, 0.0
    arrivals = []
    for gap, n, delay in items:
        arrival += gap
        arrivals.append(arrival)
        prev, free = due_time(arrival, n, delay, prev, free, spb)
        dues.append(prev)
    # oracle: the link sends chunks one after another; each is due at the latest of its own
    # (finish + delay) and every earlier chunk's
    finish, own = 0.0, []
    for a, (_, n, delay) in zip(arrivals, items, strict=True):
        finish = max(finish, a) + n * spb
        own.append(finish + delay)
    assert dues == [max(own[: i + 1]) for i in range(len(own))]
    assert dues == sorted(dues)


def test_one_way_delays_are_uniform_around_half_the_rtt():
    draw = OneWay(0.010, 0.004, seed=1)
    xs = [draw() for _ in range(20_000)]
    assert 0.003 <= min(xs) and max(xs) <= 0.007
    assert abs(statistics.mean(xs) - 0.005) < 5e-5
    assert abs(statistics.pstdev(xs) - 0.004 / math.sqrt(12)) < 5e-5
    assert OneWay(0.001, 0.004, seed=1)() >= 0          # truncated at zero
    assert rtt_cdf(rtt_quantile(0.3, 6, 4), 6, 4) == pytest.approx(0.3)


# -- the proxy ---------------------------------------------------------------------------------
def test_raw_tcp_through_the_proxy_pays_the_asked_round_trip(echo):
    with DelayProxy(echo, Network(rtt_ms=5)) as proxy:
        sock = dial(proxy.target)
        sock.sendall(b"hello")
        assert sock.recv(100) == b"hello"
        delayed = median_ms(ping_pong(proxy.target, 40, sock=sock))
        direct = median_ms(ping_pong(echo, 40))
        sock.close()
        stats = proxy.stats()
    assert 4.9 <= delayed - direct < 8.0, (delayed, direct)
    assert stats["connections"] == 1 and stats["bytes_up"] == stats["bytes_down"] == 5 + 40 * 32
    assert stats["chunks_up"] == 41 and stats["timer"] in ("timerfd", "epoll")


def test_a_pooled_get_costs_one_round_trip_more_at_5_ms(server):
    rec = lootlab.open_index(server.index).knn(0, 0, 0, 1)[0]
    xyz = (int(rec["x"]), int(rec["y"]), int(rec["z"]))
    plain = client_factory("grpc-tls-pooled", server)()
    slow = client_factory("grpc-tls-pooled", server, network=Network(rtt_ms=5))()
    try:
        assert slow.get(*xyz) == plain.get(*xyz)
        a, b = [], []
        for _ in range(20):                       # interleaved: load hits both alike
            a += timed(lambda: plain.get(*xyz))
            b += timed(lambda: slow.get(*xyz))
    finally:
        plain.close()
        slow.close()
    added = median_ms(b) - median_ms(a)
    assert 4.5 <= added < 9.0, (median_ms(a), median_ms(b))   # two round trips would be >= 10


def timed(call) -> list[float]:
    t = time.perf_counter()
    call()
    return [time.perf_counter() - t]


def test_jitter_spreads_the_round_trip_as_documented(echo):
    rtt, jitter = 6.0, 4.0
    with DelayProxy(echo, Network(rtt_ms=rtt, jitter_ms=jitter), seed=7) as proxy:
        got = sorted(x * 1e3 for x in ping_pong(proxy.target, 160))
    with DelayProxy(echo, Network(rtt_ms=rtt)) as proxy:
        steady = sorted(x * 1e3 for x in ping_pong(proxy.target, 60))

    def q(xs, p):
        return xs[int(p * (len(xs) - 1))]
    for lo, hi in ((0.25, 0.75), (0.1, 0.9)):
        want = rtt_quantile(hi, rtt, jitter) - rtt_quantile(lo, rtt, jitter)
        noise = q(steady, hi) - q(steady, lo)    # what the machine spreads by itself
        assert 0.65 * want <= q(got, hi) - q(got, lo) <= 1.4 * want + noise, (lo, hi, got)
    iqr = rtt_quantile(0.75, rtt, jitter) - rtt_quantile(0.25, rtt, jitter)
    assert q(steady, 0.75) - q(steady, 0.25) < 0.5 * iqr     # the spread is the jitter's
    shift = statistics.median(got) - rtt                     # the machine's own overhead
    ks = max(abs((i + 0.5) / len(got) - rtt_cdf(x - shift, rtt, jitter))
             for i, x in enumerate(got))
    assert ks < 0.2, ks


@settings(max_examples=8, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4000), st.floats(0.0002, 0.0015)), min_size=5,
                max_size=25))
def test_bytes_keep_their_order_under_jitter_larger_than_the_rtt(jittery, pieces):
    target, proxy = jittery
    before = proxy.stats()["chunks_up"]
    payload = [bytes([i % 251]) * n for i, (n, _) in enumerate(pieces)]
    total = sum(map(len, payload))
    sock = dial(target)
    got = bytearray()
    reader = threading.Thread(target=lambda: read_exactly(sock, total, got))
    reader.start()
    for piece, (_, pace) in zip(payload, pieces, strict=True):
        sock.sendall(piece)
        time.sleep(pace)      # pacing, so pieces reach the proxy as separate chunks
    reader.join(DEADLINE)
    sock.close()
    assert bytes(got) == b"".join(payload)
    assert proxy.stats()["chunks_up"] - before >= 2      # it had an order to keep


@pytest.fixture(scope="module")
def jittery(echo):
    with DelayProxy(echo, Network(rtt_ms=1, jitter_ms=4), seed=3) as proxy:
        yield proxy.target, proxy


def read_exactly(sock, n: int, into: bytearray) -> None:
    while len(into) < n:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return
        into += chunk


def test_bandwidth_meters_a_transfer(echo):
    size, mbit = 2_000_000, 80
    with DelayProxy(echo, Network(bandwidth_mbit=mbit)) as proxy:
        sock = dial(proxy.target)
        got = bytearray()
        reader = threading.Thread(target=lambda: read_exactly(sock, size, got))
        t = time.perf_counter()
        reader.start()
        sock.sendall(b"b" * size)
        reader.join(DEADLINE)
        elapsed = time.perf_counter() - t
        sock.close()
    assert len(got) == size
    wire = size * 8 / (mbit * 1e6)                 # 0.2 s each way, pipelined through the echo
    assert 0.95 * wire <= elapsed < 5 * wire, elapsed


def test_a_new_connection_pays_the_tcp_handshake(echo):
    rtt = 20.0
    with DelayProxy(echo, Network(rtt_ms=rtt)) as proxy:
        t = time.perf_counter()
        sock = dial(proxy.target)
        ping_pong(proxy.target, 1, sock=sock)
        first = (time.perf_counter() - t) * 1e3
        again = median_ms(ping_pong(proxy.target, 3, sock=sock))
        sock.close()
    assert first >= 1.95 * rtt, first               # SYN/SYN-ACK, then the data's round trip
    assert again < 1.6 * rtt, again


def test_the_proxy_exits_when_its_parent_is_killed(echo):
    code = ("import sys, time; from lootlab.conditions.proxies import DelayProxy; "
            "from lootlab.conditions import Network; "
            f"p = DelayProxy({echo!r}, Network(rtt_ms=5)).start(); print(p.pid, flush=True); "
            "time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert alive(pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(DEADLINE)
        deadline = time.monotonic() + DEADLINE
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "the proxy outlived its parent"
    finally:
        parent.kill()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


# -- wiring ------------------------------------------------------------------------------------
def test_a_delay_proxy_takes_a_network_not_a_loose_value():
    """Loose values (numbers, dicts) are made a Network once, where a client factory is
    made (``lootlab.targets``); a proxy given one says so rather than guessing."""
    with pytest.raises(ConditionsError, match="needs a lootlab.Network, got int"):
        DelayProxy("127.0.0.1:1", 5)


def test_a_factory_reaches_a_remote_variant_through_one_proxy_per_network(server):
    net = Network(rtt_ms=2)
    factory = client_factory("grpc-tls-pooled", server, network=net)
    assert factory.network == net and factory.upstream == server.target
    assert factory.endpoint.target != server.target and factory.endpoint.ca == server.ca
    assert client_factory("grpc-tls-pooled", server, network=2).endpoint == factory.endpoint
    assert proxy_for(server.target, net).target == factory.endpoint.target
    straight = client_factory("grpc-tls-pooled", server, network=Network())
    assert straight.endpoint == server.endpoint and straight.network is None   # null: none
    assert pickle.loads(pickle.dumps(factory)) == factory
    back = factory.with_network(None)
    assert back.endpoint.target == server.target and back.network is None
    assert back.with_network(net).endpoint == factory.endpoint
    assert client_factory("mmap", network=net).network is None
    assert client_factory("mmap").with_network(net).network is None
    with lootlab.connect("grpc-tls-pooled", server, network=net) as cli:
        assert cli.target == factory.endpoint.target
        assert cli.knn(0, 0, 0, 3).tolist() == lootlab.open_index(server.index).knn(
            0, 0, 0, 3).tolist()


def test_a_delayed_factory_is_slower_and_reads_the_servers_own_counters(server):
    """20 ms through the proxy; the server's counters come from the server itself (what a
    load run reads its CPU time from), counting every call that went through."""
    factory = client_factory("grpc-tls-pooled", server, network=Network(rtt_ms=20))
    before = factory.server_stats()["requests"]
    with factory() as cli:
        cli.get(0, 0, 0)
        took = median_ms([timed(lambda: cli.get(0, 0, 0))[0] for _ in range(3)])
    assert took >= 19.5
    assert factory.server_stats()["requests"] - before >= 4
    assert factory.server_stats().keys() == server.stats().keys()


def wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + DEADLINE
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_workload_args_point_the_workload_at_the_proxy():
    from lootlab.profiling import ProfilerError
    from lootlab.profiling._run import workload_args
    plain = workload_args("grpc-tls-pooled", queries=1)
    slow = workload_args("grpc-tls-pooled", queries=1, network=3)
    t_plain, t_slow = (a[a.index("--target") + 1] for a in (plain, slow))
    assert t_slow != t_plain
    assert proxy_for(t_plain, Network(rtt_ms=3)).target == t_slow
    assert "--target" not in workload_args("mmap", queries=1, network=3)
    with pytest.raises(ProfilerError, match="network"):
        workload_args("grpc-tls-pooled", index="/x.idx", network=3)


@pytest.mark.parametrize("flags", [["--rtt-ms", "-1"], ["--rtt-ms", "abc"],
                                   ["--jitter-ms", "nan"], ["--bandwidth-mbit", "0"]])
def test_serve_network_flags_with_a_bad_value_are_one_error_line(flags):
    res = CliRunner().invoke(cli_main, ["serve", "--port", "0", *flags])
    assert res.exit_code == 1, res.output
    assert res.output.startswith("lootlab: error: network") and res.output.count("\n") == 1


def test_serve_prints_the_proxy_target_and_states_the_conditions(echo):
    lines: list[str] = []
    shown = ProxiedEcho(lines.append, Network(rtt_ms=20, jitter_ms=1))
    try:
        shown(f"lootlab: serving x.idx (3 records) over TLS on {echo} (pid 1)")
        shown(f"  connect: lootlab.connect('grpc-tls-pooled', target={echo!r})")
        proxied = shown.proxy.target
        assert proxied != echo and lines[0].endswith(f"on {proxied} (pid 1)")
        assert "RTT 20 ms ± 1 ms" in lines[1] and echo in lines[1]
        assert repr(proxied) in lines[2] and repr(echo) not in lines[2]
        assert median_ms(ping_pong(proxied, 3)) >= 18
    finally:
        shown.stop()


def test_lootlab_serve_rtt_ms_end_to_end(server):
    proc = subprocess.Popen([sys.executable, "-m", "lootlab", "serve", "--index",
                             str(server.index), "--port", "0", "--rtt-ms", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        banner = [proc.stdout.readline() for _ in range(4)]
        assert "RTT 20 ms" in banner[1], banner
        target = banner[0].split(" on ")[1].split()[0]
        with lootlab.connect("grpc-tls-pooled", target=target, ca=server.ca) as cli:
            cli.get(0, 0, 0)
            assert timed(lambda: cli.get(0, 0, 0))[0] >= 0.0195
    finally:
        proc.terminate()
        proc.wait(DEADLINE)
