"""lootlab.loadgen.tcpstats: the kernel's TCP counters, parsed, subtracted and explained.

The counters are machine-wide, so the real tests only ask that a counter moved by at least
what the test itself caused (other programs can only add to it)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from lootlab.loadgen import tcpstats

HAVE_PROC = Path("/proc/net/snmp").is_file() and Path("/proc/net/netstat").is_file()
needs_proc = pytest.mark.skipif(not HAVE_PROC, reason="no /proc/net (not Linux)")


def _until(predicate, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


# -- parsing -------------------------------------------------------------------------------
SNMP = """Ip: Forwarding DefaultTTL
Ip: 1 64
Tcp: RtoAlgorithm RtoMin ActiveOpens RetransSegs OutRsts MaxConn
Tcp: 1 200 22 7 14 -1
Udp: InDatagrams
Udp: 5
"""
NETSTAT = """TcpExt: ListenOverflows ListenDrops TCPSynRetrans TCPTimeouts
TcpExt: 3 4 2 9
IpExt: InNoRoutes
IpExt: 0
"""


def test_parse_pairs_header_and_value_lines():
    got = tcpstats.parse(SNMP + NETSTAT)
    assert got["TcpActiveOpens"] == 22
    assert got["TcpRetransSegs"] == 7
    assert got["TcpMaxConn"] == -1
    assert got["TcpExtListenOverflows"] == 3
    assert got["TcpExtTCPSynRetrans"] == 2
    assert got["IpForwarding"] == 1 and got["UdpInDatagrams"] == 5


def test_parse_skips_what_does_not_pair_up():
    assert tcpstats.parse("") == {}
    assert tcpstats.parse("Tcp: A B\nUdp: 1 2\n") == {}          # prefixes differ
    assert tcpstats.parse("Tcp: A B\nTcp: 1\n") == {}            # lengths differ
    assert tcpstats.parse("Tcp: A B\nTcp: 1 x\n") == {"TcpA": 1}  # a bad value is skipped
    assert tcpstats.parse("Tcp: A\n") == {}                      # no value line


@needs_proc
def test_snapshot_reads_the_real_proc_files():
    snap = tcpstats.snapshot()
    for name in ("TcpRetransSegs", "TcpOutRsts", "TcpActiveOpens", "TcpExtListenOverflows",
                 "TcpExtListenDrops", "TcpExtTCPSynRetrans", "TcpExtTCPTimeouts"):
        assert name in snap and isinstance(snap[name], int) and snap[name] >= 0, name
    assert set(snap) <= set(tcpstats.COUNTERS)
    # the parser agrees with the file, read independently
    lines = Path("/proc/net/snmp").read_text().splitlines()
    tcp = [line.split()[1:] for line in lines if line.startswith("Tcp:")]
    names, values = tcp[0], tcp[1]
    assert int(values[names.index("ActiveOpens")]) <= tcpstats.snapshot()["TcpActiveOpens"]


def test_snapshot_is_empty_where_proc_cannot_be_read(monkeypatch):
    monkeypatch.setattr(tcpstats, "_FILES", ("/nonexistent/snmp", "/nonexistent/netstat"))
    monkeypatch.setattr(tcpstats.read, "__defaults__", (tcpstats._FILES,))
    assert tcpstats.snapshot() == {}
    assert tcpstats.delta({}, {}) == {}
    assert tcpstats.explain({}) == []


def test_snapshot_never_raises(monkeypatch):
    def broken(*_a, **_k):
        raise RuntimeError("boom")
    monkeypatch.setattr(tcpstats, "read", broken)
    assert tcpstats.snapshot() == {}


# -- delta -----------------------------------------------------------------------------------
def test_delta_subtracts_shared_counters():
    before = {"TcpOutRsts": 10, "TcpRetransSegs": 5, "TcpExtTW": 1}
    after = {"TcpOutRsts": 14, "TcpRetransSegs": 5, "TcpActiveOpens": 3}
    assert tcpstats.delta(before, after) == {"TcpOutRsts": 4, "TcpRetransSegs": 0}
    assert tcpstats.delta({}, after) == {}


# -- explain ---------------------------------------------------------------------------------
def test_explain_says_nothing_when_nothing_notable():
    assert tcpstats.explain({}) == []
    assert tcpstats.explain({"TcpActiveOpens": 3000, "TcpPassiveOpens": 3000,
                             "TcpExtTW": 1500, "TcpRetransSegs": 0}) == []


def test_explain_names_syn_retransmits_and_the_backlog():
    lines = tcpstats.explain({"TcpExtTCPSynRetrans": 12, "TcpExtListenOverflows": 12,
                              "TcpExtListenDrops": 12, "TcpRetransSegs": 12,
                              "TcpExtTCPTimeouts": 12}, requests=3000)
    assert len(lines) == 1, lines
    assert "12 SYNs retransmitted" in lines[0]
    assert ">= 1 s" in lines[0]
    assert "backlog" in lines[0] and "overflowed 12 times" in lines[0]
    assert "0.40% of 3,000 requests" in lines[0]


def test_explain_tells_data_timeouts_from_loss_probes():
    rto = tcpstats.explain({"TcpRetransSegs": 5, "TcpExtTCPTimeouts": 5})
    assert len(rto) == 1 and "5 retransmission timeouts" in rto[0] and "200 ms" in rto[0]
    tlp = tcpstats.explain({"TcpRetransSegs": 30, "TcpExtTCPLossProbes": 30})
    assert len(tlp) == 1 and "loss probe" in tlp[0] and "200 ms" not in tlp[0]


def test_explain_names_listen_drops_without_syn_retransmits():
    lines = tcpstats.explain({"TcpExtListenOverflows": 3, "TcpExtListenDrops": 3})
    assert len(lines) == 1 and "listener dropped 3" in lines[0]


def test_explain_names_resets_from_closing_with_unread_data():
    lines = tcpstats.explain({"TcpOutRsts": 1170, "TcpExtTCPAbortOnClose": 1100,
                              "TcpExtTCPAbortOnData": 70})
    assert len(lines) == 1 and "1,170 resets" in lines[0] and "unread data" in lines[0]


def test_explain_ignores_negative_values():
    assert tcpstats.explain({"TcpExtTCPSynRetrans": -4, "TcpRetransSegs": -1}) == []


# -- against the kernel ------------------------------------------------------------------------
@needs_proc
def test_a_close_with_unread_data_is_counted_as_a_reset():
    """Closing a socket whose receive queue holds unread bytes makes the kernel send a RST
    (RFC 2525, 2.17): TcpOutRsts and TcpExtTCPAbortOnClose each move by one."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=10)
        server, _ = listener.accept()
        with client:
            client.sendall(b"unread")
            server.settimeout(10)
            # wait until the bytes sit in the server's receive queue, unread
            assert _until(lambda: len(server.recv(16, socket.MSG_PEEK)) == 6)
            before = tcpstats.snapshot()
            server.close()                               # unread data: RST, not FIN
            assert _until(lambda: tcpstats.delta(before, tcpstats.snapshot())
                          ["TcpExtTCPAbortOnClose"] >= 1)
            moved = tcpstats.delta(before, tcpstats.snapshot())
            assert moved["TcpOutRsts"] >= 1
            with pytest.raises(ConnectionResetError):  # and the peer saw the reset
                client.recv(16)                          # (the socket's timeout is 10 s)
            lines = tcpstats.explain(moved)
            assert any("unread data" in line for line in lines), lines


