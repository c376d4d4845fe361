"""A deterministic synthetic loot world: dense towns and dungeons, sparse scatter.

Shaped like a real voxel world's loot: most records sit a few blocks above a rolling
surface (chests in towns, drops in the open), dungeons are 3-D blobs underground, and
the rest is scattered thinly across the map.  Same ``n`` and ``seed``, same table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .records import FIELDS, pack_keys

WORLD_RADIUS = 30_000          # x and z in [-WORLD_RADIUS, WORLD_RADIUS]
ITEM_KINDS = 4_096
FLAG_TOWN, FLAG_DUNGEON, FLAG_SCATTER, FLAG_CHEST = 1, 2, 4, 8
_SHARE_TOWN, _SHARE_DUNGEON = 0.55, 0.25   # the rest is scatter


def surface_height(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Rolling terrain around y = 64."""
    return (64 + 10 * np.sin(x / 410.0) + 7 * np.cos(z / 290.0)
            + 3 * np.sin((x + z) / 97.0)).round().astype(np.int64)


def _towns(rng: np.random.Generator, n: int, centers: np.ndarray) -> tuple[np.ndarray, ...]:
    which = rng.integers(0, len(centers), n)
    radius = rng.uniform(40, 140, len(centers))[which]
    x = centers[which, 0] + rng.normal(0, 1, n) * radius / 2
    z = centers[which, 1] + rng.normal(0, 1, n) * radius / 2
    x, z = x.round().astype(np.int64), z.round().astype(np.int64)
    y = surface_height(x, z) + rng.choice([0, 1, 1, 2, 5, 9, 14], n)
    return x, y, z


def _dungeons(rng: np.random.Generator, n: int, centers: np.ndarray) -> tuple[np.ndarray, ...]:
    which = rng.integers(0, len(centers), n)
    depth = rng.integers(-60, 40, len(centers))[which]
    spread = rng.uniform(6, 24, len(centers))[which]
    x = (centers[which, 0] + rng.normal(0, 1, n) * spread).round().astype(np.int64)
    z = (centers[which, 1] + rng.normal(0, 1, n) * spread).round().astype(np.int64)
    y = (depth + rng.normal(0, 3, n)).round().astype(np.int64)
    return x, y, z


def _scatter(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    x = rng.integers(-WORLD_RADIUS, WORLD_RADIUS + 1, n)
    z = rng.integers(-WORLD_RADIUS, WORLD_RADIUS + 1, n)
    cave = rng.random(n) < 0.15
    y = np.where(cave, rng.integers(-64, 40, n), surface_height(x, z) + rng.integers(0, 3, n))
    return x, y, z


def generate_world(n: int = 350_000, seed: int = 0) -> pd.DataFrame:
    """``n`` loot records at distinct block positions, as a DataFrame of ``FIELDS``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    n_towns = max(1, n // 6_000)
    n_dungeons = max(1, n // 1_200)
    towns = rng.integers(-WORLD_RADIUS * 4 // 5, WORLD_RADIUS * 4 // 5 + 1, (n_towns, 2))
    dungeons = rng.integers(-WORLD_RADIUS, WORLD_RADIUS + 1, (n_dungeons, 2))

    xs, ys, zs, kinds = [], [], [], []
    have = 0
    seen = np.empty(0, np.uint64)
    while have < n:
        want = int((n - have) * 1.1) + 16
        nt, nd = int(want * _SHARE_TOWN), int(want * _SHARE_DUNGEON)
        parts = [(_towns(rng, nt, towns), FLAG_TOWN), (_dungeons(rng, nd, dungeons), FLAG_DUNGEON),
                 (_scatter(rng, want - nt - nd), FLAG_SCATTER)]
        x = np.concatenate([p[0][0] for p in parts])
        y = np.clip(np.concatenate([p[0][1] for p in parts]), -2048, 2047)
        z = np.concatenate([p[0][2] for p in parts])
        kind = np.concatenate([np.full(len(p[0][0]), p[1], np.int64) for p in parts])
        order = rng.permutation(len(x))
        x, y, z, kind = x[order], y[order], z[order], kind[order]
        keys = pack_keys(x, y, z)
        _, first = np.unique(keys, return_index=True)
        fresh = np.zeros(len(keys), bool)
        fresh[first] = True
        fresh &= ~np.isin(keys, seen)
        take = np.flatnonzero(fresh)[: n - have]
        xs.append(x[take]); ys.append(y[take]); zs.append(z[take]); kinds.append(kind[take])
        seen = np.concatenate([seen, keys[take]])
        have += len(take)

    x, y, z, kind = (np.concatenate(a) if a else np.empty(0, np.int64) for a in (xs, ys, zs, kinds))
    rarity = rng.choice(5, n, p=[0.55, 0.27, 0.12, 0.05, 0.01]).astype(np.uint8)
    rarity = np.where(kind == FLAG_DUNGEON, np.minimum(rarity + 1, 4), rarity).astype(np.uint8)
    item_id = (rng.zipf(1.3, n) % ITEM_KINDS).astype(np.uint32)
    value = (rng.integers(1, 100, n) * (4 ** rarity.astype(np.int64))).astype(np.uint32)
    quantity = np.where(rarity >= 3, 1, rng.integers(1, 65, n)).astype(np.uint16)
    chest = (kind != FLAG_SCATTER) & (rng.random(n) < 0.6)
    flags = (kind | np.where(chest, FLAG_CHEST, 0)).astype(np.uint8)
    tick = rng.integers(0, 24_000 * 365, n).astype(np.uint32)
    df = pd.DataFrame({
        "x": x.astype(np.int32), "y": y.astype(np.int16), "z": z.astype(np.int32),
        "item_id": item_id, "value": value, "quantity": quantity, "rarity": rarity,
        "flags": flags, "tick": tick,
    })
    return df[FIELDS]
