"""The CPU buckets of notebook 03 laid out for people: one row per bucket, one column per
variant, in percent of the measured loop's samples (the unit in the header, so the cells stay
narrow and a page of four to six variants reads at 800 px without a hidden column).

A share the samples cannot give is never shown as a number: where a library without
symbols may hide a bucket (``profiling.categorize.attribution_gaps``: grpcio's stripped
``cygrpc`` links gRPC core and BoringSSL, so TLS is bare addresses there) the cell reads
``n/a: no symbols`` when nothing of the bucket was seen, or ``≥ x`` (a lower bound) when some
was; the samples themselves are in the ``unattributed (no symbols)`` row, and the table's note
names the library.  Rendering only: ``bucket_shares`` rows in, a DataFrame of cells out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from ..profiling.categorize import BUCKETS, KERNEL_BUCKETS, MIXED_LIBRARIES
from .cells import number

#: What an unmeasurable share reads (the note under the table names the library).
NO_SYMBOLS = "n/a: no symbols"
#: The mark of a share that is a lower bound (some of it may be unattributed).
AT_LEAST = "≥ "
#: The memcpy question's parts (``profiling.categorize.COPY_PARTS``) named as parts of the
#: buckets they refine, so "the copy of record bytes" reads as a piece of the C kernel
#: bucket and can never be read against a bucket called "memcpy".
COPY_PART_LABELS = {
    "record copy": "C kernel: copy of record bytes (lootlab_copy_record)",
    "C kernel, rest": "C kernel: finding runs, decoding and testing keys",
    "other copies": "numpy + libc copies: copying result rows",
    "numpy": "numpy + libc copies: the rest",
    "Python": "Python overhead",
    "OS kernel": "OS kernel",
    "other": "other",
}


def share_cell(share: float, hidden_in: Sequence[str]) -> float | str:
    """One cell in percent: the share itself, or, where ``hidden_in`` names libraries without
    symbols that may hold more of the bucket, ``NO_SYMBOLS`` (nothing seen) or "≥ x"."""
    pct = 100.0 * float(share)
    if not hidden_in:
        return pct
    return NO_SYMBOLS if pct == 0 else AT_LEAST + number(pct)


def bucket_table(shares: pd.DataFrame, gaps: Mapping[str, Mapping[str, Sequence[str]]],
                 *, buckets: Iterable[str] | None = None) -> pd.DataFrame:
    """Buckets as rows (``bucket`` column), variants as columns, cells in percent of each
    variant's loop samples (``share_cell``).  ``buckets``: which rows (default: the
    user-space buckets; py-spy never sees the OS kernel)."""
    rows = list(buckets) if buckets is not None else [b for b in BUCKETS
                                                      if b not in KERNEL_BUCKETS]
    by = shares.set_index("variant")
    out = {"bucket": rows}
    for variant in by.index:
        hidden = gaps.get(variant, {})
        out[str(variant)] = [share_cell(by.loc[variant, b], hidden.get(b, ())) for b in rows]
    return pd.DataFrame(out)


def column_labels(shares: pd.DataFrame) -> dict[str, str]:
    """Each variant's column header with the unit: "grpc-tls-fresh (%)"."""
    return {str(v): f"{v} (%)" for v in shares["variant"]}


def gaps_note(gaps: Mapping[str, Mapping[str, Sequence[str]]]) -> str:
    """The sentence under the table that says why a cell is "n/a" or "≥": which library has
    no symbols, what it links, and which variants it touches ("" when every share is
    measured)."""
    libs: dict[str, set[str]] = {}
    for variant, hidden in gaps.items():
        for names in hidden.values():
            for lib in names:
                libs.setdefault(lib, set()).add(variant)
    if not libs:
        return ""
    words = []
    for lib, variants in libs.items():
        what = MIXED_LIBRARIES.get(lib, (f"{lib}", ()))[0]
        hides = " and ".join(MIXED_LIBRARIES.get(lib, ("", ("other",)))[1])
        words.append(f"{NO_SYMBOLS}: {', '.join(sorted(variants))} run {what}, shipped without "
                     f"symbols; its samples are bare addresses, counted in the row "
                     f"'unattributed (no symbols)', so {hides} cannot be told apart there.")
    words.append(f"{AT_LEAST.strip()} x: at least x %; more may be among the unattributed "
                 f"samples.")
    return " ".join(words)


__all__ = ["AT_LEAST", "COPY_PART_LABELS", "NO_SYMBOLS", "bucket_table", "column_labels",
           "gaps_note", "share_cell"]
