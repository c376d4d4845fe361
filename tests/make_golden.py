"""Regenerate tests/fixtures/golden.idx (only when the format changes on purpose).

    python tests/make_golden.py
"""

from pathlib import Path

import pandas as pd

import lootlab

ROWS = [
    # x, y, z, item_id, value, quantity, rarity, flags, tick
    (0, 64, 0, 1, 10, 1, 0, 4, 100),
    (1, 64, 0, 2, 20, 2, 1, 4, 200),
    (-1, 63, -1, 3, 30, 3, 2, 9, 300),
    (5, 70, 5, 4, 40, 64, 3, 9, 400),
    (-33554432, -2048, 33554431, 5, 50, 5, 4, 2, 500),
    (33554431, 2047, -33554432, 6, 60, 6, 0, 2, 600),
    (100, 64, -100, 7, 70, 7, 1, 1, 700),
    (1, 64, 0, 8, 80, 8, 2, 4, 800),   # same position as row 1: this later row wins
]


def golden_frame() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=lootlab.FIELDS)


if __name__ == "__main__":
    out = Path(__file__).parent / "fixtures" / "golden.idx"
    rep = lootlab.build_index(golden_frame(), out, generation=7, source_version="golden-etag")
    print(rep)
