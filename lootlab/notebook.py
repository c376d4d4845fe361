"""The first cell of every shipped notebook: ``lootlab.notebook.setup(profile)``.

One call instead of a cell copied into each notebook, so the notebooks agree on how figures
are shown (PNG, inline, which survives the HTML export), which warnings are noise, how wide
tables print, and which profiles exist.  Outside IPython the display part does nothing, so
a script or a test can call it too.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

PANDAS_OPTIONS = {"display.width": 160, "display.max_columns": 30, "display.precision": 3}


def check_profile(profile: str) -> str:
    """``profile`` if it is one of ``lootlab.report.PROFILES`` (the one list of them, which
    ``lootlab report`` also offers); else a ValueError naming the allowed ones, since papermill
    passes whatever was typed on the command line."""
    from .report.pipeline import PROFILES

    if profile not in PROFILES:
        allowed = ", ".join(repr(p) for p in PROFILES)
        raise ValueError(f"profile must be one of {allowed}, not {profile!r}")
    return profile


def setup(profile: str) -> None:
    """Validate ``profile``; silence DeprecationWarnings and tqdm's "IProgress not found";
    show matplotlib figures inline as PNG (under IPython only); set pandas display options.

    Call it before the notebook's other imports, so their warnings are silenced too."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
    check_profile(profile)
    _inline_png()
    import pandas as pd

    for key, value in PANDAS_OPTIONS.items():
        pd.set_option(key, value)


def _inline_png() -> None:
    """What ``%matplotlib inline`` and ``%config InlineBackend.figure_formats = ["png"]`` do,
    through IPython's API; nothing when not running under IPython."""
    if "IPython" not in sys.modules:  # not imported, so certainly not running under it
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    shell.enable_matplotlib("inline")
    from matplotlib_inline.config import InlineBackend

    InlineBackend.instance(parent=shell).figure_formats = {"png"}


def say(text: str) -> None:
    """Show ``text`` (Markdown) as the cell's output: what ran, in a sentence, where a
    printed dict or a pid would otherwise stand; printed as-is outside IPython."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(text)
        return
    display(Markdown(text))


def plural(n: float, word: str) -> str:
    """"1 trial", "3 trials", "1.5 s" stays a number with its word: for ``say``."""
    return f"{n:,g} {word}{'' if n == 1 else 's'}"


def health_table(results: Any, *, title: str = "", collapsed: str | None = None,
                 conditions: bool = False) -> Any:
    """The load generator's health, one row per run (a list of ``LoadResult``, or
    {name: [trials]} as ``story.run_steps`` keeps them): offered and achieved rate, send
    lag, the generator's own send error and CPU, errors, and a valid / INVALID badge whose
    details give the reasons, warnings and evidence.  ``conditions``: also each run's RTT
    and CPU limit (rows of a sweep over them are otherwise alike).
    A ``lootlab.report.format.Table``."""
    from .report.format import table
    from .story import conditions_cells

    named = (results.items() if isinstance(results, dict)
             else [(None, [r]) for r in results])
    rows = []
    for name, trials in named:
        for i, res in enumerate(trials if isinstance(trials, list) else [trials], 1):
            cond = conditions_cells(res) if conditions else {}
            rows.append({"variant": name or res.variant,
                         **({"trial": i} if isinstance(results, dict) else {}),
                         **{k: cond[k] for k in ("rtt_ms", "cpu_limit") if k in cond},
                         "rate": res.offered_rate, "achieved_rate": res.achieved_rate,
                         "send_lag_p99_us": res.send_lag_us(99),
                         "generator_lag_p99_us": res.percentile_us(99, "generator_lag"),
                         "generator_cpu": res.generator_cpu, "errors": res.counts["failed"],
                         "valid": res.health})
    return table(rows, title=title, collapsed=collapsed,
                 labels={"rate": "offered",
                         "generator_lag_p99_us": "generator's own send error p99"})


def by_rate(results: list[Any], prefix: str = "") -> dict[str, list[Any]]:
    """``LoadResult``s named "<prefix><variant> at <rate>/s", the repeats of a name being its
    trials: how ``keep`` names a sweep's results."""
    named: dict[str, list[Any]] = {}
    for res in results:
        named.setdefault(f"{prefix}{res.variant} at {res.offered_rate:g}/s", []).append(res)
    return named


def keep(run_dir: str | Path | None, results: dict[str, Any], *, what: str,
         params: dict[str, Any] | None = None) -> Path | None:
    """Save a notebook's ``LoadResult``s (name -> one result or a list of trials, see
    ``by_rate``) as a run
    directory (``lootlab.compare.save_run``) when ``run_dir`` is set: ``lootlab report``
    passes one per notebook, so two reports can be compared with ``lootlab compare``.  In
    JupyterLab ``run_dir`` is empty by default and nothing is written."""
    if not run_dir:
        return None
    from .compare import save_run

    return save_run(run_dir, results, what=what, params=params)


__all__ = ["PANDAS_OPTIONS", "by_rate", "check_profile", "health_table", "keep", "plural",
           "say", "setup"]
