"""The decision table: remote service or a file on every replica, for the reader's fleet.

A pure function of what notebook 07 measured (latency at the reader's round trip,
freshness, memory per node, CPU per query and the rebuild's cost, failure) and of the
reader's ``Question`` (fleet size, query rate, data size, budgets, prices).  Every cell
says what it rests on (``*_basis``): "measured" when the run measured that very figure,
else how it was extrapolated from measured points, so a page never shows a guess as a
measurement.  The verdict is computed from the table, never written in advance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..loadgen.units import plain_number, plural
from .cost_model import CostInputs, Prices, cost_per_million
from .freshness_curve import pbs_curve, rest_seconds
from .verdicts import fit, ms_text

MIB = float(2 ** 20)
#: The write-up's spike: 7.8 M requests a minute.
SPIKE_QPS = 7.8e6 / 60


@dataclass(frozen=True)
class Question:
    """What the reader asks about (notebook 07's papermill parameters)."""

    fleet_size: int = 200
    qps: float = SPIKE_QPS
    data_bytes: float | None = None          # None: the index the run measured
    latency_budget_ms: float = 50.0
    freshness_budget_s: float = 120.0
    rebuild_interval_s: float = 60.0
    replicas_per_node: int = 1
    servers: int = 2
    source: str = "s3"
    prices: Prices = field(default_factory=Prices)


def _mib(b: float) -> str:
    return f"{plain_number(b / MIB)} MiB"


# --- freshness -------------------------------------------------------------------------------

def staleness_at(rows: pd.DataFrame, interval: float, kind: str = "every_reader",
                 source: str | None = None) -> tuple[float, float, str]:
    """(median, worst, basis) seconds until a reader serves a change when the worker polls
    every ``interval`` s: measured where the run used that interval, else the PBS model
    (poll wait uniform in [0, interval) plus the measured rest; its worst is the interval
    plus the slowest measured rest)."""
    mine = rows[rows["kind"] == kind]
    if source is not None and (mine["source"] == source).any():
        mine = mine[mine["source"] == source]
    if mine.empty:
        return math.nan, math.nan, "not measured"
    same = np.isclose(mine["interval_s"].astype(float), interval)
    seen = mine[same & mine["seen"].astype(bool)]
    if len(seen):
        s = seen["staleness_s"].astype(float)
        return float(s.median()), float(s.max()), (
            f"measured: {plural(len(s), 'read')} at a {plain_number(interval)} s interval")
    curve = pbs_curve(mine, intervals=(interval,), kind=kind)
    model = curve[curve["extrapolated"] & np.isclose(curve["interval_s"], interval)]
    median = float(np.interp(0.5, model["share"], model["t_s"]))
    rest = rest_seconds(mine)
    worst = interval + float(np.nanmax(rest)) if len(rest) else math.nan
    held = ", ".join(f"{plain_number(v)} s" for v in sorted(set(mine["interval_s"])))
    return median, worst, (f"extrapolated: poll wait uniform over {plain_number(interval)} s "
                           f"plus what fetch, build and refresh took at {held}")


# --- memory ----------------------------------------------------------------------------------

def _nearest_index(rows: pd.DataFrame, data_bytes: float) -> tuple[pd.DataFrame, float]:
    sizes = sorted(set(rows["index_bytes"].astype(float)))
    best = min(sizes, key=lambda b: abs(math.log(b / data_bytes)) if b > 0 else math.inf)
    return rows[np.isclose(rows["index_bytes"].astype(float), best)], best


def memory_per_node(rows: pd.DataFrame, q: Question, data_bytes: float, *,
                    remote: bool) -> tuple[float, str]:
    """(bytes, basis) a node holds at its peak for ``q.replicas_per_node`` replicas.

    File: the node's PSS sum at a swap (old and new generation mapped together) for that
    many readers, from the measured index size nearest ``data_bytes``; another size scales
    the index's part linearly.  Remote: that many clients' PSS each (the servers' memory is
    in the cost, spread over the fleet)."""
    n = q.replicas_per_node
    if rows is None or rows.empty:
        return math.nan, "not measured"
    if remote:
        mine = rows[(rows["kind"] == "remote-client") & (rows["phase"] == "steady")]
        if mine.empty:
            return math.nan, "not measured"
        per = float(mine.sort_values("n").iloc[0]["pss_mean_bytes"])
        return n * per, f"measured: {_mib(per)} per client (PSS) x {n}"
    mine = rows[rows["kind"] == "mmap"]
    if mine.empty:
        return math.nan, "not measured"
    near, measured_size = _nearest_index(mine, data_bytes)
    peak = near[near["phase"] == "swap-peak"]
    use, what = (peak, "at a swap") if len(peak) else (near, "steady (no swap measured)")
    ns = sorted(set(use["n"].astype(int)))
    if n in ns:
        node = float(use[use["n"] == n]["node_bytes"].max())
        basis = f"measured: {plural(n, 'reader')}, {what}"
    else:
        lo, hi = ns[0], ns[-1]
        a = float(use[use["n"] == lo]["node_bytes"].max())
        b = float(use[use["n"] == hi]["node_bytes"].max())
        per = (b - a) / (hi - lo) if hi > lo else a
        node = a + per * (n - lo)
        basis = (f"extrapolated: linear in readers from {lo} to {hi} measured, {what}")
    if not math.isclose(measured_size, data_bytes, rel_tol=0.05):
        copies = 2 if len(peak) else 1
        node += copies * (data_bytes - measured_size)
        basis += (f"; index scaled from the measured {_mib(measured_size)} to "
                  f"{_mib(data_bytes)}")
    return node, basis


def memory_inputs(rows: pd.DataFrame | None, variants: list[str], remote_of: Mapping[str, bool],
                  index_bytes: float) -> dict[str, dict[str, float]] | None:
    """The cost model's memory per replica and per server from ``node_memory`` rows at the
    measured index size nearest ``index_bytes``: the file variant's one reader (its process
    with the index mapped), a remote variant's one client and the server.  The remote
    rows were measured for one remote variant and stand for every remote one (their
    clients load the same libraries).  None when nothing was measured."""
    if rows is None or rows.empty:
        return None
    steady = rows[rows["phase"] == "steady"]
    out: dict[str, dict[str, float]] = {}
    local = steady[steady["kind"] == "mmap"]
    if len(local):
        near, _ = _nearest_index(local, index_bytes)
        one = near.sort_values("n").iloc[0]
        per = float(one["node_bytes"]) / max(1, int(one["n"]))
        out.update({v: {"client_bytes": per} for v in variants if not remote_of.get(v)})
    client = steady[steady["kind"] == "remote-client"].sort_values("n")
    server = steady[steady["kind"] == "remote-server"]
    if len(client) and len(server):
        near, _ = _nearest_index(server, index_bytes)
        out.update({v: {"client_bytes": float(client.iloc[0]["pss_mean_bytes"]),
                        "server_bytes": float(near["node_bytes"].max())}
                    for v in variants if remote_of.get(v)})
    return out or None


# --- availability ----------------------------------------------------------------------------

def availability(summary: pd.DataFrame | None, *,
                 remote: bool) -> tuple[float, float, float, str]:
    """(share of queries answered, seconds without answers, staleness reached, basis)
    under the failure this side meets: the remote service's server killed and restarted;
    the file variant's source (S3) down, serving errors or holding a corrupt upload, the
    worst of them.  Seconds without answers: from the kill to the first answer (remote),
    0 when the readers failed no query (file)."""
    nan = math.nan
    if summary is None or summary.empty:
        return nan, nan, nan, "not measured"
    if remote:
        mine = summary[summary["scenario"] == "server-killed"]
    else:
        mine = summary[summary["scenario"] != "server-killed"]
    if mine.empty:
        return nan, nan, nan, "not measured"
    worst = mine.loc[mine["availability"].astype(float).idxmin()]
    share = float(worst["availability"])
    words = (f"measured: {worst['scenario']}, {plain_number(100 * share)} % of the run's "
             f"queries answered")
    rec = float(worst.get("time_to_recover_s", nan))
    stale = float(worst.get("max_staleness_s", nan))
    errors = float(worst.get("error_count", nan))
    if remote:
        down = rec
        restart = float(worst.get("restart_s", nan))
        if math.isfinite(rec) and math.isfinite(restart):
            words += (f", the first answer {plain_number(rec)} s after the kill: the server "
                      f"was down {plain_number(restart)} s (the test's choice) and clients "
                      f"took {plain_number(rec - restart)} s more to reconnect")
        elif math.isfinite(rec):
            words += f", the first answer {plain_number(rec)} s after the kill"
    else:
        down = 0.0 if errors == 0 else nan
        if math.isfinite(stale):
            words += f"; staleness grew to {plain_number(stale)} s meanwhile"
    return share, down, stale, words


# --- the table -------------------------------------------------------------------------------

def decision_table(q: Question, *, latency: pd.DataFrame, freshness: pd.DataFrame | None,
                   memory: pd.DataFrame | None, cost: CostInputs | None,
                   failure: pd.DataFrame | None, measured_index_bytes: float,
                   remote_of: Mapping[str, bool]) -> pd.DataFrame:
    """One row per variant measured for latency: p99 at the reader's round trip against
    the latency budget, staleness at the reader's rebuild interval against the freshness
    budget, memory per node, dollars per million queries, availability; ``fits`` when
    every budget is met (None when a budget cannot be judged)."""
    data = float(q.data_bytes or measured_index_bytes)
    costs = (cost_per_million(cost, q.fleet_size, q.qps, data, q.prices,
                              interval_s=q.rebuild_interval_s, servers=q.servers)
             .set_index("variant") if cost is not None else None)
    out = []
    for _, row in latency.iterrows():
        v = str(row["variant"])
        remote = bool(remote_of.get(v, False))
        lat, lat_why = fit(row, q.latency_budget_ms)
        kind = "remote" if remote else "every_reader"   # until EVERY replica serves it
        p50, worst, fresh_basis = (staleness_at(freshness, q.rebuild_interval_s, kind,
                                                q.source) if freshness is not None
                                   else (math.nan, math.nan, "not measured"))
        fresh = None if not math.isfinite(worst) else worst <= q.freshness_budget_s
        mem, mem_basis = memory_per_node(memory, q, data, remote=remote) \
            if memory is not None else (math.nan, "not measured")
        avail, down, stale_in_failure, avail_basis = availability(failure, remote=remote)
        restart = math.nan
        if remote and failure is not None and "restart_s" in failure:
            killed = failure[failure["scenario"] == "server-killed"]
            restart = float(killed["restart_s"].iloc[0]) if len(killed) else math.nan
        dollars, cost_basis = math.nan, "not measured"
        if costs is not None and v in costs.index:
            c = costs.loc[v]
            dollars = float(c["dollars_per_million"])
            cost_basis = "modelled from measured CPU per query, memory and rebuild cost"
            if c["extrapolated"]:
                cost_basis += f"; {c['extrapolated']}"
        verdicts = [lat == "fits" if lat in ("fits", "over") else None, fresh]
        fits = None if None in verdicts else all(verdicts)
        out.append({"variant": v, "side": "remote service" if remote else "file on every replica",
                    "p99_ms": float(row["p99_ms"]), "latency": lat, "latency_why": lat_why,
                    "staleness_p50_s": p50, "staleness_max_s": worst,
                    "staleness_basis": fresh_basis,
                    "fresh_enough": fresh, "memory_per_node_bytes": mem,
                    "memory_basis": mem_basis, "dollars_per_million": dollars,
                    "cost_basis": cost_basis, "availability": avail,
                    "unanswered_s": down, "staleness_in_failure_s": stale_in_failure,
                    "restart_s": restart,
                    "availability_basis": avail_basis, "fits": fits})
    return pd.DataFrame(out)


def _missed(row: Mapping[str, Any], q: Question) -> str:
    """Why a variant falls out, in words: the budgets it misses or cannot be judged on."""
    parts = []
    if row["latency"] == "over":
        parts.append(f"p99 over the {ms_text(q.latency_budget_ms)} budget ({row['latency_why']})")
    elif row["latency"] != "fits":
        parts.append(f"its p99 cannot be judged against the budget ({row['latency_why']})")
    if row["fresh_enough"] is False:
        parts.append(f"a change can take {plain_number(row['staleness_max_s'])} s to reach "
                     f"every replica (budget {plain_number(q.freshness_budget_s)} s)")
    elif row["fresh_enough"] is None:
        parts.append("its staleness was not measured")
    return "; ".join(parts)


def _failure_sentence(table: pd.DataFrame) -> str:
    """What each side did when its dependency failed, when both were measured."""
    local = table[(table["side"] == "file on every replica")]
    remote = table[(table["side"] == "remote service")]
    if local.empty or remote.empty:
        return ""
    lo, re_ = local.iloc[0], remote.iloc[0]
    if not (math.isfinite(lo["unanswered_s"]) and math.isfinite(re_["unanswered_s"])):
        return ""
    stale = lo["staleness_in_failure_s"]
    grew = (f" while its staleness grew to {plain_number(stale)} s"
            if math.isfinite(stale) else "")
    lost = ("kept answering" if lo["unanswered_s"] == 0 else
            f"answered nothing for {plain_number(lo['unanswered_s'])} s")
    down = re_["unanswered_s"]
    restart = float(re_.get("restart_s", math.nan))
    why = (f" (down {plain_number(restart)} s by the test's choice, then "
           f"{plain_number(down - restart)} s for clients to reconnect)"
           if math.isfinite(restart) else "")
    return (f" When its source failed, the file {lost}{grew}; with its server killed, the "
            f"remote service answered nothing for {plain_number(down)} s{why}.")


def decision_verdict(table: pd.DataFrame, q: Question) -> str:
    """The page's answer, from the table: the cheapest variant that meets every budget,
    what it costs against the cheapest of the other side, and why the others fall out."""
    if table.empty:
        return "Nothing was measured, so nothing can be decided."
    fitting = table[table["fits"] == True]      # None: a budget that cannot be judged
    where = (f"For {plain_number(q.fleet_size)} replicas serving {plain_number(q.qps)} "
             f"queries/s with a {ms_text(q.latency_budget_ms)} p99 budget and changes "
             f"visible within {plain_number(q.freshness_budget_s)} s")
    if fitting.empty:
        why = "; ".join(f"{r['variant']}: {_missed(r, q)}" for _, r in table.iterrows())
        return f"{where}, no variant meets every budget: {why}."
    priced = fitting[np.isfinite(fitting["dollars_per_million"].astype(float))]
    best = (priced.sort_values("dollars_per_million").iloc[0] if len(priced)
            else fitting.iloc[0])
    text = f"{where}, choose {best['variant']} ({best['side']})"
    if len(priced):
        text += f": ${plain_number(best['dollars_per_million'])} per million queries"
        other = table[(table["side"] != best["side"])
                      & np.isfinite(table["dollars_per_million"].astype(float))]
        if len(other):
            o = other.sort_values("dollars_per_million").iloc[0]
            ratio = o["dollars_per_million"] / best["dollars_per_million"] \
                if best["dollars_per_million"] > 0 else math.inf
            text += (f", against ${plain_number(o['dollars_per_million'])} for the cheapest "
                     f"{o['side']} ({o['variant']}, {plain_number(ratio)}x)")
    text += "." + _failure_sentence(table)
    out = table[table["fits"] != True]
    if len(out):
        text += " Out: " + "; ".join(f"{r['variant']} ({_missed(r, q)})"
                                     for _, r in out.iterrows()) + "."
    return text


__all__ = ["SPIKE_QPS", "Question", "availability", "decision_table", "decision_verdict",
           "memory_inputs", "memory_per_node", "staleness_at"]
