"""Notebook execution and self-contained HTML reports (``lootlab report``).

``execute`` runs a notebook (a fresh kernel to measure, a shared one to draw a stored run again), ``export`` turns it into offline HTML,
``environment`` records the machine, ``index`` writes the front page, ``pipeline`` ties them
together.  ``publish_summary`` and ``interactive_svg`` are what notebooks call.
"""

from __future__ import annotations

from .embed import interactive_svg, interactive_svg_html
from .environment import Environment
from .environment import collect as collect_environment
from .execute import CellError, NotebookRun, execute_notebook
from .export import export_html, external_urls
from .pipeline import (
    Report,
    ReportError,
    build_report,
    find_notebooks,
    notebooks_dir,
    run_report,
)
from .summary import publish_summary, read_summary

__all__ = [
    "build_report", "run_report", "Report", "ReportError", "find_notebooks",
    "notebooks_dir", "execute_notebook", "NotebookRun", "CellError", "export_html",
    "external_urls", "Environment", "collect_environment", "publish_summary", "read_summary",
    "interactive_svg", "interactive_svg_html",
]
