"""Loot tables: the columns a source holds, reading/writing them, and row validation.

A loot table is a DataFrame (or numpy structured array) with the columns
``x y z item_id value quantity rarity flags tick``.  Validation names the first bad
row and field so a person can find it in their file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InvalidRecordsError, LootlabError
from .records import FIELD_RANGES, FIELDS

TABLE_SUFFIXES = (".parquet", ".pq", ".csv")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a Parquet or CSV loot table; errors name the file and what went wrong."""
    path = Path(path)
    if not path.exists():
        raise LootlabError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise LootlabError(f"{path}: cannot read loot table ({exc})") from exc
    raise LootlabError(f"{path}: unknown table type {suffix!r} (use .parquet or .csv)")


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as Parquet (or CSV by suffix), atomically: never half a file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if path.suffix.lower() == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def columns_of(records: pd.DataFrame | np.ndarray) -> dict[str, np.ndarray]:
    """The loot columns of a DataFrame or structured array, as numpy arrays (no copies)."""
    if isinstance(records, pd.DataFrame):
        names = list(records.columns)
        get = lambda name: records[name].to_numpy()  # noqa: E731
    elif isinstance(records, np.ndarray) and records.dtype.names:
        names = list(records.dtype.names)
        get = lambda name: records[name]  # noqa: E731
    else:
        raise InvalidRecordsError(
            f"expected a DataFrame or numpy structured array with columns {' '.join(FIELDS)}, "
            f"got {type(records).__name__}")
    twice = sorted({name for name in names if names.count(name) > 1 and name in FIELDS})
    if twice:
        raise InvalidRecordsError(f"column(s) given more than once: {', '.join(twice)} "
                                  f"(a loot table has each of {' '.join(FIELDS)} once)",
                                  field=twice[0])
    missing = [name for name in FIELDS if name not in names]
    if missing:
        raise InvalidRecordsError(f"missing column(s): {', '.join(missing)} "
                                  f"(a loot table has {' '.join(FIELDS)})")
    return {name: get(name) for name in FIELDS}


def _plain(value) -> str:
    """A value as a person writes it: 5000, 2.5, nan; not np.int16(5000)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e18 else f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def validate_columns(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check every value fits its field; return the columns as int64 arrays.

    Raises ``InvalidRecordsError`` naming the first bad row (0-based, in input order),
    its field and value, and how many rows are bad in all.
    """
    n = len(cols["x"])
    bad_any = np.zeros(n, dtype=bool)
    first: tuple[int, str, str] | None = None
    out: dict[str, np.ndarray] = {}
    for name in FIELDS:
        col = cols[name]
        if len(col) != n:
            raise InvalidRecordsError(f"column {name!r} has {len(col)} rows, 'x' has {n}")
        lo, hi = FIELD_RANGES[name]
        kind = col.dtype.kind
        if kind == "O" or isinstance(col.dtype, pd.api.extensions.ExtensionDtype):
            col = pd.to_numeric(pd.Series(col), errors="coerce").to_numpy(dtype="float64",
                                                                          na_value=np.nan)
            kind = "f"
        if kind in "iub":
            ints = col.astype(np.int64) if kind != "u" or col.dtype.itemsize < 8 else col
            bad = (ints < lo) | (ints > hi)
            why = "outside"
        elif kind == "f":
            with np.errstate(invalid="ignore"):
                finite = np.isfinite(col)
                bad = ~finite | (col != np.floor(col)) | (col < lo) | (col > hi)
            why = "not an integer in"
            ints = np.where(bad, 0, col).astype(np.int64)
        else:
            raise InvalidRecordsError(f"column {name!r} has type {col.dtype}; expected integers",
                                      field=name, bad_rows=n)
        if bad.any():
            row = int(np.argmax(bad))
            if first is None or row < first[0]:
                first = (row, name, f"{_plain(cols[name][row])} is {why} [{lo}, {hi}]")
            bad_any |= bad
        out[name] = ints.astype(np.int64, copy=False)
    if first is not None:
        row, name, what = first
        count = int(bad_any.sum())
        raise InvalidRecordsError(f"row {row}, field {name!r}: {what} "
                                  f"({count} bad row{'s' if count != 1 else ''} in all)",
                                  row=row, field=name, bad_rows=count)
    return out
