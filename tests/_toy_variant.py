"""A seventh variant, written the way a new engineer would add one: a ``Variant`` entry and
its client class, nothing else.  It answers from an in-memory copy of the index's records
by brute force (no mmap, no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lootlab.clients import LootClient
from lootlab.records import LootRecord, Records
from lootlab.variants import Variant


class InMemoryClient(LootClient):
    name = "toy-in-memory"

    def __init__(self, index: str | Path | None = None, **_: object):
        from lootlab.index import open_index
        from lootlab.paths import ensure_default_index
        with open_index(index or ensure_default_index()) as idx:
            self.rows = idx.box((-(1 << 25), -2048, -(1 << 25)),
                                ((1 << 25) - 1, 2047, (1 << 25) - 1)).copy()

    def _pick(self, sel: np.ndarray) -> Records:
        return self.rows[sel].view(Records)

    def near(self, x: int, y: int, z: int, r: float) -> Records:
        rows = self.rows
        d2 = ((rows["x"] - x).astype(np.int64) ** 2 + (rows["y"] - y).astype(np.int64) ** 2
              + (rows["z"] - z).astype(np.int64) ** 2)
        return self._pick(d2 <= r * r)

    def box(self, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> Records:
        rows = self.rows
        sel = np.ones(len(rows), bool)
        for axis, a, b in zip("xyz", lo, hi):
            sel &= (rows[axis] >= a) & (rows[axis] <= b)
        return self._pick(sel)

    def get(self, x: int, y: int, z: int) -> LootRecord | None:
        hit = self.box((x, y, z), (x, y, z))
        return LootRecord(*hit[0].tolist()) if len(hit) else None


def open_in_memory(variant: Variant, **options: object) -> InMemoryClient:
    return InMemoryClient(**options)


TOY = Variant("toy-in-memory", "brute force over an in-memory copy (a test variant)",
              "none: shows that a variant is one registry entry", "_toy_variant:open_in_memory",
              remote=False)
