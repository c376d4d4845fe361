"""The cost model against a brute-force oracle that walks every node and every check of an
hour, the crossover against a grid search, and monotonicity properties."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.experiments.cost_model import (
    CostInputs,
    Prices,
    RebuildCost,
    VariantCost,
    cost_per_million,
    crossover,
)

MIB = 2 ** 20
INTERVAL = 600.0        # few checks an hour: the oracle walks each one


def inputs(local_cpu=20e-6, remote_client=150e-6, remote_server=80e-6, idle=0.01,
           client_mem=40 * MIB, local_mem=60 * MIB, server_mem=80 * MIB, index=11 * MIB,
           build=0.8, check=0.004, obj=5 * MIB, wire=2000.0) -> CostInputs:
    return CostInputs(
        (VariantCost("mmap", False, local_cpu, client_bytes=local_mem),
         VariantCost("grpc-tls-pooled", True, remote_client, remote_server, idle,
                     client_bytes=client_mem, server_bytes=server_mem,
                     response_bytes_per_query=wire)),
        RebuildCost(build, check, obj, index))


def oracle_dollars_per_hour(inp: CostInputs, name: str, fleet: int, qps: float, data: float,
                            p: Prices, interval: float, changes: int | None, servers: int,
                            copies: float) -> float:
    """Walk the hour: every node's memory, every check of every rebuild worker, every
    query's CPU; then price each resource on its own."""
    v, rb = inp.variant(name), inp.rebuild
    checks = round(3600 / interval)
    cpu_s = mem_bytes = gets = s3_bytes = wire = 0.0

    def one_worker() -> None:
        nonlocal cpu_s, gets, s3_bytes
        for k in range(checks):
            changed = changes is None or k < changes
            gets += rb.requests_per_check
            if changed:
                cpu_s += rb.build_cpu_s * data / rb.index_bytes
                s3_bytes += rb.object_bytes * data / rb.index_bytes
            else:
                cpu_s += rb.check_cpu_s

    queries = qps * 3600
    if not v.remote:
        for _ in range(fleet):
            mem_bytes += v.client_bytes - rb.index_bytes + copies * data
            one_worker()
        cpu_s += queries * v.client_cpu_s_per_query
    else:
        for _ in range(fleet):
            mem_bytes += v.client_bytes
        for _ in range(servers):
            mem_bytes += v.server_bytes - rb.index_bytes + copies * data
            cpu_s += v.server_idle_cores * 3600
            one_worker()
        cpu_s += queries * (v.client_cpu_s_per_query + v.server_cpu_s_per_query)
        wire += queries * v.response_bytes_per_query
    gib = 2 ** 30
    return (cpu_s / 3600 * p.vcpu_hour + mem_bytes / gib * p.gb_hour
            + gets / 1000 * p.get_per_1000 + s3_bytes / gib * p.s3_transfer_per_gb
            + wire / gib * p.between_zones_per_gb)


prices_st = st.builds(Prices, st.floats(0.001, 1.0), st.floats(0.0001, 0.1),
                      st.floats(0.0, 0.01), st.floats(0.0, 0.1), st.floats(0.0, 0.05))


@settings(max_examples=40, deadline=None)
@given(fleet=st.integers(1, 40), qps=st.floats(1.0, 1e5), data_mib=st.floats(1.0, 4096.0),
       interval=st.sampled_from([1.0, 10.0, 60.0, 300.0]),
       changes=st.one_of(st.none(), st.integers(0, 50)), servers=st.integers(1, 5),
       copies=st.sampled_from([1.0, 2.0]), p=prices_st)
