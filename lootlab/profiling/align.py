"""Aligning two flame profiles at the frame they share, so their shares can be compared.

Two py-spy runs of different variants have nothing in common above the workload's measured
loop that is worth comparing (the first frame is even a libc address that ASLR moves), and
below it the stacks differ by client.  ``align`` cuts every stack at the measured loop
(``_measured_ops``), then steps down to the measured operation (the loop's call into the
client, ``_overlay_op.<locals>.op``) when both profiles spend most of their loop there, and
expresses everything below that frame as shares of the frame's own samples.  Native frames
without a symbol (``0x7f.. (lib.so)``) are renamed by library, runs of them merged: their
addresses differ from run to run and would otherwise never match.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from .flame import WORK_FRAME, loop_stacks

Stacks = dict[tuple[str, ...], int]

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]+ \((?P<lib>[^)]*)\)$")


def normalise(stack: tuple[str, ...]) -> tuple[str, ...]:
    """Bare native addresses as ``[unnamed] (lib)``, consecutive repeats of them merged."""
    out: list[str] = []
    for frame in stack:
        m = _ADDRESS.match(frame)
        name = f"[unnamed] ({m.group('lib')})" if m else frame
        if m and out and out[-1] == name:
            continue
        out.append(name)
    return tuple(out)


def below(stacks: Mapping[tuple[str, ...], int],
          anchor: str = WORK_FRAME) -> tuple[str | None, Stacks]:
    """``(anchor frame, stacks below it, normalised)``; ``(None, {})`` if no stack has it."""
    name, cut = loop_stacks(stacks, anchor)
    return name, _normalised(cut)


def _normalised(stacks: Mapping[tuple[str, ...], int]) -> Stacks:
    out: Counter = Counter()
    for stack, count in stacks.items():
        out[normalise(stack)] += count
    return dict(out)


def child_shares(stacks: Mapping[tuple[str, ...], int]) -> dict[str, float]:
    """Share of all samples under each first frame (samples with no frame left out)."""
    total = sum(stacks.values()) or 1
    acc: Counter = Counter()
    for stack, count in stacks.items():
        if stack:
            acc[stack[0]] += count
    return {k: v / total for k, v in acc.items()}


def overlap(a: Mapping[tuple[str, ...], int], b: Mapping[tuple[str, ...], int]) -> float:
    """How much of what lies below the aligned frame the two share: the sum, over the calls
    made from it in both, of the smaller of the two shares (0 = nothing, 1 = the same)."""
    ca, cb = child_shares(a), child_shares(b)
    return sum(min(ca[k], cb[k]) for k in ca.keys() & cb.keys())


@dataclass(frozen=True)
class Alignment:
    """Two profiles cut at their shared frame: ``a`` and ``b`` hold the stacks below it
    (relative to it), ``frame`` names it, ``path`` leads to it from the measured loop."""

    frame: str
    path: tuple[str, ...]
    a: Stacks
    b: Stacks
    shared: float              # overlap(a, b)
    loop_a: int                # samples in the measured loop (or all, without one)
    loop_b: int

    @property
    def samples_a(self) -> int:
        return sum(self.a.values())

    @property
    def samples_b(self) -> int:
        return sum(self.b.values())

    def rooted(self, which: str) -> Stacks:
        """``a`` or ``b`` as stacks that start with the aligned frame (for frame tables)."""
        stacks = self.a if which == "a" else self.b
        return {(self.frame, *s): c for s, c in stacks.items()}


def _step(stacks: Stacks, child: str) -> Stacks:
    return {s[1:]: c for s, c in stacks.items() if s and s[0] == child}


def align(a: Mapping[tuple[str, ...], int], b: Mapping[tuple[str, ...], int], *,
          anchor: str = WORK_FRAME, min_share: float = 0.5) -> Alignment:
    """Align ``a`` and ``b`` at the measured loop, then at the measured operation: the call
    from the loop that both make and that holds at least ``min_share`` of each one's loop
    samples.  Without the loop frame in both, they are aligned at the root ("all")."""
    name_a, ra = below(a, anchor)
    name_b, rb = below(b, anchor)
    if name_a is None or name_b is None:
        ra, rb = _normalised(a), _normalised(b)
        return Alignment("all", (), ra, rb, overlap(ra, rb), sum(ra.values()), sum(rb.values()))
    loop_a, loop_b = sum(ra.values()), sum(rb.values())
    ca, cb = child_shares(ra), child_shares(rb)
    common = [k for k in ca.keys() & cb.keys() if min(ca[k], cb[k]) >= min_share]
    frame, path = name_a, (name_a,)
    if common:
        op = max(common, key=lambda k: (min(ca[k], cb[k]), k))
        ra, rb = _step(ra, op), _step(rb, op)
        frame, path = op, (name_a, op)
    return Alignment(frame, path, ra, rb, overlap(ra, rb), loop_a, loop_b)


def prefix_shares(stacks: Mapping[tuple[str, ...], int]) -> dict[tuple[str, ...], float]:
    """Share of all samples at or below each stack prefix (the root ``()`` is 1)."""
    total = sum(stacks.values()) or 1
    acc: Counter = Counter()
    for stack, count in stacks.items():
        for i in range(len(stack) + 1):
            acc[stack[:i]] += count
    return {k: v / total for k, v in acc.items()}


def union_tree(al: Alignment) -> dict:
    """One tree of every path below the aligned frame in either profile: each node's width
    is the mean of its two shares, ``"s"`` holds the shares ``(in a, in b)``."""
    pa, pb = prefix_shares(al.a), prefix_shares(al.b)
    root = {"n": al.frame, "v": 1.0, "c": {}, "p": (), "s": (1.0, 1.0)}
    for path in sorted(pa.keys() | pb.keys(), key=len):
        if not path:
            continue
        node = root
        for depth in range(len(path) - 1):
            node = node["c"][path[depth]]
        x, y = pa.get(path, 0.0), pb.get(path, 0.0)
        node["c"][path[-1]] = {"n": path[-1], "v": (x + y) / 2, "c": {}, "p": path, "s": (x, y)}
    return root
