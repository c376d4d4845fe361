"""Several server processes on one port: ServerStats totals cover them all (counts, CPU
seconds, how many), and none outlives its parent, whether it stops or is SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from _remote import small_index, wait_gone

from lootlab.remote import loot_pb2 as pb
from lootlab.remote.loopback import LoopbackServer
from lootlab.remote.server import ServerError, serve

MAX_CHANNELS = 64      # both processes get a connection long before: P(miss) = 2**-63


@pytest.fixture(scope="module")
def index_path(tmp_path_factory) -> Path:
    return small_index(tmp_path_factory.mktemp("processes"))


@pytest.fixture(scope="module")
def group(index_path):
    with LoopbackServer(index_path, tls=True, processes=2) as srv:
        yield srv


def _channel(srv: LoopbackServer) -> grpc.Channel:
    """A channel with a connection of its own (no shared subchannel)."""
    creds = grpc.ssl_channel_credentials(Path(srv.ca).read_bytes())
    return grpc.secure_channel(srv.target, creds,
                               options=[("grpc.use_local_subchannel_pool", 1)])


def _near(channel: grpc.Channel, radius: float = 30) -> bytes:
    call = channel.unary_unary("/lootlab.v1.LootService/Near",
                               request_serializer=lambda m: m.SerializeToString())
    return call(pb.NearRequest(at=pb.Point(x=0, y=64, z=0), radius=radius), timeout=30)


def test_two_processes_share_the_port_and_stats_total_both(group):
    assert group.info["processes"] == 2
    assert len(set(group.pids)) == 2 and group.pid == group.pids[0]
    before = group.stats()
    channels = calls = 0
    while channels < MAX_CHANNELS:
        with _channel(group) as channel:
            for _ in range(3):
                pb.Records.FromString(_near(channel))
                calls += 1
        channels += 1
        per_process = [a - b for a, b in zip(group.stats()["process_requests"],
                                             before["process_requests"])]
        if channels >= 2 and all(per_process):
            break
    after = group.stats()
    assert after["processes"] == 2
    assert all(n > 0 for n in per_process), f"one process got no connection: {per_process}"
    assert after["requests"] - before["requests"] == calls == sum(per_process)
    assert after["connections"] - before["connections"] == channels
    assert after["tls_requests"] - before["tls_requests"] == calls


def test_cpu_seconds_grow_under_work(group):
    before = group.stats()["cpu_seconds"]
    with _channel(group) as channel:
        for _ in range(60):
            _near(channel, radius=400)
    after = group.stats()["cpu_seconds"]
    assert after > before > 0


def test_a_taken_port_is_refused_before_any_member_starts(index_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        with pytest.raises(ServerError, match="port is in use"):
            serve(index_path, port=held.getsockname()[1], tls=None, processes=2)


def test_stop_ends_every_process(index_path):
    srv = LoopbackServer(index_path, tls=False, processes=2).start()
    pids = srv.pids
    assert len(pids) == 2
    srv.stop()
    assert all(wait_gone(pid) for pid in pids), pids


_OWNER = """
import json, sys
from lootlab.remote.loopback import LoopbackServer
srv = LoopbackServer(sys.argv[1], tls=False, processes=2).start()
print(json.dumps(srv.pids), flush=True)
sys.stdin.read()
"""


def test_no_server_process_outlives_a_sigkilled_owner(index_path):
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(index_path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(owner.stdout.readline())
        assert len(pids) == 2
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=30)
        assert all(wait_gone(pid) for pid in pids), [p for p in pids if not wait_gone(p, 0)]
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.wait()


def test_a_member_exits_when_the_serving_process_is_sigkilled(index_path):
    srv = LoopbackServer(index_path, tls=False, processes=2).start()
    try:
        first, member = srv.pids
        os.kill(first, signal.SIGKILL)
        assert wait_gone(member), f"member {member} outlived its parent {first}"
    finally:
        srv.stop()