def test_cost_per_million_matches_walking_the_hour(fleet, qps, data_mib, interval, changes,
                                                   servers, copies, p):
    inp = inputs()
    data = data_mib * MIB
    checks = 3600 / interval
    changes_h = None if changes is None else min(changes, int(checks))
    got = cost_per_million(inp, fleet, qps, data, p, interval_s=interval,
                           changes_per_hour=changes_h, servers=servers, copies=copies)
    for _, row in got.iterrows():
        want = oracle_dollars_per_hour(inp, row["variant"], fleet, qps, data, p, interval,
                                       changes_h, servers, copies)
        assert math.isclose(row["dollars_per_hour"], want, rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(row["dollars_per_million"], want / (qps * 3600 / 1e6),
                            rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=25, deadline=None)
@given(fleet=st.integers(1, 200), qps=st.floats(10.0, 1e5), data_mib=st.floats(1.0, 2048.0),
       servers=st.integers(1, 4), p=prices_st)
def test_crossover_is_where_the_costs_are_equal_and_a_grid_finds_the_same(fleet, qps,
                                                                          data_mib, servers, p):
    inp = inputs()
    data = data_mib * MIB
    table = crossover(inp, fleet, qps, data, p, interval_s=INTERVAL, servers=servers)
    given_point = {"fleet_size": fleet, "qps": qps, "data_bytes": data}
    for _, row in table.iterrows():
        var, at = row["variable"], row["at"]

        def dollars(x: float, var: str = var) -> tuple[float, float]:
            """Each side's dollars per hour by the oracle."""
            point = {**given_point, var: x}
            return tuple(_model(inp, name, point, p, servers)
                         for name in ("mmap", "grpc-tls-pooled"))

        # brute force: the sign of the difference along a grid up to 4x the crossover (or
        # the given value); where it changes is the crossover (within a grid step)
        top = 4 * (at if math.isfinite(at) else given_point[var])
        grid = np.linspace(top / 200, top, 200)
        diff = np.array([np.subtract(*dollars(x)) for x in grid])
        scale = np.abs([dollars(x) for x in grid]).max()
        sign = np.where(np.abs(diff) <= 1e-9 * scale, 0, np.sign(diff))
        flips = np.flatnonzero(sign[:-1] * sign[1:] < 0)
        if not math.isfinite(at):
            assert flips.size == 0
            continue
        m, r = dollars(at)
        assert math.isclose(m, r, rel_tol=1e-7, abs_tol=1e-9)
        if flips.size:
            assert abs(grid[flips[0]] - at) <= 2 * (grid[1] - grid[0])
        cheaper = {"mmap": 0, "grpc-tls-pooled": 1}
        for x, side in ((at * 0.5, "cheaper_below"), (at * 1.5, "cheaper_above")):
            both = dollars(x)
            assert both[cheaper[row[side]]] <= min(both) * (1 + 1e-9) + 1e-12


def _model(inp: CostInputs, name: str, point: dict, p: Prices, servers: int) -> float:
    """The oracle's hour for a fractional fleet: walked for one replica, scaled (every
    replica costs the same), plus the shared part walked with no replica."""
    fleet = point["fleet_size"]
    args = (point["qps"], point["data_bytes"], p, INTERVAL, None, servers, 2.0)
    none = oracle_dollars_per_hour(inp, name, 0, *args)
    one = oracle_dollars_per_hour(inp, name, 1, *args)
    return none + fleet * (one - none)


@settings(max_examples=40, deadline=None)
@given(fleet=st.integers(1, 100), qps=st.floats(1.0, 1e5), data_mib=st.floats(1.0, 2048.0),
       p=prices_st, factor=st.floats(1.01, 10.0))
def test_monotone(fleet, qps, data_mib, p, factor):
    inp = inputs()
    data = data_mib * MIB

    def per_million(**change):
        point = {"fleet_size": fleet, "qps": qps, "data_bytes": data, "prices": p, **change}
        return cost_per_million(inp, point["fleet_size"], point["qps"], point["data_bytes"],
                                point["prices"]).set_index("variant")["dollars_per_million"]

    here = per_million()
    # more replicas or more data never cost less; more queries spread the fixed costs
    assert (per_million(fleet_size=fleet * factor) >= here - 1e-12).all()
    assert (per_million(data_bytes=data * factor) >= here - 1e-12).all()
    assert (per_million(qps=qps * factor) <= here + 1e-12).all()
    # any dearer price never makes anything cheaper
    for field in ("vcpu_hour", "gb_hour", "get_per_1000", "between_zones_per_gb"):
        dearer = Prices(**{**p.__dict__, field: getattr(p, field) * factor + 1e-6})
        assert (per_million(prices=dearer) >= here - 1e-12).all()


def test_a_worked_example_crosses_where_the_algebra_says():
    # local: only memory per replica (1 GiB each at $1/GB-hour); remote: $2/h fixed server
    # memory (2 servers x 1 GiB) and $0 per query otherwise.  Equal at 2 replicas.
    inp = CostInputs((VariantCost("mmap", False, 0.0, client_bytes=2 ** 30),
                      VariantCost("grpc-tls-pooled", True, 0.0, 0.0, 0.0, client_bytes=0.0,
                                  server_bytes=2 ** 30)),
                     RebuildCost(0.0, 0.0, 0.0, 2 ** 30))
    p = Prices(vcpu_hour=0, gb_hour=1.0, get_per_1000=0)
    table = crossover(inp, 10, 100.0, 2 ** 30, p, copies=1.0, servers=2,
                      variables=["fleet_size"])
    row = table.iloc[0]
    assert math.isclose(row["at"], 2.0)
    assert row["cheaper_below"] == "mmap" and row["cheaper_above"] == "grpc-tls-pooled"
    assert row["cheaper_at_given"] == "grpc-tls-pooled"
