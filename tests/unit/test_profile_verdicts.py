"""Notebook 03's verdict (``lootlab.experiments.profile_verdicts``) on synthetic bucket shares:
the bucket it names for a variant is that variant's largest share (a brute-force max is the
oracle), a share the samples cannot place reads "unattributed", the remote clients' transport
and decoding are compared as the shares add up, and it stays within three sentences."""

from __future__ import annotations

import re

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.experiments import profile_verdicts as pv
from lootlab.profiling.categorize import BUCKETS, UNATTRIBUTED

VARIANTS = ["grpc-tls-fresh", "grpc-tls-pooled", "grpc-tls-packed", "mmap"]
CYGRPC = {"TLS/ssl": ["cygrpc"], "gRPC core": ["cygrpc"]}


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=\.)\s+(?=[A-Z])", text) if s]


@st.composite
def shares_frames(draw):
    """A ``bucket_shares`` frame: per variant, random non-negative weights normalised to 1
    (distinct, so the largest is one bucket)."""
    names = draw(st.lists(st.sampled_from(VARIANTS), min_size=1, max_size=4, unique=True))
    rows = []
    for v in names:
        weights = draw(st.lists(st.integers(0, 1000), min_size=len(BUCKETS),
                                max_size=len(BUCKETS), unique=True))
        total = sum(weights) or 1
        rows.append({"variant": v, **{b: w / total for b, w in zip(BUCKETS, weights)},
                     "samples": total})
    return pd.DataFrame(rows, columns=["variant", *BUCKETS, "samples"])


@settings(max_examples=30, deadline=None)
@given(shares_frames(), st.booleans())
def test_the_named_bucket_is_each_variants_largest_share(shares, hidden):
    gaps = {v: (CYGRPC if hidden and v != "mmap" else {}) for v in shares["variant"]}
    text = pv.cpu_verdict(shares, gaps)
    assert 1 <= len(sentences(text)) <= 3, text
    first = sentences(text)[0]
    for _, row in shares.iterrows():
        best = max(BUCKETS, key=lambda b: row[b])          # the oracle: brute-force max
        assert pv.top_bucket(row) == (best, row[best])
        words = "unattributed" if best == UNATTRIBUTED else f"in {best}"
        clause = next(c for c in first.split("; ") if row["variant"] in c)
        assert words in clause, (row["variant"], best, first)
        assert pv.pct(row[best]) in first


@settings(max_examples=30, deadline=None)
@given(shares_frames(), st.booleans())
def test_transport_against_decoding_is_said_as_the_shares_add_up(shares, hidden):
    gaps = {v: (CYGRPC if hidden else {}) for v in shares["variant"]}
    said = pv.remote_sentence(shares, gaps)
    remote, more = [v for v in shares["variant"] if v != "mmap"], []
    if not remote:
        assert said == ""
        return
    for _, row in shares.iterrows():
        if row["variant"] == "mmap":
            continue
        transport = sum(row[b] for b in ("TLS/ssl", "gRPC core", "socket I/O"))
        decoding = row["protobuf"] + row["numpy + libc copies"]
        if hidden:      # cygrpc hides only transport buckets: its samples are transport
            transport += row[UNATTRIBUTED]
        elif row[UNATTRIBUTED] > 0:   # not placed: said apart, never folded into a bucket
            assert f"{row['variant']} {pv.pct(row[UNATTRIBUTED])}" in said
        assert pv.transport_split(row, gaps[row["variant"]])[:2] == (transport, decoding)
        more.append(transport > decoding)
    assert ("spend more CPU" in said or "spends more CPU" in said) == any(more), said
    assert ("no more CPU" in said) == (not all(more)), said


def test_unattributed_is_named_never_a_zero_share():
    row = {"variant": "grpc-tls-fresh", **{b: 0.0 for b in BUCKETS}}
    row.update({UNATTRIBUTED: 0.5, "protobuf": 0.3, "gRPC core": 0.2})
    text = pv.cpu_verdict(pd.DataFrame([row]), {"grpc-tls-fresh": CYGRPC})
    assert "grpc-tls-fresh 50 % unattributed (no symbols: TLS/ssl and gRPC core" in text
    assert "TLS/ssl 0" not in text


def test_the_timed_calls_are_said_in_one_unit_chosen_from_their_range():
    split = pd.DataFrame({"transport + TLS (+ connect)": [3000.0, 250.0, 0.0],
                          "client deserialize": [700.0, 50.0, 0.0],
                          "local query (the mapped file)": [0.0, 0.0, 8.0]},
                         index=["grpc-tls-fresh", "grpc-tls-packed", "mmap"])
    split["mean latency"] = split.sum(axis=1)
    text = pv.timed_sentence(split)
    assert "grpc-tls-fresh 81.1 % of 3.7 ms and grpc-tls-packed 83.3 % of 0.3 ms in " \
           "transport + TLS" in text
    assert "mmap's whole call 0.008 ms" in text
    assert " us" not in text and "µs" not in text
    assert pv.timed_sentence(None) == "" and pv.timed_sentence(split.iloc[:0]) == ""


def test_no_profile_says_so():
    empty = pd.DataFrame(columns=["variant", *BUCKETS, "samples"])
    assert "cannot say" in pv.cpu_verdict(empty, {})
