"""One colour per variant, the same on every page: a reader who learnt that ``mmap`` is
green in the story chart finds it green in the spectrum, the sweep, the CPU buckets and
the memory panels.

The registered variants (``lootlab.variants.VARIANTS``) have fixed colours from the
Okabe-Ito palette (distinguishable with the common colour-vision deficiencies); any other
name gets a colour from a second palette chosen by a hash of the name, so it too is the
same in every figure and every run.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

#: The registered variants' colours (the story's order: the slow start warm, the fix cool).
VARIANT_COLORS: dict[str, str] = {
    "grpc-tls-fresh": "#D55E00",     # vermilion
    "grpc-tls-resumed": "#E69F00",   # orange
    "grpc-tls-pooled": "#CC79A7",    # reddish purple
    "grpc-tls-packed": "#0072B2",    # blue
    "grpc-plain": "#56B4E9",         # sky blue
    "mmap": "#009E73",               # bluish green
}

#: Colours for names not registered above: none close to one of those, nor grey (grey
#: marks what is not a variant: thin tails, targets, invalid runs).
FALLBACK_COLORS: tuple[str, ...] = (
    "#8C564B", "#9467BD", "#BCBD22", "#000000", "#AD1457", "#1A237E",
)


def variant_color(name: str) -> str:
    """The colour of variant ``name``: fixed for registered ones, else a hash of the name."""
    if name in VARIANT_COLORS:
        return VARIANT_COLORS[name]
    return FALLBACK_COLORS[zlib.crc32(str(name).encode()) % len(FALLBACK_COLORS)]


def variant_colors(names: Iterable[str]) -> dict[str, str]:
    """Colours for the variants one figure draws.  Each is ``variant_color(name)``, except
    that an unregistered name whose hashed colour another variant of the same figure already
    has takes the next free fallback colour (names taken in sorted order, so the answer does
    not depend on the order given)."""
    names = list(dict.fromkeys(names))
    colors = {n: VARIANT_COLORS[n] for n in names if n in VARIANT_COLORS}
    used = set(colors.values())
    for name in sorted(n for n in names if n not in VARIANT_COLORS):
        start = FALLBACK_COLORS.index(variant_color(name))
        for k in range(len(FALLBACK_COLORS)):
            candidate = FALLBACK_COLORS[(start + k) % len(FALLBACK_COLORS)]
            if candidate not in used or k == len(FALLBACK_COLORS) - 1:
                break
        colors[name] = candidate
        used.add(candidate)
    return {n: colors[n] for n in names}


__all__ = ["FALLBACK_COLORS", "VARIANT_COLORS", "variant_color", "variant_colors"]
