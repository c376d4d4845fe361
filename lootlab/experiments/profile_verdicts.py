"""The answer notebook 03 leads with: where each variant's CPU goes, in at most three
sentences computed from the stored profile rows, never written in advance.

Inputs are the rows the page's tables draw: ``profiling.bucket_shares`` (py-spy buckets per
variant), ``profiling.attribution_gaps`` (which buckets a library without symbols may hide),
optionally perf's ``bucket_shares`` (the OS kernel's share) and ``story.split_table`` (the
timed calls, microseconds per part).  A share the samples cannot place is called
"unattributed", never folded silently into a bucket: it counts towards the transport only
where every bucket its library may hide is a transport bucket (grpcio's ``cygrpc``: gRPC core
and TLS), and is otherwise said apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..loadgen.units import pick_unit, plain_number
from ..profiling.categorize import BUCKETS, NUMPY, UNATTRIBUTED, kernel_total

#: Buckets that are the cost of reaching the remote service, not of the answer.
TRANSPORT = ("TLS/ssl", "gRPC core", "socket I/O")
#: Buckets that turn the answer's bytes into rows.
DECODING = ("protobuf", NUMPY)
#: The column of ``story.split_table`` that is the sum of the others.
TOTAL_COLUMN = "mean latency"


def pct(share: float) -> str:
    """A share (0..1) as the page's tables write it: three significant digits, "47.4 %"."""
    return f"{plain_number(100.0 * float(share))} %"


def top_bucket(row: Mapping[str, Any]) -> tuple[str, float]:
    """The bucket with the largest share of one ``bucket_shares`` row (the first in
    ``BUCKETS`` order on a tie)."""
    pairs = [(b, float(row.get(b, 0.0) or 0.0)) for b in BUCKETS]
    return max(pairs, key=lambda p: p[1])


def _is_remote(variant: str) -> bool:
    """A registered remote variant; a name the registry does not know (a test's toy) is
    taken as local, so nothing is said of its transport."""
    from ..variants import UnknownVariantError, get
    try:
        return bool(get(variant).remote)
    except UnknownVariantError:
        return False


def _bucket_words(bucket: str, hidden: Mapping[str, Sequence[str]]) -> str:
    if bucket != UNATTRIBUTED:
        return f"in {bucket}"
    which = sorted(hidden)
    return ("unattributed (no symbols: "
            + (" and ".join(which) if which else "its buckets") + " cannot be told apart)")


