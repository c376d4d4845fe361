"""The comparison of two runs as one self-contained HTML page (``lootlab compare --html``).

Draws only: the numbers come from ``lootlab.experiments.comparison.compare_runs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .templating import render

if TYPE_CHECKING:
    import pandas as pd

    from ..experiments.comparison import Run


def _run_view(label: str, run: Run) -> dict[str, Any]:
    env = run.meta.get("env") or {}
    return {"label": label, "path": str(run.path), "what": run.meta.get("what", ""),
            "created": run.meta.get("created", ""),
            "env": [(str(k), str(v)) for k, v in env.items()],
            "results": [{"name": name, "trials": len(trials),
                         "valid": all(r.health.valid for r in trials)}
                        for name, trials in run.results.items()]}


def comparison_html(frame: pd.DataFrame, run_a: Run, run_b: Run, *,
                    confidence: float = 0.95, factor: float = 1.1) -> str:
    """The page as a string: both runs' descriptions, then one table row per figure."""
    from ..experiments.comparison import caveats, display_frame

    shown = display_frame(frame)
    rows = [dict(zip(shown.columns, values), css=values[-1].replace(" ", "-"))
            for values in shown.itertuples(index=False)]
    counts = frame["verdict"].value_counts()
    return render("compare.html.j2", runs=[_run_view("A", run_a), _run_view("B", run_b)],
                  columns=list(shown.columns), rows=rows, confidence=confidence,
                  factor=factor, counts=list(counts.items()),
                  caveats=caveats(run_a, "A") + caveats(run_b, "B"))


def write_comparison(path: str | Path, frame: pd.DataFrame, run_a: Run, run_b: Run, *,
                     confidence: float = 0.95, factor: float = 1.1) -> Path:
    """Write ``comparison_html`` to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(comparison_html(frame, run_a, run_b, confidence=confidence,
                                    factor=factor),
                    encoding="utf-8")
    return path
