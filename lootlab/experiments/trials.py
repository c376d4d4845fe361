"""Summaries over repeated trials: per group, the median trial with the spread min..max.

With R = 3 trials an interquartile range would be the middle trial itself; min..max is the
honest spread at the R a report can afford, and it is what a difference between variants
has to exceed.  The rows summarised are ``experiments.rows`` rows (one per trial), so the
columns keep their names (``p99_ms`` -> ``p99_ms``, ``p99_ms_lo``, ``p99_ms_hi``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd


def summarize_trials(trials: pd.DataFrame, by: list[str], medians: list[str], *,
                     lows: Iterable[str] = (), highs: Iterable[str] = (),
                     sums: Iterable[str] = (), firsts: Iterable[str] = (),
                     joins: Iterable[str] = ()) -> pd.DataFrame:
    """One row per ``by`` group of per-trial rows, groups in first-seen order: each of
    ``medians`` as the median of the trials with ``<col>_lo``/``<col>_hi`` (min..max
    across them); ``lows``/``highs`` as their min/max (interval ends), ``sums`` summed,
    ``firsts`` the first trial's, ``joins`` the distinct texts other than "ok" joined by
    "; " ("ok" when none); ``trials`` (how many), ``invalid_trials``, ``valid`` (every
    trial valid) and ``n`` (the smallest trial's sample count) where the rows have them."""
    out = []
    for key, g in trials.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(by, key))
        for col in medians:
            v = g[col].astype(float)
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = v.median(), v.min(), v.max()
        row.update({c: g[c].astype(float).min() for c in lows})
        row.update({c: g[c].astype(float).max() for c in highs})
        row.update({c: g[c].sum() for c in sums})
        row.update({c: g[c].iloc[0] for c in firsts})
        row.update({c: "; ".join(dict.fromkeys(t for t in g[c] if t != "ok")) or "ok"
                    for c in joins})
        row["trials"] = len(g)
        if "valid" in g:
            row["invalid_trials"] = int((~g["valid"].astype(bool)).sum())
            row["valid"] = row["invalid_trials"] == 0
        if "n" in g:
            row["n"] = int(g["n"].min())
        out.append(row)
    return pd.DataFrame(out)


def median_trial(results: list[Any], p: float = 99.0) -> dict[str, Any]:
    """Per variant, the trial whose percentile ``p`` is the median one (the lower of the
    middle two for an even count): the run a spectrum draws to stand for its trials."""
    by: dict[str, list[Any]] = {}
    for res in results:
        by.setdefault(res.variant, []).append(res)
    return {v: sorted(rs, key=lambda r: r.latency_us(p))[(len(rs) - 1) // 2]
            for v, rs in by.items()}


__all__ = ["median_trial", "summarize_trials"]
