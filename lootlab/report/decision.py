"""The decision page's tables for people: the decision table (one row per variant, every
figure with its unit), what each cell rests on (measured, or extrapolated and how), and the
cold-start, failure and freshness tables beside it.

Rendering only: the frames of ``lootlab.experiments.remote_or_local`` and the decision
experiments in, ``lootlab.report.format.table``s out.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..experiments.remote_or_local import Question
from .format import Table, round_sig, table, time_unit

MIB = float(2 ** 20)
BASES = {"p99": "p99_basis", "staleness": "staleness_basis", "memory per node": "memory_basis",
         "cost": "cost_basis", "availability": "availability_basis"}


def _yes(x: Any) -> str:
    return "n/a: cannot tell" if x is None or (isinstance(x, float) and math.isnan(x)) \
        else ("yes" if x else "no")


def _figure(x: Any) -> Any:
    """A figure for a summary row: 3 significant figures, or why there is none."""
    value = round_sig(x)
    return "n/a: not measured" if value is None else value


def decision_rows(decided: pd.DataFrame) -> list[dict[str, Any]]:
    """The decision table as rows for ``publish_summary`` (the index page shows them as
    they are): each figure under a name that carries its unit, p99 in the one unit that
    fits the variants' range, a reason instead of a blank."""
    unit, k = time_unit(list(decided["p99_ms"]), "ms")
    rows = []
    for _, r in decided.iterrows():
        rows.append({
            "variant": r["variant"], "meets every budget": _yes(r["fits"]),
            f"p99 ({unit})": _figure(float(r["p99_ms"]) * k),
            "p99 against budget": str(r["latency"]),
            "worst staleness (s)": _figure(r["staleness_max_s"]),
            "memory per node (MiB)": _figure(r["memory_per_node_bytes"] / MIB),
            "$ per million queries": _figure(r["dollars_per_million"]),
            "unanswered per failure (s)": _figure(r["unanswered_s"])})
    return rows


def budgets_note(q: Question) -> str:
    """The reader's budgets and fleet, said under the decision table."""
    return (f"Budgets: p99 {q.latency_budget_ms:g} ms; a change visible on every replica "
            f"within {q.freshness_budget_s:g} s, the worker polling every "
            f"{q.rebuild_interval_s:g} s. Fleet: {q.fleet_size:,} replicas, "
            f"{q.replicas_per_node} per node; a remote service runs {q.servers} servers. "
            "Unanswered per failure: the seconds without answers when this side's "
            "dependency fails (the file: its source down, answers come from the published "
            "index; the remote: its server killed and restarted). What each figure rests "
            "on is in the next table.")


def bases_table(decided: pd.DataFrame) -> Table:
    """What each figure of the decision table rests on: measured in this run, or
    extrapolated from measured points (and how)."""
    frame = pd.DataFrame([{"variant": r["variant"],
                           **{name: r.get(col, "") or "n/a" for name, col in BASES.items()
                              if col in decided}} for _, r in decided.iterrows()])
    return table(frame, title="What each figure rests on")


def cgroup_table(cgroup: pd.DataFrame) -> Table:
    """What a memory cgroup charged one reader, cold and warm page cache, in MiB."""
    rows = []
    for _, r in cgroup.iterrows():
        why = str(r.get("reason") or "")
        rows.append({"index_MiB": r["index_bytes"] / MIB, "page cache": r["cache"],
                     "charged_MiB": r["usage_bytes"] / MIB,
                     "as_page_cache_MiB": r["cache_bytes"] / MIB,
                     "as_process_memory_MiB": r["rss_bytes"] / MIB,
                     "note": why or ("the reader faulted the file in: charged to it"
                                     if r["cache_bytes"] > 0 else
                                     "already cached by another process: not charged")})
    return table(pd.DataFrame(rows), title="What a cgroup memory limit charges one reader",
                 labels={"charged_MiB": "charged in all"},
                 note="The first process to read a page of the file is charged for it: a "
                      "replica starting on a cold node pays the whole index against its "
                      "memory limit; one starting where the file is already cached pays "
                      "nothing for it.")


def cpu_table(rows: pd.DataFrame) -> Table:
    """CPU seconds per query on each side, and the connections a query opens."""
    cols = [c for c in ("variant", "client_cpu_s_per_query", "server_cpu_s_per_query",
                        "connections_per_query", "queries_count", "errors_count", "server")
            if c in rows]
    frame = rows[cols].copy()
    if "server" in frame:
        frame["server"] = frame["server"].fillna("n/a: no server").replace("", "n/a")
    return table(frame, title="CPU per query, measured",
                 labels={"client_cpu_s_per_query": "client CPU per query",
                         "server_cpu_s_per_query": "server CPU per query"},
                 note="Client CPU: the client process's own (getrusage), less an empty "
                      "loop's; server CPU: the server's own counter, less its idle CPU. A "
                      "channel per call opens a connection (and a TLS handshake) per query.")


