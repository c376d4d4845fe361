"""Key packing follows BlockPos.asLong exactly, and results round-trip to records."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lootlab.records import (RECORD_DTYPE, RESULT_DTYPE, X_MAX, X_MIN, Y_MAX, Y_MIN, pack_key,
                             pack_keys, results_to_records, to_results, unpack_key, unpack_keys)

xs = st.integers(X_MIN, X_MAX)
ys = st.integers(Y_MIN, Y_MAX)


def as_long(x: int, y: int, z: int) -> int:
    """Minecraft's BlockPos.asLong, transcribed with Java's signed 64-bit arithmetic."""
    v = ((x & 0x3FFFFFF) << 38) | ((z & 0x3FFFFFF) << 12) | (y & 0xFFF)
    return v - (1 << 64) if v >= 1 << 63 else v


@given(xs, ys, xs)
def test_pack_matches_blockpos_as_long_and_round_trips(x, y, z):
    key = pack_key(x, y, z)
    assert 0 <= key < 1 << 64
    assert key == as_long(x, y, z) & ((1 << 64) - 1)
    assert unpack_key(key) == (x, y, z)
    assert unpack_key(as_long(x, y, z)) == (x, y, z)


@given(st.lists(st.tuples(xs, ys, xs), max_size=50))
def test_vector_packing_agrees_with_scalar(points):
    arr = np.array(points, dtype=np.int64).reshape(-1, 3)
    keys = pack_keys(arr[:, 0], arr[:, 1], arr[:, 2])
    assert keys.tolist() == [pack_key(*p) for p in points]
    x, y, z = unpack_keys(keys)
    assert np.array_equal(np.stack([x, y, z], axis=1).reshape(-1, 3), arr)


@pytest.mark.parametrize("bad", [(X_MAX + 1, 0, 0), (X_MIN - 1, 0, 0), (0, Y_MAX + 1, 0),
                                 (0, Y_MIN - 1, 0), (0, 0, X_MAX + 1), (0, 0, X_MIN - 1)])
def test_pack_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match="packable range"):
        pack_key(*bad)


def test_record_layout_is_24_little_endian_bytes():
    assert RECORD_DTYPE.itemsize == 24
    rec = np.zeros(1, RECORD_DTYPE)
    rec["key"] = pack_key(1, 2, 3)
    rec["item_id"], rec["value"], rec["quantity"] = 0x01020304, 0x05060708, 0x090A
    rec["rarity"], rec["flags"], rec["tick"] = 0x0B, 0x0C, 0x0D0E0F10
    raw = rec.tobytes()
    assert raw[:8] == pack_key(1, 2, 3).to_bytes(8, "little")
    assert raw[8:] == bytes([4, 3, 2, 1, 8, 7, 6, 5, 0x0A, 0x09, 0x0B, 0x0C, 0x10, 0x0F, 0x0E, 0x0D])


@given(st.lists(st.tuples(xs, ys, xs, st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1),
                          st.integers(0, 255), st.integers(0, 2**32 - 1)), max_size=30))
def test_results_round_trip_to_records(rows):
    recs = np.zeros(len(rows), RECORD_DTYPE)
    for i, (x, y, z, item, qty, rarity, tick) in enumerate(rows):
        recs[i] = (pack_key(x, y, z), item, item ^ 0xFFFF, qty, rarity, 255 - rarity, tick)
    res = to_results(recs)
    assert res.dtype == RESULT_DTYPE
    assert [tuple(r) for r in res[["x", "y", "z"]].tolist()] == [r[:3] for r in rows]
    assert np.array_equal(results_to_records(res), recs)
    assert list(res.to_pandas().columns) == ["x", "y", "z", "item_id", "value", "quantity",
                                            "rarity", "flags", "tick"]


# ------------------------------------------------------------- what a person reads
def _results(n: int):
    from lootlab.records import Records
    rows = np.zeros(n, RESULT_DTYPE)
    rows["x"] = np.arange(n) + 12_500
    rows["item_id"] = 7
    return rows.view(Records)


@pytest.mark.parametrize("n", [0, 1, 3, 5, 6, 1000])
def test_records_repr_is_a_count_and_a_few_rows_not_the_dtype(n):
    text = repr(_results(n))
    lines = text.splitlines()
    assert lines[0] == f"Records: {n:,} record{'' if n == 1 else 's'}"
    assert "dtype" not in text and "'<i" not in text
    shown = min(n, 5)
    assert len(lines) == 1 + (shown + 1 if n else 0) + (n > 5)
    if n:
        assert lines[1].split() == list(RESULT_DTYPE.names)
        assert [int(line.split()[0]) for line in lines[2:2 + shown]] == \
            list(range(12_500, 12_500 + shown))
    if n > 5:
        assert lines[-1] == f"... {n - 5:,} more"


def _world(n: int = 50):
    from lootlab import generate_world
    return generate_world(n, seed=2)


def test_a_duplicate_column_is_an_invalid_records_error_naming_it(tmp_path):
    import pandas as pd

    from lootlab import build_index
    from lootlab.errors import InvalidRecordsError
    df = _world()
    twice = pd.concat([df, df[["rarity"]]], axis=1)
    with pytest.raises(InvalidRecordsError, match="more than once: rarity") as info:
        build_index(twice, tmp_path / "loot.idx")
    assert info.value.field == "rarity"
    assert not (tmp_path / "loot.idx").exists()


@pytest.mark.parametrize("dtype, value, shown", [
    ("int64", 5000, "5000 is outside"), ("float64", 2.5, "2.5 is not an integer"),
    ("float64", 5000.0, "5000 is not an integer"), ("float64", float("nan"), "nan is not"),
    ("object", "abc", "'abc' is not an integer")])
def test_bad_values_are_shown_as_written_not_as_numpy_reprs(dtype, value, shown):
    from lootlab.errors import InvalidRecordsError
    from lootlab.tables import columns_of, validate_columns
    df = _world().astype({"y": dtype})
    df.loc[5, "y"] = value
    with pytest.raises(InvalidRecordsError) as info:
        validate_columns(columns_of(df))
    message = str(info.value)
    assert message.startswith(f"row 5, field 'y': {shown}"), message
    assert "np." not in message
