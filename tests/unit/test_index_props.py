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


# hypothesis builds hundreds of indexes: all under one directory removed when the run ends
_ROOT = tempfile.TemporaryDirectory(prefix="lootlab-props-")


def build(df: pd.DataFrame, cell_shift: int) -> lootlab.LootIndex:
    d = Path(tempfile.mkdtemp(prefix="t-", dir=_ROOT.name))
    lootlab.build_index(df, d / "t.idx", cell_shift=cell_shift)
    return lootlab.open_index(d / "t.idx", verify=True)


settings.register_profile("lootlab", deadline=None, max_examples=60,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("lootlab")
shifts = st.sampled_from([0, 3, 5, 9, 26])
# near/box/get/get_many run through the C kernels when built, and through numpy: both must agree
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


@paths
@given(worlds(), shifts, st.data())
def test_get_and_get_many_match_oracle(path, df, shift, data):
    idx = build(df, shift)
    truth = oracle.dedupe(df)
    probes = [tuple(int(v) for v in p) for p in truth[["x", "y", "z"]].to_numpy()[:10]]
    probes += [(data.draw(coord_xz), data.draw(coord_y), data.draw(coord_xz)) for _ in range(5)]
    with on(path):
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
    """Results share no memory with the mapping, and stay equal to the oracle after the
    index is closed, its mapping released and the file replaced."""
    import gc

    df = lootlab.generate_world(500, seed=2)
    path = tmp_path / "w.idx"
    lootlab.build_index(df, path)
    idx = lootlab.open_index(path)
    snap = idx._current()
    res = idx.near(0, 64, 0, 10**6)
    box = idx.box((X_MIN, Y_MIN, X_MIN), (X_MAX, Y_MAX, X_MAX))
    with numpy_only():
        res_np = idx.near(0, 64, 0, 10**6)
    for got in (res, box, res_np):
        assert not np.shares_memory(got, snap.raw)
    idx.close()
    del snap
    gc.collect()
    with open("/proc/self/maps") as f:
        assert str(path) not in f.read()                  # the mapping is gone
    lootlab.build_index(lootlab.generate_world(300, seed=9), path)
    truth = oracle.canonical(oracle.as_results(oracle.dedupe(df)))
    for got in (res, box, res_np):
        assert oracle.fields_equal(oracle.canonical(got), truth)
    assert len(res.to_pandas()) == 500


BAD_COORDS = [0.9, 5.5, float("nan"), float("inf"), "5", "0", b"1", True, None, 1 + 0j,
              np.float64(0.5), np.bool_(True), [0]]


@pytest.mark.parametrize("bad", BAD_COORDS, ids=repr)
@pytest.mark.parametrize("op", ["get", "near", "box", "knn"])
def test_non_integral_coordinates_are_query_errors_everywhere(tmp_path, op, bad):
    """``get(x + 0.9, y, z)`` used to answer for x, and digit strings were parsed."""
    lootlab.build_index(lootlab.generate_world(50, seed=1), tmp_path / "w.idx")
    calls = {"get": lambda i: i.get(bad, 64, 0), "near": lambda i: i.near(0, bad, 0, 5),
             "box": lambda i: i.box((0, 0, bad), (1, 1, 1)), "knn": lambda i: i.knn(bad, 0, 0, 1)}
    with lootlab.open_index(tmp_path / "w.idx") as idx:
        for path in ("default", "numpy"):
            with on(path), pytest.raises(lootlab.QueryError, match="integer"):
                calls[op](idx)


def test_a_fraction_never_answers_for_the_truncated_position(tmp_path):
    df = lootlab.generate_world(200, seed=4)
    lootlab.build_index(df, tmp_path / "w.idx")
    x, y, z = (int(v) for v in df.iloc[0][["x", "y", "z"]])
    with lootlab.open_index(tmp_path / "w.idx") as idx:
        assert idx.get(x, y, z) is not None
        with pytest.raises(lootlab.QueryError):
            idx.get(x + 0.9, y, z)
        # integral floats and numpy integers name the same position, consistently
        for px, py, pz in ((float(x), float(y), float(z)), (np.int64(x), np.int16(y), np.int32(z))):
            assert idx.get(px, py, pz) == idx.get(x, y, z)
            assert oracle.fields_equal(idx.near(px, py, pz, 3), idx.near(x, y, z, 3))
            assert oracle.fields_equal(idx.knn(px, py, pz, 2), idx.knn(x, y, z, 2))
            assert oracle.fields_equal(idx.box((px, py, pz), (x, y, z)),
                                       idx.box((x, y, z), (x, y, z)))


@pytest.mark.parametrize("lo,hi", [((0, 0), (1, 1, 1)), ((0, 0, 0), (1, 1, 1, 1)), (0, (1, 1, 1)),
                                   ("abc", (1, 1, 1)), ((0, 0, 0), None)], ids=repr)
def test_box_corners_must_have_three_coordinates(tmp_path, lo, hi):
    lootlab.build_index(lootlab.generate_world(50, seed=1), tmp_path / "w.idx")
    with lootlab.open_index(tmp_path / "w.idx") as idx, pytest.raises(lootlab.QueryError,
                                                                      match="box"):
        idx.box(lo, hi)


@pytest.mark.parametrize("xyz", [
    np.array([[object(), 0, 0]], dtype=object), np.array([["1", "2", "3"]]),
    np.array([[1 + 0j, 0, 0]]), [[0, 0, 0], [1, 2]], [[2**70, 0, 0]],
    np.array([[True, False, True]]), np.array([[0.5, 0, 0]]), np.array([[np.inf, 0, 0]]),
    np.array([[2**64 - 1, 64, 0]], dtype=np.uint64), np.array([[1e30, 64, 0]]),
    np.array([[-2**63, 64, 0]], dtype=np.int64), [[0, 0, 0, 0]],
], ids=lambda v: repr(np.asarray(v, dtype=object).tolist()) if not isinstance(v, list) else repr(v))
def test_get_many_refuses_what_is_not_an_integer_position(tmp_path, xyz):
    """Object, str, complex, bool, ragged or out-of-range input (a uint64 2**64 - 1 used to
    wrap to x = -1 and answer for it) is a QueryError."""
    df = pd.DataFrame([[-1, 64, 0, 1, 1, 1, 1, 1, 1]], columns=lootlab.FIELDS)
    lootlab.build_index(df, tmp_path / "w.idx")
    with lootlab.open_index(tmp_path / "w.idx") as idx, pytest.raises(lootlab.QueryError):
        idx.get_many(xyz)


def test_get_many_accepts_every_integer_width_and_integral_floats(tmp_path):
    df = lootlab.generate_world(100, seed=6)
    lootlab.build_index(df, tmp_path / "w.idx")
    pts = df[["x", "y", "z"]].to_numpy(np.int64)[:20]
    with lootlab.open_index(tmp_path / "w.idx") as idx:
        for path in ("default", "numpy"):
            with on(path):
                found, recs = idx.get_many(pts)
                assert found.all()
                for dtype in (np.int32, np.float64):
                    f2, r2 = idx.get_many(pts.astype(dtype))
                    assert f2.all() and oracle.fields_equal(r2, recs)
                assert idx.get_many(pts.tolist())[0].all()
                assert idx.get_many(np.asfortranarray(pts))[0].all()     # not C-contiguous
