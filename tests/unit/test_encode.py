"""The server's answer encoders write exactly the bytes protobuf's own serializer writes.

Oracle: ``pb.Records(records=[pb.Record(...)], generation=g).SerializeToString()``, over
random records biased to the extremes of every field (x, z at the 26-bit bounds, y at
-2048/2047, zeros, u8/u16/u32 maxima), for the C encoder and the numpy one, and decoded
back with the standard ``Records.FromString``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lootlab.records import FIELD_RANGES, FIELDS, RESULT_DTYPE
from lootlab.remote import encode
from lootlab.remote import loot_pb2 as pb

# The kernel fixture's monkeypatch holds for every example of a test: that is the point.
FIXTURE_OK = [HealthCheck.function_scoped_fixture]


_EDGES = (0, 1, -1, 63, 64, 127, 128, 8191, 8192, 16383, 16384, 2**20, 2**21, 2**27, 2**28)


def _field(name: str, lo: int | None = None, hi: int | None = None) -> st.SearchStrategy[int]:
    """A field's values, often at an edge: a bound, zero, a varint length boundary."""
    a, b = FIELD_RANGES[name]
    lo, hi = (a if lo is None else lo), (b if hi is None else hi)
    edges = sorted({v for v in _EDGES + (lo, lo + 1, hi - 1, hi) if lo <= v <= hi})
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


ROW = st.tuples(*(_field(name) for name in FIELDS))
# Any int32 position: the encoder serves whatever the result array holds.
WIDE_ROW = st.tuples(*(_field(n, -2**31, 2**31 - 1) if n in "xyz" else _field(n) for n in FIELDS))
GENERATION = st.one_of(st.sampled_from([0, 1, 127, 128, 2**32, 2**63, 2**64 - 1]),
                       st.integers(0, 2**64 - 1))


def _rows(rows: list[tuple[int, ...]]) -> np.ndarray:
    return np.array(rows, dtype=RESULT_DTYPE) if rows else np.empty(0, RESULT_DTYPE)


def _oracle(rows: list[tuple[int, ...]], generation: int) -> bytes:
    records = [pb.Record(**dict(zip(FIELDS, r))) for r in rows]
    return pb.Records(records=records, generation=generation).SerializeToString()


def _decoded(data: bytes) -> list[tuple[int, ...]]:
    msg = pb.Records.FromString(data)
    return [tuple(getattr(r, f) for f in FIELDS) for r in msg.records]


@pytest.fixture(params=["c", "numpy"])
def kernel(request, monkeypatch) -> str:
    if request.param == "numpy":
        monkeypatch.setattr(encode, "_kernels", None)
    elif encode._kernels is None:
        pytest.skip("the C extension (lootlab._kernels) is not built")
    assert encode.kernel() == request.param
    return request.param


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_OK)
@given(rows=st.lists(ROW, max_size=40), generation=GENERATION)
def test_fast_encoder_is_serialize_to_string(kernel, rows, generation):
    data = encode.encode_records(_rows(rows), generation)
    assert data == _oracle(rows, generation)
    assert _decoded(data) == [tuple(r) for r in rows]
    assert pb.Records.FromString(data).generation == generation


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURE_OK)
@given(rows=st.lists(WIDE_ROW, max_size=20), generation=GENERATION)
def test_any_int32_position_encodes_like_protobuf(kernel, rows, generation):
    assert encode.encode_records(_rows(rows), generation) == _oracle(rows, generation)


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(ROW, max_size=20), generation=GENERATION)
def test_numpy_entry_point_matches_whatever_kernel(rows, generation):
    assert encode.encode_records_numpy(_rows(rows), generation) == _oracle(rows, generation)


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(ROW, max_size=20), generation=GENERATION)
def test_packed_and_python_encoders_are_serialize_to_string(rows, generation):
    res = _rows(rows)
    packed = pb.Records(generation=generation)
    if rows:
        from lootlab.records import results_to_records
        packed.packed = results_to_records(res).tobytes()
    assert encode.encode_packed(res, generation) == packed.SerializeToString()
    assert encode.encode_packed_python(res, generation) == packed.SerializeToString()
    assert encode.encode_records_python(res, generation) == _oracle(rows, generation)


def test_all_zero_records_keep_their_zero_length(kernel):
    """An all-zero record is ``0A 00``: the numpy path splits around it."""
    zero = (0,) * 9
    one = (1, 2, 3, 4, 5, 6, 7, 8, 9)
    for rows in ([zero], [zero, zero], [one, zero], [zero, one, zero, zero, one]):
        assert encode.encode_records(_rows(rows), 3) == _oracle(rows, 3)


def test_empty_answer(kernel):
    assert encode.encode_records(_rows([]), 0) == b""
    assert encode.encode_records(_rows([]), 5) == _oracle([], 5) == b"\x18\x05"
    assert encode.encode_packed(_rows([]), 0) == b""


def test_a_real_answer_and_a_strided_view(kernel):
    rng = np.random.default_rng(1)
    res = np.zeros(2_000, RESULT_DTYPE)
    for name in FIELDS:
        lo, hi = FIELD_RANGES[name]
        res[name] = rng.integers(lo, hi, len(res), endpoint=True)
    rows = [tuple(r) for r in res[::3].tolist()]
    assert encode.encode_records(res[::3], 2**40) == _oracle(rows, 2**40)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="RESULT_DTYPE"):
        encode.encode_records(np.zeros(3, np.int64), 0)
    with pytest.raises(ValueError, match="generation"):
        encode.encode_records(_rows([]), -1)
    with pytest.raises(ValueError, match="generation"):
        encode.encode_packed(_rows([]), 2**64)
    with pytest.raises(ValueError, match="unknown encoder 'slow'"):
        encode.get_encoder("slow")
    assert encode.get_encoder("python").name == "python"
    assert encode.DEFAULT_ENCODER == "fast"
