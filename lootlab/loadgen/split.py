"""Where a request's time went: the parts of its mean latency, as a load run reports them.

A client may keep a call split (``split``: running sums in ns per named part, with
``calls``; the gRPC clients keep one, ``lootlab.remote.callsplit``); the load generator
adds the workers' sums up (``merge``) and turns them into mean microseconds per call
(``means_us``), beside the wait to be sent that it measures itself
(``LoadResult.split_us``).  Only sums are kept: means add up, percentiles of parts do not.

``SPLIT_PARTS`` names every part in stacking order; ``split_means`` reads them back from
result rows (``split_<part>_ms`` columns).  Plain data, so the experiments that fill the
rows and the charts that draw them share it.
"""

from __future__ import annotations

import pandas as pd

#: Counts a call split keeps beside its parts' sums.
COUNTS = ("calls", "with_server")

#: The parts of a request's mean latency (``LoadResult.split_us``), in stacking order.
SPLIT_PARTS: dict[str, str] = {
    "send_wait": "wait to be sent (queued in the client)",
    "client_serialize": "client serialize",
    "transport": "transport + TLS (+ connect and handshake per call)",
    "server_queue": "server queue",
    "server_compute": "server compute (query + encode)",
    "client_deserialize": "client deserialize (protobuf parse + rows)",
    "call": "local query (the mapped file)",
}


def merge(totals: list[dict[str, int]]) -> dict[str, int]:
    """Call splits of several clients (workers) added up, part by part; empty when none
    split its calls."""
    found = [t for t in totals if t and t.get("calls")]
    if not found:
        return {}
    keys = dict.fromkeys([*COUNTS, *(k for t in found for k in t)])
    return {k: int(sum(t.get(k, 0) for t in found)) for k in keys}


def means_us(totals: dict[str, int]) -> dict[str, float]:
    """Mean microseconds per call of each part of a call split; empty without calls."""
    n = totals.get("calls", 0) if totals else 0
    if not n:
        return {}
    return {k: v / n / 1e3 for k, v in totals.items() if k not in COUNTS}


def split_means(rows: pd.DataFrame, by: str = "variant") -> pd.DataFrame:
    """Mean ms of each part (columns in ``SPLIT_PARTS`` order) per row, indexed by the
    rows' ``by`` column, from their ``split_<part>_ms`` columns; a part a row lacks is 0."""
    cols = {part: f"split_{part}_ms" for part in SPLIT_PARTS if f"split_{part}_ms" in rows}
    out = pd.DataFrame({part: rows[col].astype(float) for part, col in cols.items()})
    out.index = pd.Index(rows[by].to_numpy(), name=by)
    return out.fillna(0.0)


__all__ = ["COUNTS", "SPLIT_PARTS", "means_us", "merge", "split_means"]
