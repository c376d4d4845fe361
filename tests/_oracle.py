"""Brute-force answers to every query, straight from a loot table, for property tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lootlab.records import FIELDS, RESULT_DTYPE, pack_keys


def dedupe(df: pd.DataFrame) -> pd.DataFrame:
    """One row per position, the later row winning (what the builder promises)."""
    return df.drop_duplicates(subset=["x", "y", "z"], keep="last").reset_index(drop=True)


def as_results(df: pd.DataFrame) -> np.ndarray:
    out = np.zeros(len(df), RESULT_DTYPE)
    for name in FIELDS:
        out[name] = df[name].to_numpy()
    return out


def canonical(records: np.ndarray) -> np.ndarray:
    """Order-free form of a result set: sorted by position, fields only."""
    plain = np.zeros(len(records), RESULT_DTYPE)
    for name in FIELDS:
        plain[name] = records[name]
    return plain[np.lexsort((plain["z"], plain["y"], plain["x"]))]


def _d2(df: pd.DataFrame, x: int, y: int, z: int) -> np.ndarray:
    dx = df["x"].to_numpy(np.int64) - x
    dy = df["y"].to_numpy(np.int64) - y
    dz = df["z"].to_numpy(np.int64) - z
    return dx * dx + dy * dy + dz * dz


def near(df: pd.DataFrame, x: int, y: int, z: int, r: int) -> np.ndarray:
    return canonical(as_results(df[_d2(df, x, y, z) <= r * r]))


def box(df: pd.DataFrame, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> np.ndarray:
    m = np.ones(len(df), bool)
    for axis, a, b in zip("xyz", lo, hi):
        col = df[axis].to_numpy(np.int64)
        m &= (col >= a) & (col <= b)
    return canonical(as_results(df[m]))


def knn(df: pd.DataFrame, x: int, y: int, z: int, k: int) -> np.ndarray:
    d2 = _d2(df, x, y, z)
    keys = pack_keys(df["x"], df["y"], df["z"])
    order = np.lexsort((keys, d2))[:k]
    return as_results(df.iloc[order])


def get(df: pd.DataFrame, x: int, y: int, z: int) -> tuple | None:
    hit = df[(df["x"] == x) & (df["y"] == y) & (df["z"] == z)]
    if hit.empty:
        return None
    return tuple(int(v) for v in hit.iloc[-1][FIELDS])


def fields_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and all(np.array_equal(a[f], b[f]) for f in FIELDS)
