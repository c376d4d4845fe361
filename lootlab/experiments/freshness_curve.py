"""PBS-style freshness curves from the freshness experiment's rows (pure, no measuring).

Probabilistically bounded staleness (Bailis et al., 2012) asks: a read made ``t`` seconds
after a write, what is the chance it already sees it?  A reader here never goes back to an
older generation, so a read at ``t`` sees a change exactly when ``t >= staleness_s`` of
that (change, reader): the curve is the empirical CDF of the measured staleness.

A rebuild interval that was not run is *modelled* from the run's own components: the wait
for the next poll is uniform in ``[0, interval)`` (a change lands at a random phase of the
worker's cycle), and everything else (upload, fetch, build and publish, the reader's
refresh: ``rest_s = staleness_s - poll_wait_s``) is drawn from what was measured, at any
interval.  So ``P(staleness <= t) = mean over measured rest r of clip((t - r) / interval,
0, 1)``: exact, no sampling.  Such rows carry ``extrapolated=True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

CURVE_COLUMNS = ["interval_s", "t_s", "share", "extrapolated", "basis", "reads"]


def measured_share(staleness: Sequence[float] | np.ndarray, t: np.ndarray) -> np.ndarray:
    """Share of reads that see their change ``t`` seconds after it was made (NaN
    staleness: a read that never saw it within the run, so never counted as seeing)."""
    s = np.asarray(staleness, dtype=float)
    s = np.where(np.isnan(s), np.inf, s)
    if not len(s):
        return np.full(len(t), np.nan)
    return np.searchsorted(np.sort(s), np.asarray(t, dtype=float), side="right") / len(s)


def model_share(rest: Sequence[float] | np.ndarray, interval: float, t: np.ndarray) -> np.ndarray:
    """The modelled share at ``t``: poll wait uniform in ``[0, interval)`` plus a measured
    rest (one of ``rest``, equally likely)."""
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval!r}")
    r = np.asarray(rest, dtype=float)
    r = r[np.isfinite(r)]
    if not len(r):
        return np.full(len(t), np.nan)
    t = np.asarray(t, dtype=float)
    return np.clip((t[:, None] - r[None, :]) / interval, 0.0, 1.0).mean(axis=1)


def rest_seconds(rows: pd.DataFrame) -> np.ndarray:
    """Staleness minus the wait for the poll that found the change, per read (seconds)."""
    return (rows["staleness_s"] - rows["poll_wait_s"]).to_numpy(dtype=float)


def _same(values: pd.Series, interval: float) -> pd.Series:
    return pd.Series(np.isclose(values.to_numpy(dtype=float), float(interval)), index=values.index)


def pbs_curve(rows: pd.DataFrame, intervals: Iterable[float] = (1, 10, 60),
              measured_intervals: Iterable[float] | None = None, *, kind: str = "reader",
              t_max: float | None = None, points: int = 241,
              validate: bool = False) -> pd.DataFrame:
    """Share of reads that already see a change against seconds since it was made.

    ``rows``: the freshness experiment's rows (one or several runs concatenated), with
    ``kind``, ``interval_s``, ``staleness_s`` and ``poll_wait_s``.  ``kind``: whose reads
    ("reader": the local readers, "remote": the remote service's client).

    One curve per interval in ``intervals`` plus ``measured_intervals`` (default: every
    interval the rows hold): measured ones are the empirical CDF of that interval's reads
    (``basis="measured"``), the others the model of the module docstring built from every
    measured read (``basis="model"``, ``extrapolated=True``).  ``validate=True`` adds the
    model for the measured intervals too, to hold the model against the measurement.

    Each curve has ``points`` values of ``t_s`` from 0 to ``t_max`` (default: that
    interval's largest staleness, measured or possible under the model, plus 5 %).
    ``reads``: how many reads the curve stands on.
    """
    mine = rows[rows["kind"] == kind]
    held = sorted({float(v) for v in mine["interval_s"].dropna()})
    if measured_intervals is None:
        measured = held
    else:
        measured = sorted({float(v) for v in measured_intervals})
        missing = [v for v in measured if not any(np.isclose(v, h) for h in held)]
        if missing:
            raise ValueError(f"no {kind!r} rows at interval(s) {missing} s; the rows hold "
                             f"{held or 'none'}")
    if not measured:
        raise ValueError(f"no measured {kind!r} rows to build a curve from")
    wanted = sorted({float(v) for v in intervals} | set(measured))
    if any(v <= 0 for v in wanted):
        raise ValueError(f"intervals must be positive, got {wanted}")
    base = mine[np.logical_or.reduce([_same(mine["interval_s"], v) for v in measured])]
    rest = rest_seconds(base)
    rest = rest[np.isfinite(rest)]
    out = []
    for interval in wanted:
        is_measured = any(np.isclose(interval, v) for v in measured)
        staleness = base.loc[_same(base["interval_s"], interval), "staleness_s"].to_numpy(float)
        bases = (["measured"] if is_measured else []) + (
            ["model"] if validate or not is_measured else [])
        top = t_max
        if top is None:
            finite = staleness[np.isfinite(staleness)]
            top = 1.05 * max(interval + rest.max(initial=0.0), finite.max(initial=0.0))
        t = np.linspace(0.0, float(top), int(points))
        for basis in bases:
            if basis == "measured":
                share, reads = measured_share(staleness, t), len(staleness)
            else:
                share, reads = model_share(rest, interval, t), len(rest)
            out.append(pd.DataFrame({"interval_s": interval, "t_s": t, "share": share,
                                     "extrapolated": basis == "model", "basis": basis,
                                     "reads": reads}))
    return pd.concat(out, ignore_index=True)[CURVE_COLUMNS] if out else \
        pd.DataFrame(columns=CURVE_COLUMNS)
