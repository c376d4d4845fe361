"""Record layout: the 24-byte on-disk record, the result dtype, and block-position packing.

The key follows Minecraft's ``BlockPos.asLong``: x in 26 signed bits at bit 38, z in 26
signed bits at bit 12, y in 12 signed bits at bit 0.  The on-disk record is the key
followed by 16 bytes of loot metadata, little-endian.  Results carry decoded x, y, z
followed by the same 16 metadata bytes, so turning records into results is one memcpy
of the metadata plus three shifts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

X_BITS, Z_BITS, Y_BITS = 26, 26, 12
X_SHIFT, Z_SHIFT = 38, 12
X_MIN, X_MAX = -(1 << (X_BITS - 1)), (1 << (X_BITS - 1)) - 1
Z_MIN, Z_MAX = X_MIN, X_MAX
Y_MIN, Y_MAX = -(1 << (Y_BITS - 1)), (1 << (Y_BITS - 1)) - 1
_MASK26 = (1 << 26) - 1
_MASK12 = (1 << 12) - 1
_MASK64 = (1 << 64) - 1

#: Metadata fields, in on-disk order, with their little-endian types.
META_FIELDS: list[tuple[str, str]] = [
    ("item_id", "<u4"), ("value", "<u4"), ("quantity", "<u2"),
    ("rarity", "u1"), ("flags", "u1"), ("tick", "<u4"),
]
#: Column order of a loot table (DataFrame or structured array) and of query results.
FIELDS: list[str] = ["x", "y", "z"] + [name for name, _ in META_FIELDS]

#: The 24-byte on-disk record.
RECORD_DTYPE = np.dtype([("key", "<u8")] + META_FIELDS)
RECORD_SIZE = RECORD_DTYPE.itemsize
assert RECORD_SIZE == 24

#: Query results: decoded position, 4 bytes of padding, then the metadata bytes exactly
#: as on disk (8-byte aligned, so building results copies whole 64-bit words).
RESULT_META_OFFSET = 16
RESULT_DTYPE = np.dtype({
    "names": ["x", "y", "z"] + [name for name, _ in META_FIELDS],
    "formats": ["<i4", "<i4", "<i4"] + [fmt for _, fmt in META_FIELDS],
    "offsets": [0, 4, 8, 16, 20, 24, 26, 27, 28],
    "itemsize": 32,
})
assert RECORD_DTYPE.fields["item_id"][1] + RESULT_META_OFFSET - 8 == RESULT_DTYPE.fields["item_id"][1]

#: Valid range of every column of a loot table: (low, high) inclusive.
FIELD_RANGES: dict[str, tuple[int, int]] = {
    "x": (X_MIN, X_MAX), "y": (Y_MIN, Y_MAX), "z": (Z_MIN, Z_MAX),
    "item_id": (0, 2**32 - 1), "value": (0, 2**32 - 1), "quantity": (0, 2**16 - 1),
    "rarity": (0, 255), "flags": (0, 255), "tick": (0, 2**32 - 1),
}


class LootRecord(NamedTuple):
    """One record, as returned by ``LootIndex.get``."""

    x: int
    y: int
    z: int
    item_id: int
    value: int
    quantity: int
    rarity: int
    flags: int
    tick: int


class Records(np.ndarray):
    """A structured array of results (dtype ``RESULT_DTYPE``) with a cheap route to pandas."""

    def to_pandas(self) -> pd.DataFrame:
        """Columns ``x y z item_id value quantity rarity flags tick``, one row per record."""
        return pd.DataFrame({name: np.asarray(self[name]) for name in FIELDS})

    to_frame = to_pandas

    def __repr__(self) -> str:
        """How many records and the first few, as a table (numpy's repr dumps the dtype)."""
        if self.ndim != 1 or self.dtype.names is None:
            return repr(self.view(np.ndarray))
        n = len(self)
        head = f"Records: {n:,} record{'s' if n != 1 else ''}"
        if n == 0:
            return head
        shown = pd.DataFrame({k: np.asarray(self[k][:_REPR_ROWS]) for k in self.dtype.names})
        more = f"\n... {n - _REPR_ROWS:,} more" if n > _REPR_ROWS else ""
        return f"{head}\n{shown.to_string(index=False)}{more}"


_REPR_ROWS = 5


def empty_results() -> Records:
    return np.empty(0, RESULT_DTYPE).view(Records)


def in_range(x: int, y: int, z: int) -> bool:
    return X_MIN <= x <= X_MAX and Y_MIN <= y <= Y_MAX and Z_MIN <= z <= Z_MAX


def pack_key(x: int, y: int, z: int) -> int:
    """Pack one block position into its unsigned 64-bit key (raises ValueError out of range)."""
    if not in_range(x, y, z):
        raise ValueError(f"position ({x}, {y}, {z}) is outside the packable range "
                         f"x,z in [{X_MIN}, {X_MAX}], y in [{Y_MIN}, {Y_MAX}]")
    return ((x & _MASK26) << X_SHIFT) | ((z & _MASK26) << Z_SHIFT) | (y & _MASK12)


def unpack_key(key: int) -> tuple[int, int, int]:
    """Inverse of ``pack_key``: (x, y, z) from an unsigned or signed 64-bit key."""
    key &= _MASK64
    x = key >> X_SHIFT
    z = (key >> Z_SHIFT) & _MASK26
    y = key & _MASK12
    x -= (x >> 25) << 26
    z -= (z >> 25) << 26
    y -= (y >> 11) << 12
    return x, y, z


def pack_keys(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Vector form of ``pack_key``; inputs must already be in range."""
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    z = np.asarray(z, dtype=np.int64)
    key = ((x & _MASK26) << X_SHIFT) | ((z & _MASK26) << Z_SHIFT) | (y & _MASK12)
    return key.view(np.uint64)


def unpack_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vector form of ``unpack_key``: arithmetic shifts on int64 restore the signs."""
    keys = np.asarray(keys)
    k = keys.view(np.int64) if keys.dtype != np.int64 else keys
    x = k >> X_SHIFT
    z = (k << (64 - X_SHIFT)) >> (64 - Z_BITS)
    y = (k << (64 - Y_BITS)) >> (64 - Y_BITS)
    return x, y, z


def as_words(raw: np.ndarray) -> np.ndarray:
    """On-disk records as an (n, 3) uint64 array: word 0 the key, words 1-2 the metadata."""
    if raw.dtype == np.uint64 and raw.ndim == 2:
        return raw
    return np.ascontiguousarray(raw).view(np.uint64).reshape(-1, 3)


def words_to_results(words: np.ndarray) -> Records:
    """Decode (n, 3) uint64 record words into results: three shifts and one word copy."""
    n = len(words)
    out = np.empty(n, RESULT_DTYPE)
    if n:
        # Little-endian word 0 is x (low half) and y (high half), word 1 is z and padding:
        # build both straight from the key with shifts, no per-field stores.
        k = words[:, 0].view(np.int64)
        w = out.view(np.int64).reshape(n, 4)
        y_high = k << (64 - Y_BITS)
        y_high >>= 32 - Y_BITS                        # y << 32, sign-extended, low half zero
        x_low = k >> X_SHIFT
        x_low &= 0xFFFFFFFF
        np.bitwise_or(y_high, x_low, out=w[:, 0])
        z = k << (64 - X_SHIFT)
        z >>= 64 - Z_BITS
        np.bitwise_and(z, 0xFFFFFFFF, out=w[:, 1])
        w[:, 2:] = words[:, 1:].view(np.int64)
    return out.view(Records)


def to_results(raw: np.ndarray) -> Records:
    """Decode on-disk records (``RECORD_DTYPE`` or (n, 3) words) into ``RESULT_DTYPE``."""
    return words_to_results(as_words(raw))


def results_to_records(results: np.ndarray) -> np.ndarray:
    """Inverse of ``to_results``: results back to 24-byte on-disk records (for the wire)."""
    n = len(results)
    words = np.empty((n, 3), np.uint64)
    if n:
        words[:, 0] = pack_keys(results["x"], results["y"], results["z"])
        words[:, 1:] = np.ascontiguousarray(results).view(np.uint64).reshape(n, 4)[:, 2:]
    return words.view(RECORD_DTYPE).reshape(n)


def to_record(raw: np.ndarray) -> LootRecord:
    """One on-disk record (a ``RECORD_DTYPE`` scalar) as a ``LootRecord``."""
    x, y, z = unpack_key(int(raw["key"]))
    return LootRecord(x, y, z, int(raw["item_id"]), int(raw["value"]), int(raw["quantity"]),
                      int(raw["rarity"]), int(raw["flags"]), int(raw["tick"]))
