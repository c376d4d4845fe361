"""The overlay query workload: ``near`` around player positions that follow loot density.

Players crowd where loot is (towns, dungeons), so positions are drawn from the records
themselves and jittered a little.  Seeded: the same arguments give the same queries,
whichever variant or process runs them.
"""

from __future__ import annotations

import numpy as np

from .index import LootIndex
from .records import X_MAX, X_MIN, Y_MAX, Y_MIN

DEFAULT_RADIUS = 64


def overlay_queries(index: LootIndex, n: int, *, seed: int = 0, radius: int = DEFAULT_RADIUS,
                    jitter: float = 16.0) -> np.ndarray:
    """An (n, 4) int64 array of ``x y z r`` overlay queries."""
    rng = np.random.default_rng([seed, 0x0E7])
    if len(index) == 0:
        pos = np.zeros((n, 3), np.int64)
    else:
        rec = index.sample(n, seed=seed)
        pos = np.stack([rec["x"], rec["y"], rec["z"]], axis=1).astype(np.int64)
    pos[:, 0] += np.round(rng.normal(0, jitter, n)).astype(np.int64)
    pos[:, 2] += np.round(rng.normal(0, jitter, n)).astype(np.int64)
    pos[:, 1] += np.round(rng.normal(0, jitter / 8, n)).astype(np.int64)
    pos[:, [0, 2]] = np.clip(pos[:, [0, 2]], X_MIN, X_MAX)
    pos[:, 1] = np.clip(pos[:, 1], Y_MIN, Y_MAX)
    return np.column_stack([pos, np.full(n, radius, np.int64)])
