"""Differential view of two flame profiles: what one variant spends that the other does not.

Both profiles are first aligned at the frame they share, the measured operation (``align``),
and everything below it is a share of that frame's samples in its own profile (runs differ
in length, rate and speed, so raw counts do not compare).  ``diff(a, b)`` lists frames by
share difference; ``diff_svg(a, b)`` draws one tree of both, each frame as wide as the mean
of its two shares and coloured on a diverging scale by ``share in a - share in b``.  When
the two share (almost) nothing below the aligned frame, a colour could only say "different":
the figure says so in words and shows the two flame graphs side by side instead.  Written
here in Python: no GPL difffolded.pl/flamegraph.pl is vendored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import svg as _svg
from .align import Alignment, align, union_tree
from .flame import FlameProfile, flamegraph, frame_name, frames_table
from .stages import Stages

COLUMNS = ["frame", "bucket", "self_a", "self_b", "total_a", "total_b", "delta_self",
           "delta_total"]
MIN_SHARED = 0.05       # below this overlap, the profiles are shown side by side
MIN_SCALE = 0.02        # differences under 2 points never get the strongest colour
MORE_A = (214, 96, 77)  # red: more in a   (the ends of ColorBrewer's RdBu, light enough
MORE_B = (67, 147, 195)  # blue: more in b   for black labels)
SAME = (240, 240, 240)


def _stacks(p: FlameProfile | Mapping[tuple[str, ...], int]) -> Mapping[tuple[str, ...], int]:
    return p.work_stacks if isinstance(p, FlameProfile) else p


def _name(p: FlameProfile | Mapping, default: str) -> str:
    return p.variant if isinstance(p, FlameProfile) else default


def diff(a: FlameProfile | Mapping, b: FlameProfile | Mapping, *,
         min_delta: float = 0.0) -> pd.DataFrame:
    """Frames whose share differs between ``a`` and ``b`` (``delta = a - b``, in shares of
    the samples under the aligned frame of each), largest ``a``-only cost first.  Identical
    profiles give an empty table.  ``min_delta`` drops rows whose self and total deltas are
    both smaller.  ``.attrs["aligned_at"]`` names the frame the shares are relative to."""
    al = align(_stacks(a), _stacks(b))
    fa, fb = frames_table(al.rooted("a")), frames_table(al.rooted("b"))
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
    table = out[keep].sort_values(["delta_self", "delta_total"], ascending=False,
                                  ignore_index=True)[COLUMNS]
    table.attrs["aligned_at"] = al.frame
    return table


def diverging(delta: float, scale: float) -> str:
    """``delta / scale`` in [-1, 1] on the red (more in a) - grey - blue (more in b) scale."""
    t = max(-1.0, min(1.0, delta / scale)) if scale > 0 else 0.0
    end = MORE_A if t > 0 else MORE_B
    r, g, b = (round(s + abs(t) * (e - s)) for s, e in zip(SAME, end))
    return f"rgb({r},{g},{b})"


def _short(frame: str) -> str:
    return frame_name(frame).rsplit(".", 1)[-1] if frame != "all" else "the root"


def _counts(al: Alignment, na: str, nb: str) -> str:
    return (f"{na}: {al.samples_a:,} of its {al.loop_a:,} measured-loop samples are under "
            f"that frame; {nb}: {al.samples_b:,} of {al.loop_b:,}.")


def disjoint_sentence(al: Alignment, na: str, nb: str) -> str:
    """What the side-by-side fallback says: the two share nothing worth colouring."""
    share = f"{100 * al.shared:.1f} %" if al.shared >= 0.0005 else "none"
    return (f"Below {al.frame}, {na} and {nb} share no frames worth comparing (calls made "
            f"by both hold {share} of the samples), so a colour for the difference would "
            f"only say 'different': the two flame graphs are side by side instead, each as "
            f"shares of its own samples under that frame.")


def _side_by_side(al: Alignment, na: str, nb: str, title: str) -> str:
    panels = [_svg.Panel(_svg.tree(st, root=al.frame),
                         heading=f"{n}: {sum(st.values()):,} samples under {_short(al.frame)}")
              for n, st in ((na, al.a), (nb, al.b))]
    note = [disjoint_sentence(al, na, nb), "Click a frame to zoom, the top bar to reset."]
    return _svg.render_panels(panels, title=title, note=note, share_names=[na, nb])


def _differential(al: Alignment, na: str, nb: str, title: str) -> str:
    root = union_tree(al)
    deltas = [abs(x - y) for node in _walk(root) for x, y in [node["s"]]]
    scale = max(max(deltas, default=0.0), MIN_SCALE)
    pts = f"{100 * scale:.0f}" if scale >= 0.1 else f"{100 * scale:.1f}"

    def label(node: dict, _share: float) -> str:
        x, y = node["s"]
        return f"{na} {100 * x:.1f} %, {nb} {100 * y:.1f} %: {100 * (x - y):+.1f} points"

    panel = _svg.Panel(root, color=lambda node: diverging(node["s"][0] - node["s"][1], scale),
                       label=label)
    legend = [(diverging(-scale, scale), f"more in {nb} (-{pts} points)"),
              (diverging(-scale / 2, scale), ""), (diverging(0.0, scale), "same"),
              (diverging(scale / 2, scale), ""),
              (diverging(scale, scale), f"more in {na} (+{pts} points)")]
    note = [f"Aligned at {al.frame}. Colour: the frame's share in {na} minus its share in "
            f"{nb}, of the samples under that frame; width: the mean of the two shares "
            f"(hover for both). " + _counts(al, na, nb),
            "Click a frame to zoom, the top bar to reset."]
    return _svg.render_panels([panel], title=title, note=note, legend=legend,
                              share_names=[na, nb])


def _walk(node: dict):
    yield node
    for child in node["c"].values():
        yield from _walk(child)


def is_disjoint(al: Alignment) -> bool:
    """Too little below the aligned frame in common for a colour-by-difference to mean much."""
    return al.shared < MIN_SHARED


def diff_svg(a: FlameProfile | Mapping, b: FlameProfile | Mapping, *, title: str = "") -> str:
    """The differential flame graph of ``a`` against ``b`` (red: more share in ``a``, blue:
    more in ``b``), or, when they share nothing below the aligned frame, both side by side
    with a sentence saying why."""
    na, nb = _name(a, "a"), _name(b, "b")
    if na == nb:
        na, nb = f"{na} (a)", f"{nb} (b)"
    al = align(_stacks(a), _stacks(b))
    if is_disjoint(al):
        return _side_by_side(al, na, nb, title or f"{na} and {nb}, side by side")
    return _differential(al, na, nb, title or f"{na} vs {nb}: red is more in {na}")


@dataclass
class FlameDiff:
    """Two variants' flame profiles (sampled the same way) and what differs between them."""

    a: FlameProfile
    b: FlameProfile
    table: pd.DataFrame

    @property
    def alignment(self) -> Alignment:
        return align(self.a.work_stacks, self.b.work_stacks)

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
            progress: Stages | None = None, **flame_options: Any) -> FlameDiff:
    """Sample both variants with the same py-spy options (one after the other) and diff them.
    ``progress`` (a ``Stages``) prints each sampling run as it starts and ends."""
    a = flamegraph(variant_a, progress=progress, **flame_options)
    b = flamegraph(variant_b, progress=progress, **flame_options)
    return FlameDiff(a, b, diff(a, b, min_delta=min_delta))
