"""Differential view of two flame profiles: what one variant spends that the other does not.

Sample counts differ between runs (duration, rate, speed), so both profiles are normalised
to shares of their own measured-loop samples first.  ``diff(a, b)`` compares frames;
``diff_svg(a, b)`` draws ``a``'s flame graph coloured by how much more (red) or less (blue)
share each stack prefix has in ``a`` than in ``b``.  Written here in Python: no GPL
difffolded.pl/flamegraph.pl is vendored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import svg as _svg
from .flame import FlameProfile, flamegraph, frames_table

COLUMNS = ["frame", "bucket", "self_a", "self_b", "total_a", "total_b", "delta_self",
           "delta_total"]


def _stacks(p: FlameProfile | Mapping[tuple[str, ...], int]) -> Mapping[tuple[str, ...], int]:
    return p.work_stacks if isinstance(p, FlameProfile) else p


def diff(a: FlameProfile | Mapping, b: FlameProfile | Mapping, *,
         min_delta: float = 0.0) -> pd.DataFrame:
    """Frames whose share differs between ``a`` and ``b`` (``delta = a - b``, in shares of
    each profile's samples), largest ``a``-only cost first.  Identical profiles give an
    empty table.  ``min_delta`` drops rows whose self and total deltas are both smaller."""
    fa, fb = frames_table(_stacks(a)), frames_table(_stacks(b))
    m = fa.merge(fb, on="frame", how="outer", suffixes=("_a", "_b"))
    for col in ("self_share_a", "self_share_b", "total_share_a", "total_share_b"):
        m[col] = m[col].fillna(0.0)
    m["bucket"] = m["bucket_a"].fillna(m["bucket_b"])
    out = pd.DataFrame({
        "frame": m["frame"], "bucket": m["bucket"],
        "self_a": m["self_share_a"], "self_b": m["self_share_b"],
        "total_a": m["total_share_a"], "total_b": m["total_share_b"],
    })
    out["delta_self"] = out["self_a"] - out["self_b"]
    out["delta_total"] = out["total_a"] - out["total_b"]
    keep = (out["delta_self"].abs() > min_delta) | (out["delta_total"].abs() > min_delta)
    return out[keep].sort_values(["delta_self", "delta_total"], ascending=False,
                                 ignore_index=True)[COLUMNS]


def _prefix_shares(stacks: Mapping[tuple[str, ...], int]) -> dict[tuple[str, ...], float]:
    total = sum(stacks.values()) or 1
    acc: Counter = Counter()
    for stack, count in stacks.items():
        for i in range(1, len(stack) + 1):
            acc[stack[:i]] += count
    return {k: v / total for k, v in acc.items()}


def diff_svg(a: FlameProfile | Mapping, b: FlameProfile | Mapping, *, title: str = "") -> str:
    """``a``'s flame graph; red where a stack prefix takes more share in ``a`` than in ``b``,
    blue where less, white where equal (the hover text gives both shares)."""
    sa, sb = _stacks(a), _stacks(b)
    pa, pb = _prefix_shares(sa), _prefix_shares(sb)
    scale = max((abs(pa[k] - pb.get(k, 0.0)) for k in pa), default=0.0) or 1.0

    def color(path: tuple[str, ...], name: str) -> str:
        d = (pa.get(path, 0.0) - pb.get(path, 0.0)) / scale
        level = int(220 * (1 - min(abs(d), 1.0)))
        return f"rgb(255,{level},{level})" if d > 0 else f"rgb({level},{level},255)" if d < 0 \
            else "rgb(245,245,245)"

    def label(path: tuple[str, ...], v: int, total: int) -> str:
        x, y = pa.get(path, 0.0), pb.get(path, 0.0)
        return f"{100 * x:.2f} % here vs {100 * y:.2f} %, {100 * (x - y):+.2f} points"

    na = a.variant if isinstance(a, FlameProfile) else "a"
    nb = b.variant if isinstance(b, FlameProfile) else "b"
    return _svg.render(sa, title=title or f"{na} vs {nb} (red: more in {na})",
                       color=color, label=label)


@dataclass
class FlameDiff:
    """Two variants' flame profiles (sampled the same way) and what differs between them."""

    a: FlameProfile
    b: FlameProfile
    table: pd.DataFrame

    @property
    def svg(self) -> str:
        return diff_svg(self.a, self.b)

    def save(self, directory: str | Path) -> dict[str, Path]:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        paths = {"table": d / "diff.csv", "svg": d / "diff.svg"}
        self.table.to_csv(paths["table"], index=False)
        paths["svg"].write_text(self.svg)
        for p in (self.a, self.b):
            p.save(d / p.variant)
        return paths


def compare(variant_a: str, variant_b: str, *, min_delta: float = 0.005,
            **flame_options: Any) -> FlameDiff:
    """Sample both variants with the same py-spy options (one after the other) and diff them."""
    a = flamegraph(variant_a, **flame_options)
    b = flamegraph(variant_b, **flame_options)
    return FlameDiff(a, b, diff(a, b, min_delta=min_delta))
