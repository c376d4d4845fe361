"""Every query against a brute-force oracle, on random small worlds with duplicates and
positions at the edges of the packable range."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lootlab
from lootlab.index import kernels_available, numpy_only
from lootlab.records import X_MAX, X_MIN, Y_MAX, Y_MIN

import _oracle as oracle

EDGE_XZ = [X_MIN, X_MIN + 1, -1, 0, 1, X_MAX - 1, X_MAX]
EDGE_Y = [Y_MIN, Y_MIN + 1, -1, 0, 1, Y_MAX - 1, Y_MAX]
coord_xz = st.one_of(st.integers(-40, 40), st.sampled_from(EDGE_XZ), st.integers(X_MIN, X_MAX))
coord_y = st.one_of(st.integers(-10, 10), st.sampled_from(EDGE_Y))
u32 = st.integers(0, 2**32 - 1)
row = st.tuples(coord_xz, coord_y, coord_xz, u32, u32, st.integers(0, 2**16 - 1),
                st.integers(0, 255), st.integers(0, 255), u32)


@st.composite
def worlds(draw) -> pd.DataFrame:
    rows = draw(st.lists(row, max_size=60))
    # duplicates on purpose: repeat some positions with other metadata
    for i in draw(st.lists(st.integers(0, max(0, len(rows) - 1)), max_size=8)) if rows else []:
        rows.append(rows[i][:3] + draw(st.tuples(u32, u32, st.integers(0, 2**16 - 1),
                                                 st.integers(0, 255), st.integers(0, 255), u32)))
    return pd.DataFrame(rows, columns=lootlab.FIELDS)


def build(df: pd.DataFrame, cell_shift: int) -> lootlab.LootIndex:
    d = Path(tempfile.mkdtemp(prefix="lootlab-prop-"))
    lootlab.build_index(df, d / "t.idx", cell_shift=cell_shift)
    return lootlab.open_index(d / "t.idx", verify=True)


settings.register_profile("lootlab", deadline=None, max_examples=60,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("lootlab")
shifts = st.sampled_from([0, 3, 5, 9, 26])
# near/box run through the C kernels when built, and through numpy: both must agree
paths = pytest.mark.parametrize("path", ["default", "numpy"])


def on(path: str):
    from contextlib import nullcontext
    return numpy_only() if path == "numpy" else nullcontext()


def test_the_c_kernels_are_built():
    """The default install compiles lootlab/_kernels.c; CI must exercise that path."""
    assert kernels_available()


@paths
@given(worlds(), shifts, st.data())
def test_near_matches_oracle(path, df, shift, data):
    idx = build(df, shift)
    truth = oracle.dedupe(df)
    assert len(idx) == len(truth)
    for _ in range(5):
        x, y, z = data.draw(coord_xz), data.draw(coord_y), data.draw(coord_xz)
        r = data.draw(st.one_of(st.integers(0, 60), st.sampled_from([0, 1, 2**26, 2**40])))
        with on(path):
            got = idx.near(x, y, z, r)
        assert oracle.fields_equal(oracle.canonical(got), oracle.near(truth, x, y, z, r))


@paths
@given(worlds(), shifts, st.data())
def test_box_matches_oracle(path, df, shift, data):
    idx = build(df, shift)
    truth = oracle.dedupe(df)
    for _ in range(5):
        lo = (data.draw(coord_xz), data.draw(coord_y), data.draw(coord_xz))
        hi = (data.draw(coord_xz), data.draw(coord_y), data.draw(coord_xz))
        with on(path):
            got = idx.box(lo, hi)
        assert oracle.fields_equal(oracle.canonical(got), oracle.box(truth, lo, hi))


@given(worlds(), shifts, st.data())
def test_knn_matches_oracle_nearest_first(df, shift, data):
    idx = build(df, shift)
    truth = oracle.dedupe(df)
    for _ in range(4):
        x, y, z = data.draw(coord_xz), data.draw(coord_y), data.draw(coord_xz)
        k = data.draw(st.integers(0, len(truth) + 3))
        got = idx.knn(x, y, z, k)
        assert len(got) == min(k, len(truth))
        assert oracle.fields_equal(got, oracle.knn(truth, x, y, z, k))


@given(worlds(), shifts, st.data())
def test_get_and_get_many_match_oracle(df, shift, data):
    idx = build(df, shift)
    truth = oracle.dedupe(df)
    probes = [tuple(int(v) for v in p) for p in truth[["x", "y", "z"]].to_numpy()[:10]]
    probes += [(data.draw(coord_xz), data.draw(coord_y), data.draw(coord_xz)) for _ in range(5)]
    for p in probes:
        rec = idx.get(*p)
        expected = oracle.get(truth, *p)
        assert (tuple(rec) if rec else None) == expected
    xyz = np.array(probes, dtype=np.int64).reshape(-1, 3)
    found, recs = idx.get_many(xyz)
    for i, p in enumerate(probes):
        expected = oracle.get(truth, *p)
        assert bool(found[i]) == (expected is not None)
        if expected is not None:
            assert tuple(int(recs[i][f]) for f in lootlab.FIELDS) == expected


def test_empty_index(tmp_path):
    lootlab.build_index(pd.DataFrame(columns=lootlab.FIELDS, dtype="int64"), tmp_path / "e.idx")
    with lootlab.open_index(tmp_path / "e.idx", verify=True) as idx:
        assert len(idx) == 0
        assert idx.get(0, 0, 0) is None
        assert len(idx.near(0, 0, 0, 10**6)) == 0
        assert len(idx.box((X_MIN, Y_MIN, X_MIN), (X_MAX, Y_MAX, X_MAX))) == 0
        assert len(idx.knn(0, 0, 0, 5)) == 0
        found, recs = idx.get_many(np.zeros((3, 3), np.int64))
        assert not found.any() and len(recs) == 3


def test_single_record_and_defined_edges(tmp_path):
    df = pd.DataFrame([[X_MIN, Y_MAX, X_MAX, 7, 8, 9, 1, 2, 3]], columns=lootlab.FIELDS)
    lootlab.build_index(df, tmp_path / "one.idx")
    with lootlab.open_index(tmp_path / "one.idx") as idx:
        assert idx.get(X_MIN, Y_MAX, X_MAX) == (X_MIN, Y_MAX, X_MAX, 7, 8, 9, 1, 2, 3)
        assert len(idx.near(X_MIN, Y_MAX, X_MAX, 0)) == 1          # r = 0 finds the point itself
        assert len(idx.near(X_MIN + 1, Y_MAX, X_MAX, 0)) == 0
        assert len(idx.knn(0, 0, 0, 100)) == 1                    # k larger than the index
        assert len(idx.box((0, 0, 0), (-1, 0, 0))) == 0           # lo > hi: empty, not an error
        assert len(idx.box((X_MIN, Y_MIN, X_MIN), (X_MAX, Y_MAX, X_MAX))) == 1


@pytest.mark.parametrize("call", [
    lambda i: i.get(X_MAX + 1, 0, 0), lambda i: i.near(0, Y_MAX + 1, 0, 1),
    lambda i: i.near(0, 0, 0, -1), lambda i: i.near(0, 0, 0, float("nan")),
    lambda i: i.knn(0, 0, 0, -1), lambda i: i.knn(0, 0, 0, 1.5),
    lambda i: i.box((X_MIN - 1, 0, 0), (0, 0, 0)), lambda i: i.get_many(np.zeros((2, 2))),
    lambda i: i.get_many(np.array([[0, 5000, 0]])),
])
def test_bad_query_arguments_raise_query_error(tmp_path, call):
    lootlab.build_index(lootlab.generate_world(50, seed=1), tmp_path / "w.idx")
    with lootlab.open_index(tmp_path / "w.idx") as idx, pytest.raises(lootlab.QueryError):
        call(idx)


def test_results_are_copies_not_views_of_the_mapping(tmp_path):
    lootlab.build_index(lootlab.generate_world(500, seed=2), tmp_path / "w.idx")
    idx = lootlab.open_index(tmp_path / "w.idx")
    res = idx.near(0, 64, 0, 10**6)
    idx.close()
    assert res.base is None or not isinstance(res.base, memoryview)
    assert len(res.to_pandas()) == 500