_QUANTITY = {"fleet_size": ("fleet size", lambda v: f"{v:,.0f} replicas"),
             "qps": ("queries per second", lambda v: f"{v:,.0f}/s"),
             "data_bytes": ("index size", lambda v: f"{v / MIB:,.0f} MiB"
                            if v < 2 ** 40 else f"{v / 2 ** 40:,.1f} TiB")}


def crossover_table(crossings: pd.DataFrame) -> Table:
    """Where the file on every replica and each remote variant cost the same, in words."""
    rows = []
    for _, c in crossings.iterrows():
        what, say = _QUANTITY.get(c["variable"], (c["variable"], lambda v: f"{v:,.3g}"))
        at = c["at"]
        rows.append({"remote variant": c["b"], "varied": what, "yours": say(c["given"]),
                     "equal cost at": say(at) if math.isfinite(at) else
                     "n/a: never at a positive value",
                     "cheaper below": c["cheaper_below"], "cheaper above": c["cheaper_above"],
                     "cheaper for you": c["cheaper_at_given"]})
    return table(pd.DataFrame(rows),
                 title="Where the file on every replica and each remote variant cost the same",
                 note="One quantity varied at a time, the others as you gave them; the cost "
                      "model is linear in each, so the crossing is exact.")


def cold_start_table(rows: pd.DataFrame) -> Table:
    """Time to the first answer and the first second's p99 and major faults, per start or
    swap, page cache and prefault."""
    cols = [c for c in ("after", "cache", "prefault", "trial", "process_start_s", "open_s",
                        "first_answer_s", "first_query_ms", "p99_ms", "queries_count",
                        "majflt_open_count", "majflt_per_query") if c in rows]
    if "trial" in cols and rows["trial"].nunique() < 2:
        cols.remove("trial")
    return table(rows[cols], title="Cold start and swaps: the first answer and the first "
                                   "second",
                 labels={"first_answer_s": "first answer", "p99_ms": "p99 over the first second",
                         "majflt_open_count": "major faults at open"},
                 note="first answer: from the process's start (or the swap) to its first "
                      "answer; n/a: the figure does not apply to that row (a swap starts "
                      "no process).")


def failure_table(summary: pd.DataFrame) -> Table:
    """Availability and staleness side by side, one row per failure."""
    cols = [c for c in ("scenario", "variant", "availability", "error_count",
                        "staleness_before_s", "max_staleness_s", "time_to_recover_s",
                        "p99_before_ms", "p99_during_ms", "p99_after_ms") if c in summary]
    frame = summary[cols].copy()
    for col in ("p99_before_ms", "p99_during_ms", "p99_after_ms"):
        if col in frame:
            frame[col] = frame[col].astype(object).where(frame[col].notna(),
                                                         "n/a: no answers in that window")
    for col in ("staleness_before_s", "max_staleness_s"):
        if col in frame:
            frame[col] = frame[col].astype(object).where(frame[col].notna(),
                                                         "n/a: fixed index")
    return table(frame, title="Failures: what was answered, and how stale",
                 shares=["availability"],
                 note="n/a staleness: the remote server answers from a fixed index while it "
                      "is killed; time to recover: from the fault's end (file) or the kill "
                      "(remote) to the first answer from the new state.")


def freshness_table(summary: pd.DataFrame) -> Table:
    summary = summary.copy()
    summary["poll every"] = [f"{v:g} s" for v in summary["interval_s"]]
    cols = [c for c in ("source", "poll every", "kind", "changes", "median_s", "p90_s",
                        "max_s", "poll_wait_s", "fetch_s", "build_publish_s", "refresh_s",
                        "one_poll_plus_build_s") if c in summary]
    return table(summary[cols], title="Seconds from a change to the readers serving it",
                 labels={"kind": "who reads", "one_poll_plus_build_s": "half a poll + build"},
                 note="every_reader: the latest of the local readers (the time until every "
                      "replica serves the change); remote: a client of the remote service "
                      "reading the same published file.")


__all__ = ["bases_table", "budgets_note", "cgroup_table", "cold_start_table", "cpu_table",
           "crossover_table", "decision_rows", "failure_table", "freshness_table"]
