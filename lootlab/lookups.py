"""Point lookups (``get``, ``get_many``) on one mapped generation: the C path and the numpy one.

Both probe the file's hash table in place (docs/FORMAT.md): linear probing from the key's
home slot, at most the builder's longest probe ``P``, a slot value ``>= N`` skipped.  The C
path (``lootlab._kernels.Lookup``, one object per snapshot holding its two sections) answers
``get`` in one call that returns the ``LootRecord`` or None, and ``get_many`` in one pass
without the GIL; the numpy path is the fallback without a compiler, and the reference both
are tested against.
"""

from __future__ import annotations

import struct
from types import ModuleType
from typing import Any

import numpy as np

from . import fileformat as ff
from .queryargs import positions
from .records import (
    RECORD_SIZE,
    RESULT_DTYPE,
    LootRecord,
    Records,
    pack_key,
    pack_keys,
    words_to_results,
)
from .snapshot import Snapshot

_U32 = struct.Struct("<I")
_REC = struct.Struct("<QIIHBBI")


def bind(snap: Snapshot, kernels: ModuleType) -> Any:
    """The C lookup object of one snapshot (it keeps the snapshot's mapping alive)."""
    return kernels.Lookup(snap.raw, snap.table, snap.max_probe, LootRecord)


def get_numpy(snap: Snapshot, x: int, y: int, z: int) -> LootRecord | None:
    """``get`` without the C kernels; x, y, z already checked."""
    key = pack_key(x, y, z)
    mm, n, mask = snap.mm, snap.n, snap.hash_mask
    slot = ((key * ff.HASH_MULTIPLIER) & 0xFFFFFFFFFFFFFFFF) >> snap.hash_shift
    hoff, roff = snap.hash_offset, snap.records_offset
    for _ in range(snap.max_probe):   # no record lies farther from its home slot
        (i,) = _U32.unpack_from(mm, hoff + 4 * slot)
        if i == ff.HASH_EMPTY:
            return None
        if i < n:
            rec = _REC.unpack_from(mm, roff + RECORD_SIZE * i)
            if rec[0] == key:
                return LootRecord(x, y, z, *rec[1:])
        slot = (slot + 1) & mask
    return None


def get_many_c(lookup: Any, xyz: object) -> tuple[np.ndarray, Records]:
    """``get_many`` in one C pass: range checks, packing, probing and the gather.

    A C-contiguous (n, 3) int64 array goes straight in (the pass checks the range itself);
    anything else is first checked and converted by ``queryargs.positions``.
    """
    if (type(xyz) is np.ndarray and xyz.dtype == np.int64 and xyz.ndim == 2
            and xyz.shape[1] == 3 and xyz.flags.c_contiguous and xyz.flags.aligned):
        pts = xyz
    else:
        pts = np.ascontiguousarray(positions(xyz))
    n = len(pts)
    found = np.empty(n, dtype=bool)
    out = np.empty(n, RESULT_DTYPE)
    bad = lookup.get_many(pts, found, out)
    if bad >= 0:
        positions(pts[:bad + 1])    # raises QueryError naming row ``bad``
        raise AssertionError(f"row {bad} refused by the C pass but not by positions()")
    return found, out.view(Records)


def get_many_numpy(snap: Snapshot, xyz: object) -> tuple[np.ndarray, Records]:
    """``get_many`` without the C kernels: one vectorised probe round per probe step."""
    pts = positions(xyz)
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    n = len(pts)
    found_at = np.full(n, -1, dtype=np.int64)
    if n and snap.n:
        keys = pack_keys(x, y, z)
        pos = ((keys * np.uint64(ff.HASH_MULTIPLIER))
               >> np.uint64(snap.hash_shift)).astype(np.int64)
        pending = np.arange(n)
        table, rkeys, mask = snap.table, snap.keys, snap.hash_mask
        for _ in range(snap.max_probe):
            cand = table[pos[pending]].astype(np.int64)
            live = (cand != ff.HASH_EMPTY) & (cand < snap.n)
            hit = np.zeros(len(pending), dtype=bool)
            hit[live] = rkeys[cand[live]] == keys[pending[live]]
            found_at[pending[hit]] = cand[hit]
            pending = pending[(cand != ff.HASH_EMPTY) & ~hit]
            if not pending.size:
                break
            pos[pending] = (pos[pending] + 1) & mask
    found = found_at >= 0
    out = np.zeros(n, RESULT_DTYPE)
    if found.any():
        out[found] = words_to_results(snap.raw[found_at[found]])
    return found, out.view(Records)
