"""``Counters.note`` reads a connection's TLS state once, and still counts exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lootlab.remote.counters import Counters

# A connection: its peer address and its TLS state (none, a full handshake, resumed).
STATES = {"plain": {}, "tls": {"transport_security_type": [b"ssl"],
                               "ssl_session_reused": [b"false"]},
          "resumed": {"transport_security_type": [b"ssl"], "ssl_session_reused": [b"true"]}}


class FakeContext:
    reads = 0

    def __init__(self, peer: str, state: str):
        self._peer, self._auth = peer, STATES[state]

    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict:
        FakeContext.reads += 1
        return self._auth


@given(st.lists(st.tuples(st.integers(0, 6), st.sampled_from(sorted(STATES))),
                min_size=1, max_size=60))
def test_counts_match_a_brute_force_oracle_and_auth_is_read_once_per_peer(calls):
    state_of: dict[str, str] = {}        # a peer keeps the state it connected with
    contexts = []
    for port, state in calls:
        peer = f"ipv4:127.0.0.1:{port}"
        contexts.append(FakeContext(peer, state_of.setdefault(peer, state)))
    counters = Counters()
    FakeContext.reads = 0
    for context in contexts:
        counters.note(context)
    states = [state_of[c.peer()] for c in contexts]
    first = list(state_of.values())
    expect = {"requests": len(states),
              "tls_requests": sum(s != "plain" for s in states),
              "resumed_requests": states.count("resumed"),
              "connections": len(state_of),
              "tls_connections": sum(s != "plain" for s in first),
              "tls_resumed": first.count("resumed")}
    got = counters.totals()
    assert {k: got[k] for k in expect} == expect
    assert FakeContext.reads == len(state_of)