def _and(names: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _grouped(named: Mapping[str, str], shares: Mapping[str, str]) -> list[str]:
    """"a 1 % and b 2 % in X" clauses: variants with the same words share one clause."""
    by: dict[str, list[str]] = {}
    for variant, words in named.items():
        by.setdefault(words, []).append(f"{variant} {shares[variant]}")
    return [f"{_and(names)} {words}" for words, names in by.items()]


def bucket_sentence(shares: pd.DataFrame, gaps: Mapping[str, Mapping[str, Sequence[str]]]) -> str:
    """Each variant's largest bucket and its share, unattributed named as such."""
    named, said = {}, {}
    for _, row in shares.iterrows():
        variant = str(row["variant"])
        bucket, share = top_bucket(row)
        named[variant] = _bucket_words(bucket, gaps.get(variant, {}))
        said[variant] = pct(share)
    return "Where the CPU goes (each variant's largest share): " + "; ".join(_grouped(named, said)) + "."


def _span(values: Sequence[float]) -> str:
    lo, hi = min(values), max(values)
    if pct(lo) == pct(hi):
        return pct(lo)
    return f"{plain_number(100.0 * lo)}-{pct(hi)}"


def transport_split(row: Mapping[str, Any], hidden: Mapping[str, Sequence[str]]
                    ) -> tuple[float, float, float]:
    """(transport, decoding, unplaced) shares of one row: the unattributed samples join the
    transport only when every bucket their library may hide is a transport bucket."""
    transport = sum(float(row.get(b, 0.0) or 0.0) for b in TRANSPORT)
    decoding = sum(float(row.get(b, 0.0) or 0.0) for b in DECODING)
    lost = float(row.get(UNATTRIBUTED, 0.0) or 0.0)
    if hidden and all(b in TRANSPORT for b in hidden):
        return transport + lost, decoding, 0.0
    return transport, decoding, lost


def remote_sentence(shares: pd.DataFrame, gaps: Mapping[str, Mapping[str, Sequence[str]]],
                    kernel: Mapping[str, float] | None = None) -> str:
    """Whether the remote clients' CPU goes to the transport or to decoding (and the OS
    kernel's share from perf, where measured); "" when no remote variant was profiled."""
    more, less, unplaced = {}, {}, {}
    for _, row in shares.iterrows():
        variant = str(row["variant"])
        if not _is_remote(variant):
            continue
        t, d, lost = transport_split(row, gaps.get(variant, {}))
        (more if t > d else less)[variant] = (t, d)
        if lost > 0:
            unplaced[variant] = lost
    said = []
    for group, word in ((more, "more"), (less, "no more")):
        if group:
            who = ("the remote clients" if not (more and less) and len(group) > 1
                   else _and(list(group)))
            said.append(f"{who} spend{'s' if len(group) == 1 else ''} {word} CPU in the "
                        f"transport (TLS, gRPC core, socket I/O: "
                        f"{_span([t for t, _ in group.values()])}) than in decoding "
                        f"(protobuf, numpy: {_span([d for _, d in group.values()])})")
    if not said:
        return ""
    text = "; ".join(said)
    if unplaced:
        text += ("; unattributed, which the shares cannot place: " + ", ".join(
            f"{v} {pct(s)}" for v, s in unplaced.items()))
    if kernel:
        said_k = [f"{pct(s)} of {v}'s" for v, s in kernel.items()]
        text += ("; perf puts " + " and ".join(said_k).replace("'s", "'s CPU", 1)
                 + " in the OS kernel")
    return text[0].upper() + text[1:] + "." if text.startswith("the ") else \
        "Of the remote clients, " + text + "."


def timed_sentence(split: pd.DataFrame | None) -> str:
    """The largest part of each remote call timed one at a time, and the local call's
    time, in one unit chosen from the calls' mean latencies; "" without timed calls."""
    if split is None or not len(split) or TOTAL_COLUMN not in split:
        return ""
    unit = pick_unit(split[TOTAL_COLUMN].to_numpy(dtype=float), source="us")
    named, said, local = {}, {}, []
    for variant, row in split.iterrows():
        total = float(row[TOTAL_COLUMN])
        if not total > 0:
            continue
        if not _is_remote(str(variant)):
            local.append(f"{variant}'s whole call {unit.format(total)}")
            continue
        parts = row.drop(TOTAL_COLUMN).astype(float)
        named[str(variant)] = f"in {str(parts.idxmax()).split(' (')[0]}"
        said[str(variant)] = f"{pct(parts.max() / total)} of {unit.format(total)}"
    clauses = _grouped(named, said) + local
    if not clauses:
        return ""
    return "Timed one call at a time: " + "; ".join(clauses) + "."


def cpu_verdict(shares: pd.DataFrame, gaps: Mapping[str, Mapping[str, Sequence[str]]], *,
                perf_shares: pd.DataFrame | None = None,
                split: pd.DataFrame | None = None) -> str:
    """Notebook 03's verdict, 1-3 sentences: each variant's largest bucket; transport
    against decoding for the remote clients (with perf's OS-kernel share); the timed calls'
    largest part."""
    if shares is None or not len(shares):
        return "No profile was recorded, so this page cannot say where the CPU goes."
    kernel = None
    if perf_shares is not None and len(perf_shares):
        kernel = {str(r["variant"]): kernel_total(r) for _, r in perf_shares.iterrows()}
    return " ".join(s for s in (bucket_sentence(shares, gaps),
                                remote_sentence(shares, gaps, kernel),
                                timed_sentence(split)) if s)


__all__ = ["DECODING", "TRANSPORT", "bucket_sentence", "cpu_verdict", "pct", "remote_sentence",
           "timed_sentence", "top_bucket", "transport_split"]
