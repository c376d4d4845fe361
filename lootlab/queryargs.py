"""Checks of query arguments: coordinates, box corners, batch positions, radius.

Kept apart from ``LootIndex`` so that every query refuses bad input in the same words,
before it touches a mapping: a fractional, out-of-range or non-numeric argument is a
``QueryError``, never truncated, wrapped or parsed.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import QueryError
from .records import in_range

_BIAS = 1 << 25
MAX_R = 1 << 28          # farther than any two packable positions
_XYZ_LIMITS = ((-_BIAS, _BIAS - 1), (-2048, 2047), (-_BIAS, _BIAS - 1))


def coord(v: object) -> int:
    """One coordinate as an int: Python and numpy integers, or floats with no fraction.

    Anything else (a fractional float, a string, a bool, None) is a QueryError, never
    truncated or parsed: ``get(x + 0.9, y, z)`` must not answer for ``x``.
    """
    if type(v) is int:
        return v
    if isinstance(v, (bool, np.bool_)):
        raise QueryError(f"coordinates must be integers, got the bool {v!r}")
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
        return int(v)
    raise QueryError(f"coordinates must be integers, got {v!r} ({type(v).__name__})")


def check_point(x: object, y: object, z: object) -> tuple[int, int, int]:
    """A position as three ints inside the packable range."""
    x, y, z = coord(x), coord(y), coord(z)
    if not in_range(x, y, z):
        raise QueryError(f"position ({x}, {y}, {z}) is outside the packable range "
                         f"(x, z in [-33554432, 33554431], y in [-2048, 2047])")
    return x, y, z


def check_corner(name: str, corner: object) -> tuple[int, int, int]:
    """A box corner: exactly three coordinates."""
    try:
        values = tuple(corner)  # type: ignore[call-overload]
    except TypeError:
        raise QueryError(f"box {name} must be (x, y, z), got {corner!r}") from None
    if len(values) != 3 or isinstance(corner, (str, bytes)):
        raise QueryError(f"box {name} must be (x, y, z), got {corner!r}")
    return check_point(*values)


def positions(xyz: object) -> np.ndarray:
    """``get_many`` input as an (n, 3) int64 array, range-checked before any cast.

    Integers of any numpy width and floats with no fraction are accepted; bool, object
    (e.g. Python ints beyond 64 bits), str, complex and ragged input are QueryErrors.
    Values are checked in their own dtype, so a uint64 or a float 1e30 cannot wrap into
    range on the way to int64.
    """
    try:
        pts = np.asarray(xyz)
    except (TypeError, ValueError, OverflowError) as exc:
        raise QueryError(f"get_many expects an (n, 3) array of integer positions: {exc}") from None
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise QueryError(f"get_many expects an (n, 3) array of positions, got shape {pts.shape}")
    if pts.dtype.kind not in "iuf":
        raise QueryError(f"get_many positions must be integers, got dtype {pts.dtype}")
    if pts.dtype.kind == "f" and pts.size and not np.all(np.isfinite(pts) & (pts == np.floor(pts))):
        raise QueryError("get_many positions must be integers (found a fraction, inf or nan)")
    for axis, (low, high) in enumerate(_XYZ_LIMITS):
        col = pts[:, axis]
        bad = (col < low) | (col > high) if pts.dtype.kind != "u" else col > high
        if bad.any():
            row = int(np.argmax(bad))
            shown = ", ".join(str(v) for v in pts[row].tolist())
            raise QueryError(f"row {row}: position ({shown}) is outside the packable range")
    return pts.astype(np.int64, copy=False)


def radius_squared(r: float) -> int:
    """Integer bound on dx²+dy²+dz² for radius ``r`` (exact for integer radii)."""
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, float, np.integer, np.floating)):
        raise QueryError(f"radius must be a number, got {r!r}")
    if not math.isfinite(r) or r < 0:
        raise QueryError(f"radius must be finite and >= 0, got {r!r}")
    if isinstance(r, (int, np.integer)):
        r = min(int(r), MAX_R)
        return r * r
    return math.floor(min(float(r), float(MAX_R)) ** 2)


def check_k(k: object) -> int:
    """``knn``'s k: an integer >= 0 (not a bool)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise QueryError(f"k must be an integer >= 0, got {k!r}")
    return k
