"""The instruments' own resolution, wrk2 beside lootlab.loadgen: what the load generator
benchmark (``lootlab.benchmarks.loadgen``) holds lootlab's own error against.

``wrk2_floor()`` measures wrk2 alone against the null HTTP server
(``lootlab.benchmarks.nullhttp``, an answer that costs next to nothing): its own error at
a rate, the anchor for lootlab's ``generator_lag``.  ``resolution_rows()`` runs both tools
against that null server (or, ``target="serve"``, against ``lootlab serve --http``).
wrk2 itself, its parsing and the side-by-side runs live in ``anchor``.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import LootlabError
from . import anchor
from .anchor import CALIBRATION_S, PERCENTILES, WRK2_MISSING
from .nullhttp import null_server

# The loadgen benchmark's resolution rows: two rates a decade apart, each run shorter than
# wrk2's calibration so that wrk2 reports the whole run (a run past it would report only
# its tail, while lootlab reports everything after its 0.5 s warm-up).  5 s keeps the four
# runs near 30 s in all and still gives 5,000 samples at 1,000/s (50 above p99).
RESOLUTION_RATES = (1_000, 10_000)
RESOLUTION_DURATION_S = 5.0
RESOLUTION_COLUMNS = ["rate", "first", "wrk2_p50_us", "wrk2_p99_us", "wrk2_achieved_rate",
                      "wrk2_errors", "lootlab_p50_us", "lootlab_p99_us",
                      "lootlab_generator_lag_p99_us", "lootlab_observed_p99_us",
                      "lootlab_achieved_rate",
                      "lootlab_errors", "lootlab_verdict", "p99_lootlab_over_wrk2",
                      "saturated", "note"]
RESOLUTION_TARGETS = ("null", "serve")
# wrk2's own floor: wrk2 alone against the null server (lootlab.benchmarks.nullhttp),
# whose answer costs ~10 us of CPU, so what wrk2 reports is the loopback round trip plus
# its own timing error at that rate on this machine.
FLOOR_COLUMNS = ["rate", "p50_us", "p90_us", "p99_us", "p99.9_us", "achieved_rate",
                 "requests", "errors", "server_cpu_s"]
NULL_QUERY = np.array([[0, 0, 0, 64]], np.int64)   # the null server ignores the query


def _loadavg() -> str:
    """/proc/loadavg's first three fields: what else the box was running."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _check_duration(duration: float, connections: int) -> None:
    """Refuse a run past wrk2's calibration: wrk2 would report only what follows it."""
    calibration = CALIBRATION_S + 0.005 * connections
    if not 0 < duration < calibration:
        raise LootlabError(f"duration {duration:g} s: keep it under wrk2's calibration "
                           f"({calibration:g} s), past which wrk2 reports only the rest")


def wrk2_floor(rates: Sequence[float] = RESOLUTION_RATES,
               duration: float = RESOLUTION_DURATION_S, connections: int = 8) -> pd.DataFrame:
    """wrk2's own measurement floor: wrk2 alone against the null HTTP server on loopback.

    The null server (``lootlab.benchmarks.nullhttp``, its own process) answers in ~10 us
    of CPU, so wrk2's p50..p99.9 here are the loopback round trip plus wrk2's own timing
    error at each rate on this machine: the anchor lootlab's own error (its
    ``generator_lag``) is held against.  One row per rate (``FLOOR_COLUMNS``): wrk2's
    corrected percentiles in us, achieved rate, requests, errors and the CPU seconds the
    server used in that run (well under ``duration``: it was not the bottleneck).
    ``attrs``: ``note`` ("" when measured), the settings, the URL, /proc/loadavg before and
    after, the core count.  Without wrk2: an empty frame and the reason in
    ``attrs["note"]``, no exception.  ``duration`` must stay under wrk2's calibration."""
    settings = {"rates": [float(r) for r in rates], "duration_s": float(duration),
                "connections": int(connections), "target": "null"}
    if anchor.wrk2_path() is None:
        out = pd.DataFrame(columns=FLOOR_COLUMNS)
        out.attrs.update(settings, note=WRK2_MISSING)
        return out
    _check_duration(duration, connections)
    load_before = _loadavg()
    rows = []
    with null_server() as srv:
        url = srv.url + "/near?x=0&y=0&z=0&r=64"
        for rate in settings["rates"]:
            cpu0 = srv.cpu_s()
            w = anchor.run_wrk2(url, rate, duration, connections=connections)
            row = {"rate": rate, "achieved_rate": w.achieved_rate, "requests": w.requests,
                   "errors": w.errors, "server_cpu_s": srv.cpu_s() - cpu0}
            row.update({f"p{p:g}_us": w.latency_us(p) for p in PERCENTILES})
            rows.append(row)
    out = pd.DataFrame(rows, columns=FLOOR_COLUMNS)
    out.attrs.update(settings, note="", url=url, loadavg_before=load_before,
                     loadavg_after=_loadavg(), cpu_count=os.cpu_count())
    return out