@needs_proc
def test_a_full_accept_queue_is_counted_as_a_listen_overflow():
    """A listener that never accepts, with backlog 0, holds one connection in its accept
    queue; the kernel drops the next handshakes (ListenOverflows, ListenDrops), and the
    clients retransmit their SYNs (TCPSynRetrans) after the 1 s initial timeout."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    clients: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        before = tcpstats.snapshot()

        def moved(name: str) -> int:
            return tcpstats.delta(before, tcpstats.snapshot()).get(name, 0)

        for _ in range(4):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            c.connect_ex(address)
            clients.append(c)
        assert _until(lambda: moved("TcpExtListenOverflows") >= 1), tcpstats.snapshot()
        assert moved("TcpExtListenDrops") >= 1
        # the dropped SYNs (or handshake ACKs) come back after the 1 s retransmission timer
        assert _until(lambda: moved("TcpExtTCPSynRetrans") >= 1, timeout=15)
        lines = tcpstats.explain(tcpstats.delta(before, tcpstats.snapshot()))
        assert any("SYN" in line and "backlog" in line for line in lines), lines
    finally:
        for c in clients:
            c.close()
        listener.close()


# --------------------------------------------------------------------------- a run's tails
def test_a_runs_tails_name_cpu_starvation_and_tcp_timers():
    """``loadgen.tails``: the deltas a run records, and the words a page shows for them."""
    from lootlab.loadgen import tails

    got = tails.finish(tails.start())
    assert set(got) == {"seconds", "tcp", "cpu_pressure"} and got["seconds"] > 0
    assert all(v for v in got["tcp"].values())          # only counters that moved
    words = tails.explain({"tcp": {"TcpExtTCPSynRetrans": 3}, "cpu_pressure": 0.4}, 1000)
    assert any("SYN" in w for w in words)
    assert any(w.startswith("CPU starvation: runnable threads waited for a core 40%")
               for w in words)
    assert tails.explain({"tcp": {}, "cpu_pressure": 0.01}) == []
    resets = {"TcpOutRsts": 5, "TcpExtTCPAbortOnData": 5}   # torn down with RST: no delay
    assert tails.explain({"tcp": resets, "cpu_pressure": 0.0}) == []
    assert tails.explain(None) == []


def test_a_load_result_carries_its_tails(tmp_path):
    """A run keeps what the kernel saw (``env["tails"]``) through save and load."""
    import numpy as np

    from lootlab import loadgen

    class Noop:
        def near(self, x, y, z, r):
            return None

    res = loadgen.run(Noop, loadgen.constant(200, 0.2), warmup=0,
                      workload=np.zeros((4, 4), np.int64))
    assert set(res.env["tails"]) == {"seconds", "tcp", "cpu_pressure"}
    back = loadgen.LoadResult.load(res.save(tmp_path / "r"))
    assert back.env["tails"] == res.env["tails"]
    assert isinstance(back.summary()["tail_causes"], str)
