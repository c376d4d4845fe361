"""The freshness experiment's rows, put together from what its processes reported (pure).

One row per (change, reader): when the change was written (``made_at``) and acknowledged
by the source (``committed_at``), when the rebuild worker's poll that found it started
(``poll_at``), when that fetch ended (``fetched_at``), when the new generation was
published (``published_at``), and when this reader first served it (``seen_at``).  The
components add up exactly to the staleness::

    staleness_s = upload_s + poll_wait_s + fetch_s + build_publish_s + refresh_s

``published_at`` is stamped by the worker's ``on_cycle`` callback, just after the publish
(rename, then a directory fsync) returned: a reader can map the new file between the
rename and that stamp, so ``refresh_s`` can be a few milliseconds below zero on a busy
machine.  ``made_at`` is when the writer started the write, so an upload counts toward
staleness (``upload_s``).

``kind``: "reader" (one local reader process), "every_reader" (the latest of the local
readers: the time until EVERY replica serves the change), "remote" (a client of the
remote service that serves the same published file).  A reader that never served a change
within the run has ``seen=False`` and NaN times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

ROW_COLUMNS = ["source", "interval_s", "change", "kind", "reader", "generation", "made_at",
               "committed_at", "poll_at", "fetched_at", "published_at", "seen_at", "seen",
               "upload_s", "poll_wait_s", "fetch_s", "build_publish_s", "refresh_s",
               "staleness_s"]
NAN = float("nan")


def _first_carrier(cycles: Iterable[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """change -> the built cycle whose published index carried it first."""
    out: dict[int, Mapping[str, Any]] = {}
    for c in cycles:
        for i in c.get("new_changes") or ():
            out.setdefault(int(i), c)
    return out


def staleness_rows(changes: Sequence[Mapping[str, Any]], cycles: Sequence[Mapping[str, Any]],
                   seen: Iterable[tuple[str, int, float, Any]], readers: Sequence[str],
                   remotes: Sequence[str] = (), *, source: str = "local",
                   interval: float = 2.0) -> pd.DataFrame:
    """The rows (``ROW_COLUMNS``) from the writer's ``changes`` (``change``, ``made_at``,
    ``committed_at``), the worker's ``cycles`` (``poll_at``, ``fetched_at``,
    ``published_at``, ``generation``, ``new_changes``), and ``seen`` events (label, change,
    seen_at, generation) of the local ``readers`` and the ``remotes``."""
    carrier = _first_carrier(cycles)
    first: dict[tuple[str, int], tuple[float, Any]] = {}
    for label, i, at, gen in seen:
        key = (label, int(i))
        if key not in first or at < first[key][0]:
            first[key] = (float(at), gen)
    rows: list[dict[str, Any]] = []
    for ch in changes:
        i = int(ch["change"])
        cyc = carrier.get(i, {})
        base = {"source": source, "interval_s": float(interval), "change": i,
                "made_at": float(ch["made_at"]), "committed_at": float(ch["committed_at"]),
                "poll_at": float(cyc.get("poll_at", NAN)),
                "fetched_at": float(cyc.get("fetched_at", NAN)),
                "published_at": float(cyc.get("published_at", NAN)),
                "generation": cyc.get("generation")}
        local_seen = []
        for kind, labels in (("reader", readers), ("remote", remotes)):
            for label in labels:
                at, _ = first.get((label, i), (NAN, None))
                rows.append(_row(base, kind, label, at))
                if kind == "reader":
                    local_seen.append(at)
        if readers:
            every = NAN if any(np.isnan(local_seen)) else max(local_seen)
            rows.append(_row(base, "every_reader", "every", every))
    frame = pd.DataFrame(rows, columns=ROW_COLUMNS)
    frame["generation"] = frame["generation"].astype("Int64")
    return frame


def _row(base: Mapping[str, Any], kind: str, label: str, seen_at: float) -> dict[str, Any]:
    b = base
    return {**b, "kind": kind, "reader": label, "seen_at": seen_at,
            "seen": not np.isnan(seen_at),
            "upload_s": b["committed_at"] - b["made_at"],
            "poll_wait_s": b["poll_at"] - b["committed_at"],
            "fetch_s": b["fetched_at"] - b["poll_at"],
            "build_publish_s": b["published_at"] - b["fetched_at"],
            "refresh_s": seen_at - b["published_at"],
            "staleness_s": seen_at - b["made_at"]}


SUMMARY_COLUMNS = ["source", "interval_s", "kind", "changes", "seen_count", "median_s",
                   "p90_s", "max_s", "upload_s", "poll_wait_s", "fetch_s", "build_publish_s",
                   "refresh_s", "one_poll_plus_build_s"]


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (source, interval, kind): changes, how many were served, median/p90/max
    staleness, the median of each component, and ``one_poll_plus_build_s`` = interval/2 +
    median(fetch + build and publish): what "about one poll plus one build" predicts for
    the median, set beside the measured one."""
    out = []
    for (source, interval, kind), g in rows.groupby(["source", "interval_s", "kind"],
                                                    sort=False):
        s = g.loc[g["seen"], "staleness_s"]
        has = len(s) > 0
        out.append({"source": source, "interval_s": interval, "kind": kind,
                    "changes": int(g["change"].nunique()), "seen_count": int(g["seen"].sum()),
                    "median_s": float(s.median()) if has else NAN,
                    "p90_s": float(s.quantile(0.9)) if has else NAN,
                    "max_s": float(s.max()) if has else NAN,
                    **{c: float(g[c].median()) for c in ("upload_s", "poll_wait_s", "fetch_s",
                                                         "build_publish_s", "refresh_s")},
                    "one_poll_plus_build_s": float(interval) / 2 + float(
                        (g["fetch_s"] + g["build_publish_s"]).median())})
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)