def _short(w: pd.Series, rate: float, keep_up: float) -> bool:
    return bool(w["achieved_rate"] < keep_up * rate)


def _lootlab_own_limit(lo: pd.Series, rate: float, keep_up: float) -> bool:
    """On the null server: lootlab fell short of the rate, or its own health check says
    the generator was the bottleneck (senders busy all the time, sends late): either way
    its latencies are its own backlog."""
    return _short(lo, rate, keep_up) or (lo["verdict"] == "INVALID"
                                         and lo.get("bottleneck", "") == "generator")


def _row_note(target: str, rate: float, w: pd.Series, lo: pd.Series, keep_up: float,
              connections: int) -> str:
    """Why a row's percentiles are not the instruments' resolution ("" when they are)."""
    if target == "serve":
        if _short(w, rate, keep_up) or _short(lo, rate, keep_up):
            return (f"the endpoint saturated (wrk2 {w['achieved_rate']:.0f}/s, lootlab "
                    f"{lo['achieved_rate']:.0f}/s of {rate:g}/s): both report its queue")
        return ""
    parts = []
    if _lootlab_own_limit(lo, rate, keep_up):
        why = str(lo.get("reasons", "")).split("; ")[0]
        parts.append(f"lootlab's Python HTTP client is the limit at {rate:g}/s from one "
                     f"process ({connections} sender threads; achieved "
                     f"{lo['achieved_rate']:.0f}/s): its percentiles would be its own "
                     "backlog, so they are not reported" + (f" [{why}]" if why else ""))
    if _short(w, rate, keep_up):
        parts.append(f"wrk2 achieved {w['achieved_rate']:.0f}/s of {rate:g}/s: its "
                     "percentiles would be its own backlog, so they are not reported")
    return "; ".join(parts)


