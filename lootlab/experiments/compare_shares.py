"""Two runs' CPU profiles and memory, compared figure by figure (``lootlab compare``).

Profiles: every CPU profile both runs stored under one name (``Part.put_stacks``) gives each
bucket's share of the samples taken in the measured loop, with a 95 % Wilson interval
(samples are counts: a share of 120 samples is far less certain than one of 12,000).
Memory: every ``memory`` table both runs stored gives, per variant, each per-operation
figure and the peaks; these are counts from one run each, so their interval is the value
itself and only the ratio rule can call them changed.

The verdict is the latency comparison's: "changed" needs the two intervals apart and the
ratio B/A beyond the factor; a share below ``MIN_SHARE`` in both runs is left out (a bucket
nobody spends time in says nothing).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pandas as pd

from .rundir import Part, Run, RunDirError, load_part

#: A bucket under this share of the loop's samples in both runs is not shown.
MIN_SHARE = 0.01
#: The memory figures compared, per variant of a ``memory`` table.
MEMORY_FIGURES = ("allocs_per_op", "bytes_per_op", "minflt_per_op", "cpu_us_per_op",
                  "peak_heap_MiB", "RssAnon_MiB", "RssFile_MiB", "VmHWM_MiB")
#: The name of the table of memory per variant (notebook 04 stores it).
MEMORY_TABLE = "memory"


def wilson(k: float, n: float, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of the share ``k / n`` (NaNs when ``n`` is 0)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # the share itself always lies inside (rounding could put an end of 443/443 at 0.99...)
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def _parts(run: Run) -> Iterator[Part]:
    for name in run.parts:
        try:
            yield load_part(run.path / name)
        except RunDirError:
            continue                    # a part whose notebook failed before storing


def bucket_counts(part: Part, name: str) -> tuple[dict[str, int], int]:
    """(samples per bucket, samples in all) in the measured loop of a stored profile."""
    from ..profiling.categorize import categorize
    from ..profiling.flame import work_stacks

    stacks, _ = part.stacks(name)
    counts = categorize(work_stacks(stacks) or stacks)
    return counts, sum(counts.values())


def profile_figures(run: Run) -> dict[tuple[str, str], tuple[float, float, float, int]]:
    """{(profile name, "share: bucket"): (share, lo, hi, samples)} of every stored profile."""
    out = {}
    for part in _parts(run):
        for name in part.names("stacks"):
            counts, total = bucket_counts(part, name)
            for bucket, k in counts.items():
                lo, hi = wilson(k, total)
                out[(f"{part.name}: {name}", f"share: {bucket}")] = (k / total if total else
                                                                     math.nan, lo, hi, total)
    return out


def memory_figures(run: Run) -> dict[tuple[str, str], tuple[float, float, float, int]]:
    """{(part: variant, figure): (value, value, value, ops)} of every stored memory table."""
    out = {}
    for part in _parts(run):
        if not part.has("rows", MEMORY_TABLE):
            continue
        for row in part.rows(MEMORY_TABLE).to_dict("records"):
            ops = int(row.get("ops") or 0)
            for figure in MEMORY_FIGURES:
                value = row.get(figure)
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                v = float(value)
                out[(f"{part.name}: {row.get('variant')}", figure)] = (v, v, v, ops)
    return out


def compare_figures(kind: str, a: dict, b: dict, *, factor: float,
                    verdict: Any) -> pd.DataFrame:
    """One row per (name, figure) in either run: both values, intervals, B/A, verdict.
    ``verdict(a, a_lo, a_hi, b, b_lo, b_hi, ratio, factor)`` is the comparison's rule."""
    rows = []
    for key in list(a) + [k for k in b if k not in a]:
        name, figure = key
        va, va_lo, va_hi, n_a = a.get(key, (math.nan, math.nan, math.nan, 0))
        vb, vb_lo, vb_hi, n_b = b.get(key, (math.nan, math.nan, math.nan, 0))
        if kind == "profile" and not (va >= MIN_SHARE or vb >= MIN_SHARE):
            continue
        ratio = vb / va if va and not math.isnan(va) and not math.isnan(vb) else math.nan
        if key not in a:
            said = "only in B"
        elif key not in b:
            said = "only in A"
        else:
            said = verdict(va, va_lo, va_hi, vb, vb_lo, vb_hi, ratio, factor)
        rows.append({"kind": kind, "figure": figure, "variant": name, "a": va, "a_lo": va_lo,
                     "a_hi": va_hi, "b": vb, "b_lo": vb_lo, "b_hi": vb_hi, "ratio": ratio,
                     "verdict": said, "n_a": n_a, "n_b": n_b, "trials_a": int(key in a),
                     "trials_b": int(key in b)})
    return pd.DataFrame(rows)


def compare_profiles_and_memory(a: Run, b: Run, *, factor: float, verdict: Any) -> pd.DataFrame:
    """Profile shares by bucket and memory per operation of two runs, as comparison rows."""
    frames = [compare_figures("profile", profile_figures(a), profile_figures(b),
                              factor=factor, verdict=verdict),
              compare_figures("memory", memory_figures(a), memory_figures(b),
                              factor=factor, verdict=verdict)]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
