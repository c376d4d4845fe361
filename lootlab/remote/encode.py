"""The server's answer encoders: result rows to the wire bytes of a ``Records`` message.

The schema is fixed, so the fast encoder writes the tag / length / zigzag-varint bytes of
every ``Record`` straight from the ``RESULT_DTYPE`` array, with no per-record Python
object: a C function in ``lootlab/_kernels.c`` when the extension is built, else a
vectorized numpy version.  Both give exactly the bytes
``pb.Records(records=[...], generation=g).SerializeToString()`` gives (proto3: zero
fields omitted, fields in number order), so any standard client decodes them.

The naive encoder (``"python"``: one ``records.add(...)`` per record, then
``SerializeToString``) stays, so the lab can still show what a naive server costs; it is
never the default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..records import META_FIELDS, RESULT_DTYPE, results_to_records

# The optional C encoder; numpy does the same without it.  Read on every call, so a test
# (or ``LOOTLAB_NO_KERNELS=1``) setting it to None takes the numpy path.
try:
    from .. import _kernels
except ImportError:  # pragma: no cover - a build without a C compiler
    _kernels = None
if os.environ.get("LOOTLAB_NO_KERNELS") or not hasattr(_kernels, "encode_records"):
    _kernels = None   # also a stale build of the extension without the encoder

_U64_MAX = 2**64 - 1
_FIELDS = ("x", "y", "z") + tuple(name for name, _ in META_FIELDS)
_U = np.uint64
_TAGS = np.array([(number << 3) for number in range(1, 10)], np.uint64)   # varint wire type
_LOW7, _HIGH, _ONES = _U(0x7F7F7F7F7F7F7F7F), _U(0x8080808080808080), _U(0x0101010101010101)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _generation(generation: int) -> bytes:
    """Field 3 (``uint64 generation``), omitted when 0 as proto3 does."""
    if not 0 <= generation <= _U64_MAX:
        raise ValueError(f"generation must be in [0, 2**64 - 1], got {generation!r}")
    return b"\x18" + _varint(generation) if generation else b""


def _rows(res: np.ndarray) -> np.ndarray:
    res = np.asarray(res)
    if res.dtype != RESULT_DTYPE or res.ndim != 1:
        raise ValueError(f"results must be a 1-d array of lootlab.records.RESULT_DTYPE "
                         f"(32-byte rows), got shape {res.shape} dtype {res.dtype}")
    return np.ascontiguousarray(res)


def kernel() -> str:
    """Which fast encoder runs now: ``"c"`` or ``"numpy"``."""
    return "c" if _kernels is not None else "numpy"


def encode_records(res: np.ndarray, generation: int) -> bytes:
    """The serialized ``Records(records=res, generation=generation)``: C, or numpy."""
    rows = _rows(res)
    gen = _generation(generation)
    if _kernels is not None:
        return _kernels.encode_records(rows.view(np.uint8), generation)
    return _encode_numpy(rows) + gen


def encode_records_numpy(res: np.ndarray, generation: int) -> bytes:
    """The numpy encoder, whether or not the C one is built (tests, benchmarks)."""
    rows = _rows(res)
    return _encode_numpy(rows) + _generation(generation)


def _encode_numpy(rows: np.ndarray) -> bytes:
    """Each record as 10 little-endian words (header, then each field's tag + varint,
    zero-padded) and the zero bytes deleted.  A varint here has no zero byte (continuation
    bytes have bit 7 set, the last byte of a non-zero value is non-zero, zero fields are
    omitted), so only padding goes, except the length byte of an all-zero record: those
    records split the buffer and are put back as ``0A 00``."""
    n = len(rows)
    if n == 0:
        return b""
    v = np.empty((n, 9), np.uint64)
    for j, name in enumerate(_FIELDS):
        col = rows[name]
        if j < 3:                                  # sint32: zigzag
            c = col.astype(np.int64)
            v[:, j] = ((c << 1) ^ (c >> 31)) & 0xFFFFFFFF
        else:
            v[:, j] = col
    w = v & _U(0x7F)                               # the five 7-bit groups, one per byte
    for shift, group in ((1, 0x3F80), (2, 0x1FC000), (3, 0xFE00000), (4, 0xF0000000)):
        w |= (v & _U(group)) << _U(shift)
    nonzero = (w + _LOW7) & _HIGH                  # bit 7 of every non-zero byte
    below = nonzero >> _U(8)
    below |= below >> _U(8)
    below |= below >> _U(16)                       # bit 7 of every byte under the top one
    w |= below                                     # continuation bits
    lens = (((nonzero | below) >> _U(7)) * _ONES) >> _U(56)   # varint bytes (0: v == 0)
    present = v != 0
    lens += present                                # + the tag
    body = lens.sum(axis=1)                        # <= 46: one length byte
    words = np.empty((n, 10), np.uint64)
    words[:, 0] = _U(0x0A) | (body << _U(8))
    np.left_shift(w, _U(8), out=words[:, 1:])
    words[:, 1:] |= _TAGS * present
    empty = np.flatnonzero(body == 0)
    if len(empty) == 0:
        return words.tobytes().translate(None, b"\0")
    parts, start = [], 0
    for i in empty.tolist():                       # only all-zero records
        parts.append(words[start:i].tobytes().translate(None, b"\0"))
        start = i + 1
    parts.append(words[start:].tobytes().translate(None, b"\0"))
    return b"\x0a\x00".join(parts)


def encode_packed(res: np.ndarray, generation: int) -> bytes:
    """The serialized ``Records(packed=<24-byte records>, generation=generation)``."""
    rows = _rows(res)
    gen = _generation(generation)
    if len(rows) == 0:
        return gen
    payload = results_to_records(rows).tobytes()
    return b"\x12" + _varint(len(payload)) + payload + gen


def encode_records_python(res: np.ndarray, generation: int) -> bytes:
    """The naive server: one protobuf ``Record`` per result in a Python loop, then
    ``SerializeToString`` (what lootlab's server did before the fast encoder)."""
    from . import loot_pb2 as pb
    out = pb.Records(generation=generation)
    if len(res):
        add = out.records.add
        for x, y, z, item_id, value, quantity, rarity, flags, tick in res.tolist():
            add(x=x, y=y, z=z, item_id=item_id, value=value, quantity=quantity,
                rarity=rarity, flags=flags, tick=tick)
    return out.SerializeToString()


def encode_packed_python(res: np.ndarray, generation: int) -> bytes:
    """The packed answer through a protobuf message (the naive server's packed path)."""
    from . import loot_pb2 as pb
    out = pb.Records(generation=generation)
    if len(res):
        out.packed = results_to_records(res).tobytes()
    return out.SerializeToString()


@dataclass(frozen=True)
class Encoder:
    """How a server turns results into answer bytes, repeated and packed."""

    name: str
    records: Callable[[np.ndarray, int], bytes]
    packed: Callable[[np.ndarray, int], bytes]


ENCODERS: dict[str, Encoder] = {
    "fast": Encoder("fast", encode_records, encode_packed),
    "python": Encoder("python", encode_records_python, encode_packed_python),
}
DEFAULT_ENCODER = "fast"


def get_encoder(name: str) -> Encoder:
    """The encoder called ``name`` (``fast`` or ``python``)."""
    try:
        return ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; choose from "
                         f"{', '.join(ENCODERS)}") from None