def resolution_rows(rates: Sequence[float] = RESOLUTION_RATES,
                    duration: float = RESOLUTION_DURATION_S, connections: int = 8, *,
                    index: str | Path | None = None, queries: np.ndarray | None = None,
                    n_queries: int = 1000, keep_up: float = 0.95,
                    target: str = "null") -> pd.DataFrame:
    """wrk2 and lootlab.loadgen at the same rates against one server on loopback: one
    row per rate, so a reader can tell the instrument from the system.

    ``target="null"`` (the default) drives the null HTTP server
    (``lootlab.benchmarks.nullhttp``), whose answer costs next to nothing, so each tool's
    percentiles are the loopback round trip plus its own error: the comparison of the
    instruments (``index``/``queries`` are then unused but for the query string).
    ``target="serve"`` drives ``lootlab serve --http 0`` (mmap backend) with the overlay
    queries; it sustains ~1,000/s on 2 cores, so above that both tools measure its queue.

    Columns (``RESOLUTION_COLUMNS``): wrk2's p50/p99 (its corrected "Recorded Latency"),
    achieved rate and errors; lootlab's p50/p99 (from intended send times), its own
    generator-lag p99 (how late it was itself: a bound on what it added), its observed
    p99 (``end - intended`` with that lag left in, as wrk2's figures leave wrk2's own
    lateness in: the like-for-like p99; lootlab's p50/p99 have its provable lag taken
    out), achieved rate, errors and verdict; the p99 ratio; ``first`` (the tool that ran first: the order
    alternates between rates so drift falls on both); ``saturated`` (either tool
    achieved under ``keep_up`` of the rate); and ``note``, saying why when a row's
    figures are not the instruments' resolution.  On the null server a tool that fell
    short of the rate, or lootlab judged INVALID with the generator as bottleneck, is
    itself the limit: its p50/p99 (its own backlog) are NaN and the note says why.  On
    ``serve`` the endpoint's queue is reported as measured, with the note.  The endpoint
    is let drain between runs.  ``attrs`` hold ``note`` ("" when measured), the settings,
    the URL, /proc/loadavg before and after and the CPU seconds the server used
    (``server_cpu_s``; null target only).  Without wrk2 on PATH: an empty frame with
    those columns and the reason in ``attrs["note"]``, no exception.  ``duration`` must
    stay under wrk2's calibration (``CALIBRATION_S`` + 5 ms per connection)."""
    if target not in RESOLUTION_TARGETS:
        raise LootlabError(f"target {target!r}: one of {', '.join(RESOLUTION_TARGETS)}")
    settings = {"rates": [float(r) for r in rates], "duration_s": float(duration),
                "connections": int(connections), "target": target}
    if anchor.wrk2_path() is None:
        out = pd.DataFrame(columns=RESOLUTION_COLUMNS)
        out.attrs.update(settings, note=WRK2_MISSING)
        return out
    _check_duration(duration, connections)
    from ..remote.wrk import lua_script

    path = Path(index) if index is not None else None
    if queries is None and target == "null":
        queries = NULL_QUERY
    elif queries is None:
        from ..index import open_index
        from ..overlay import overlay_queries
        from ..paths import ensure_default_index

        path = path or ensure_default_index()
        with open_index(path) as idx:
            queries = overlay_queries(idx, n_queries, seed=0)
    queries = np.asarray(queries, dtype=np.int64)
    load_before = _loadavg()
    server_cpu = math.nan
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="lootlab-anchor-"))
        if target == "null":
            srv = stack.enter_context(null_server())
            url, cpu0 = srv.url, srv.cpu_s()
        else:
            url = stack.enter_context(anchor.http_endpoint(path))
        script = Path(tmp) / "overlay.lua"
        script.write_text(lua_script(queries.tolist()))
        table = anchor.compare(url, list(settings["rates"]), duration, connections=connections,
                        queries=queries, script=script, settle=True)
        if target == "null":
            server_cpu = srv.cpu_s() - cpu0
    rows = []
    for rate, t in table.groupby("rate", sort=False):
        w = t[t["tool"] == "wrk2"].iloc[0]
        lo = t[t["tool"] == "lootlab"].iloc[0]
        note = _row_note(target, rate, w, lo, keep_up, connections)
        w_p = {p: w[f"p{p}_us"] for p in (50, 99)}
        lo_p = {p: lo[f"p{p}_us"] for p in (50, 99)}
        lo_obs = lo["observed_p99_us"]
        if target == "null":        # a tool at its own limit measured its own backlog
            if _short(w, rate, keep_up):
                w_p = dict.fromkeys(w_p, math.nan)
            if _lootlab_own_limit(lo, rate, keep_up):
                lo_p, lo_obs = dict.fromkeys(lo_p, math.nan), math.nan
        rows.append({
            "rate": float(rate), "first": t["tool"].iloc[0],
            "wrk2_p50_us": w_p[50], "wrk2_p99_us": w_p[99],
            "wrk2_achieved_rate": w["achieved_rate"], "wrk2_errors": int(w["errors"]),
            "lootlab_p50_us": lo_p[50], "lootlab_p99_us": lo_p[99],
            "lootlab_generator_lag_p99_us": lo["generator_lag_p99_us"],
            "lootlab_observed_p99_us": lo_obs,
            "lootlab_achieved_rate": lo["achieved_rate"], "lootlab_errors": int(lo["errors"]),
            "lootlab_verdict": lo["verdict"],
            "p99_lootlab_over_wrk2": lo_p[99] / w_p[99] if w_p[99] else math.nan,
            "saturated": bool(min(w["achieved_rate"], lo["achieved_rate"]) < keep_up * rate),
            "note": note})
    out = pd.DataFrame(rows, columns=RESOLUTION_COLUMNS)
    out.attrs.update(settings, note="", url=url, loadavg_before=load_before,
                     loadavg_after=_loadavg(), cpu_count=os.cpu_count(),
                     server_cpu_s=server_cpu)
    return out
