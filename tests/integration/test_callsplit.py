"""Where a remote call's time goes: the client's split of every call into
client serialize, transport + TLS, server queue, server compute and client deserialize, and
how a load run carries it into ``LoadResult.split`` / ``split_us()``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lootlab import loadgen
from lootlab.loadgen.results import LoadResult
from lootlab.loadgen.split import SPLIT_PARTS, means_us, merge
from lootlab.plots.split import latency_split
from lootlab.remote.callsplit import COMPONENTS, CallSplit
from lootlab.remote.loopback import LoopbackServer
from lootlab.remote.servertiming import ServerTiming
from lootlab.report.story_text import largest_parts
from lootlab.experiments.story import split_table
from lootlab.targets import client_factory

from _remote import small_index


def test_a_call_is_split_into_parts_that_add_up_to_it():
    split = CallSplit()
    # a 1 ms call: 10 us serialize, 40 us parse, server 100 us queued and 300 us computing
    split.note(0, 1_000_000, 10_000, 40_000, ServerTiming(queue_us=100, compute_us=300))
    split.note(0, 500_000, 5_000, 20_000, None)      # a server that sends no timing
    t = split.totals()
    assert t["calls"] == 2 and t["with_server"] == 1
    assert t["server_queue"] == 100_000 and t["server_compute"] == 300_000
    assert t["transport"] == (1_000_000 - 450_000) + (500_000 - 25_000)
    assert sum(t[c] for c in COMPONENTS) == 1_500_000
    assert means_us(t)["client_deserialize"] == pytest.approx(30.0)
    # calls before the measured window (the warm-up) are left out
    split.start_measuring(2_000_000)
    split.note(1_999_999, 2_100_000, 1, 1, None)
    assert split.totals()["calls"] == 0
    assert merge([{}, t, t])["transport"] == 2 * t["transport"] and merge([{}]) == {}


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    path = small_index(tmp_path_factory.mktemp("split"), n=5_000)
    with LoopbackServer(path, tls=True, delay=0.02) as srv:
        yield srv


def test_a_load_run_carries_the_split_and_blames_a_slow_server(slow_server, tmp_path):
    """A server that takes 20 ms per query: the split puts those 20 ms in server compute,
    not in transport, and the parts add up to the service time the generator measured."""
    res = loadgen.run(client_factory("grpc-tls-pooled", slow_server), loadgen.constant(20, 1.0),
                      warmup=0.2)
    assert res.requests >= 15 and res.counts["failed"] == 0
    split = res.split
    assert split["calls"] >= res.requests - 2 and split["with_server"] == split["calls"]
    parts = res.split_us()
    assert list(parts) == ["send_wait", *COMPONENTS]
    assert parts["server_compute"] >= 20_000 > parts["transport"]
    service_us = res.service.get_mean_value() / 1e3
    assert sum(parts[c] for c in COMPONENTS) == pytest.approx(service_us, rel=0.1)
    # the server's CPU over the run, from its own counters: every request it answered
    assert res.server["requests"] == res.completed_total
    assert res.server["processes"] == 1 and 0 <= res.server["cpu_s"] < res.server["wall_s"]
    assert res.summary()["server_cores"] == res.server["cores"]
    # saved and loaded, the split and the server's figures stay
    loaded = LoadResult.load(res.save(tmp_path / "r"))
    assert loaded.split == split and loaded.server == pytest.approx(res.server)


def test_a_local_client_has_no_call_split(tmp_path):
    path = small_index(tmp_path / "idx", n=2_000)
    res = loadgen.run(client_factory("mmap", index=str(path)), loadgen.constant(200, 0.5),
                      warmup=0.1)
    assert res.split == {} and res.server == {}
    assert set(res.split_us()) == {"send_wait", "call"}


def _steps() -> pd.DataFrame:
    nan = float("nan")
    return pd.DataFrame({"variant": ["grpc-tls-fresh", "grpc-tls-pooled", "mmap"],
                         "split_send_wait_ms": [0.1, 0.1, 0.01],
                         "split_transport_ms": [5.0, 1.0, nan],
                         "split_client_deserialize_ms": [1.0, 2.0, nan],
                         "split_call_ms": [nan, nan, 0.2]})


def test_the_verdict_names_each_steps_largest_part():
    assert largest_parts(_steps()) == (
        "Largest part of each step's mean latency: grpc-tls-fresh: connect + TLS handshake + "
        "transport (82% of 6.10 ms); grpc-tls-pooled: client deserialize (65% of 3.10 ms); "
        "mmap: local query (95% of 0.21 ms).")
    assert largest_parts(pd.DataFrame({"variant": ["a"]})) == ""


def test_the_split_chart_stacks_every_part_a_step_has():
    fig = latency_split(_steps())
    means, shares = fig.axes[:2]
    # 4 parts present, one bar per step each (a part a step lacks is a zero-width bar)
    assert len(means.patches) == len(shares.patches) == 4 * 3
    widths = np.array([p.get_width() for p in shares.patches]).reshape(4, 3)
    assert widths.sum(axis=0) == pytest.approx([100, 100, 100])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [SPLIT_PARTS[p] for p in ("send_wait", "transport", "client_deserialize",
                                                "call")]


class _Timed:
    def __init__(self, split: dict[str, float]):
        self._split = split

    def split_us(self) -> dict[str, float]:
        return self._split


def test_the_split_table_has_a_column_per_part_and_the_mean_they_add_up_to():
    table = split_table({"remote": _Timed({"send_wait": 1.0, "transport": 30.0,
                                           "client_deserialize": 9.0}),
                         "local": _Timed({"send_wait": 0.5, "call": 2.0})})
    assert list(table.columns) == [SPLIT_PARTS[p] for p in ("send_wait", "transport",
                                                            "client_deserialize", "call")] \
        + ["mean latency"]
    assert table.loc["remote", "mean latency"] == 40.0 and table.loc["local", "mean latency"] == 2.5
    assert table.loc["local", SPLIT_PARTS["transport"]] == 0.0
