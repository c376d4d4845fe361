"""CPU per query measured for real (a spawned client, a loopback server, a loopback S3 for
the rebuild): a channel and TLS handshake per call costs more CPU per query than a pooled
channel, compared as a ratio within one run; a rebuild check on an unchanged object is one
request and no bytes."""

from __future__ import annotations

import math

import pytest

from lootlab.experiments.cost import cost_inputs, cost_per_million, cpu_per_query

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run():
    return cpu_per_query(("mmap", "grpc-tls-fresh", "grpc-tls-pooled"), queries=200,
                         rate=100.0, warm=20, builds=1, checks=3)


def test_a_fresh_channel_per_call_costs_more_cpu_than_a_pooled_one(run):
    rows = run.rows.set_index("variant")
    assert (rows["errors_count"] == 0).all()
    fresh, pooled = rows.loc["grpc-tls-fresh"], rows.loc["grpc-tls-pooled"]
    # the fresh client really connects (and handshakes) per query, the pooled one once
    assert fresh["connections_per_query"] >= 0.5
    assert pooled["connections_per_query"] <= 0.05
    both = lambda r: r["client_cpu_s_per_query"] + r["server_cpu_s_per_query"]
    assert both(pooled) > 0
    # measured about 3x on a quiet machine; generous for a busy one
    assert both(fresh) > 1.3 * both(pooled)
    assert fresh["client_cpu_s_per_query"] > pooled["client_cpu_s_per_query"]
    # the local file has no server side
    assert rows.loc["mmap", "server_cpu_s_per_query"] == 0
    assert rows.loc["mmap", "client_cpu_s_per_query"] > 0


def test_the_rebuild_pays_a_download_and_a_build_per_change_and_a_request_per_check(run):
    rb = run.rebuild
    built, checked = rb[rb["step"] == "build"], rb[rb["step"] == "check"]
    assert list(built["outcome"]) == ["built"]
    assert (checked["outcome"] == "unchanged").all() and len(checked) == 3
    # a changed object is downloaded whole; an unchanged one costs a request, no bytes
    assert (built["bytes"] == built["object_bytes"]).all()
    assert (checked["bytes"] == 0).all()
    assert (rb["requests_count"] == 1).all()
    assert built["cpu_s"].iloc[0] > checked["cpu_s"].max()
    assert built["index_bytes"].iloc[0] == run.meta["index_bytes"]


def test_the_measured_inputs_price_into_a_table(run):
    inputs = cost_inputs(run)
    table = cost_per_million(inputs, 10, 1000.0, inputs.rebuild.index_bytes)
    assert set(table["variant"]) == {"mmap", "grpc-tls-fresh", "grpc-tls-pooled"}
    assert (table["dollars_per_million"] > 0).all()
    assert all(math.isfinite(v) for v in table["core_hours_per_million"])
    assert table["memory_source"].str.startswith("assumed").all()
