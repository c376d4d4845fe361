"""Where a run was measured, and the plain-JSON forms a saved result needs: kept out of
``results`` so that module stays about what a run measured."""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from typing import Any

import numpy as np


def _num(x: float):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _denum(x):
    return math.nan if x is None else x


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, (float, np.floating)):
            v = None if math.isnan(v) else float(v)
        elif isinstance(v, (np.bool_,)):
            v = bool(v)
        out[k] = v
    return out


def environment() -> dict[str, Any]:
    """Where the run was measured; ``loadgen.run`` adds ``noise`` (the machine sampled before
    and after, ``lootlab.noise.NoiseCheck.to_dict``) and ``noisy``."""
    from .. import __version__
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "lootlab": __version__,
            "machine": platform.machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "loadavg": load}
