"""The kernel events a run is credited with are ones that could have touched it.

The TCP counters are machine-wide: a run of a local variant (the mapped file: no socket)
saw "29 connection attempts failed" because another program on the machine was
connecting meanwhile.  A run whose clients open no connections must not be given TCP
events as causes of its tail; CPU starvation (which delays any run) still is.  Whether a
factory's clients connect comes from the factory (a variant's registry entry), so the
load generator imports nothing of the variants.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from lootlab import loadgen
from lootlab.loadgen import tails, tcpstats
from lootlab.targets import client_factory
from lootlab.variants import VARIANTS, get

TCP = {"TcpAttemptFails": 29, "TcpExtTCPSynRetrans": 2, "TcpRetransSegs": 5}


def _words(connects: bool | None) -> list[str]:
    kernel = {"seconds": 10.0, "tcp": dict(TCP), "cpu_pressure": 0.5}
    if connects is not None:
        kernel["connects"] = connects
    return tails.explain(kernel, 1000)


def test_a_run_that_opens_no_connections_is_not_given_tcp_events():
    local = _words(False)
    assert not any("connection attempt" in w or "SYN" in w or "retransmit" in w
                   for w in local), local
    assert any(w.startswith("CPU starvation") for w in local)   # that delays any run
    for connects in (True, None):                 # a client that connects, or unknown
        words = _words(connects)
        assert any("29 connection attempts failed" in w for w in words)
        assert any("SYN" in w for w in words)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_variants_factory_says_whether_its_clients_connect(name):
    options = {"target": "127.0.0.1:9"} if get(name).remote else {}
    assert tails.opens_connections(client_factory(name, **options)) is get(name).remote


def test_a_plain_factory_does_not_say():
    assert tails.opens_connections(lambda: None) is None


@dataclass(frozen=True)
class _Factory:
    """A factory in the shape ``loadgen.run`` reads: clients that answer at once, and
    an ``endpoint`` (None: a local one, which opens no socket)."""

    endpoint: Any = None

    def __call__(self) -> Any:
        return self

    def near(self, x, y, z, r):
        return None


@pytest.mark.parametrize("endpoint, credited", [(None, False), ("127.0.0.1:9", True)])
def test_a_runs_tail_causes_hold_tcp_events_only_when_it_connects(monkeypatch, endpoint,
                                                                  credited):
    """The machine's counters grow during the run (another program connecting): a run
    of local clients is not credited with the failed attempts, one that connects is."""
    grows = itertools.count(1)
    monkeypatch.setattr(tcpstats, "snapshot",
                        lambda: {"TcpAttemptFails": 29 * next(grows)})
    res = loadgen.run(_Factory(endpoint), loadgen.constant(200, 0.2), warmup=0,
                      workload=np.zeros((4, 4), np.int64))
    assert res.env["tails"]["tcp"]                     # what the kernel counted is kept
    assert res.env["tails"]["connects"] is credited
    said = "; ".join(res.tail_causes())
    assert ("connection attempts failed" in said) is credited, said
    assert ("connection attempts failed" in res.summary()["tail_causes"]) is credited
