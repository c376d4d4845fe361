"""The first cell of every shipped notebook: ``lootlab.notebook.setup(size)``.

One call instead of a cell copied into each notebook, so the notebooks agree on how figures
are shown (PNG, inline, which survives the HTML export), which warnings are noise, how wide
tables print, and which report sizes exist.  Outside IPython the display part does nothing, so
a script or a test can call it too.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

PANDAS_OPTIONS = {"display.width": 160, "display.max_columns": 30, "display.precision": 3}


def setup(size: str) -> None:
    """Validate the report ``size``; silence DeprecationWarnings and tqdm's "IProgress not
    found"; show matplotlib figures inline as PNG (under IPython only); set pandas display
    options.

    Call it before the notebook's other imports, so their warnings are silenced too."""
    from .experiments.sizes import check_size

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
    check_size(size)
    _inline_png()
    import pandas as pd

    for key, value in PANDAS_OPTIONS.items():
        pd.set_option(key, value)


def run_part(name: str, run_dir: str | Path = "", *, replay: bool = False,
             params: dict[str, Any] | None = None) -> Any:
    """The notebook's part of a run directory (``lootlab.experiments.rundir.Part``): measure
    into it, then draw from it.  ``lootlab report`` passes ``run_dir`` (OUT/run) and, to
    draw a stored run again without measuring, ``replay``; in JupyterLab ``run_dir`` is
    empty and the part goes under data/results/lab (each notebook replaces its own)."""
    from .experiments.rundir import open_part
    from .paths import results_dir

    where = Path(run_dir) if run_dir else results_dir() / "lab"
    return open_part(where, name, replay=replay, params=params,
                     what="notebooks run in JupyterLab")


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


def health_table(results: Any, *, title: str = "", collapsed: str | None = None,
                 conditions: bool = False) -> Any:
    """The load generator's health, one row per run (a list of ``LoadResult``, or
    {name: [trials]} as ``story.run_steps`` keeps them): offered and achieved rate, send
    lag, the generator's own send error and CPU, errors, and a valid / INVALID badge whose
    details give the reasons, warnings and evidence.  ``conditions``: also each run's RTT
    and CPU limit (rows of a sweep over them are otherwise alike).  Columns in the
    ``experiments.rows`` names.  A ``lootlab.report.format.Table``."""
    from .experiments.rows import condition_cells, generator_error_us
    from .report.format import table

    named = (results.items() if isinstance(results, dict)
             else [(None, [r]) for r in results])
    rows = []
    for name, trials in named:
        for i, res in enumerate(trials if isinstance(trials, list) else [trials], 1):
            cond = condition_cells(getattr(res, "conditions", None), None) if conditions \
                else {}
            rows.append({"variant": name or res.variant,
                         **({"trial": i} if isinstance(results, dict) else {}),
                         **{k: cond[k] for k in ("rtt_ms", "cpu_limit") if k in cond},
                         "offered_per_s": res.offered_rate, "achieved_per_s": res.achieved_rate,
                         "send_lag_p99_ms": res.send_lag_us(99) / 1e3,
                         "generator_error_p99_ms": generator_error_us(res) / 1e3,
                         "generator_cpu": res.generator_cpu, "errors": res.counts["failed"],
                         "valid": res.health})
    return table(rows, title=title, collapsed=collapsed,
                 labels={"offered_per_s": "offered",
                         "generator_error_p99_ms": "generator's own send error p99"})


def __getattr__(name: str) -> Any:
    """``plural``, the one count-aware wording ("1 trial", "3 trials": ``loadgen.units``),
    which the notebooks import from here; loaded on first use, so ``import lootlab.notebook``
    stays light and ``setup`` runs before the load generator's imports."""
    if name == "plural":
        from .loadgen.units import plural
        return plural
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PANDAS_OPTIONS", "health_table", "plural", "run_part", "say", "setup"]
