"""The report's front page: links to each notebook's HTML, the story's numbers, the machine.

The page is ``templates/index.html.j2``; this module only turns runs and summaries into the
plain values it shows (autoescaped there).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from markupsafe import Markup

from ..noise import NoiseCheck
from .environment import Environment
from .execute import NotebookRun
from .export import smoke_note_html
from .templating import environment, render


def _cell(value: Any) -> tuple[str, bool]:
    """(text, numeric?): numbers get thousands separators and right alignment."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3g}"), True
    return ("" if value is None else str(value)), False


def _summary_view(summary: dict, *, title: str = "") -> dict[str, Any]:
    columns = [str(c) for c in summary.get("columns") or []]
    return {"title": summary.get("title") or title, "verdict": summary.get("verdict") or "",
            "columns": columns,
            "rows": [[_cell(row.get(c)) for c in summary.get("columns") or []]
                     for row in summary.get("rows", [])]}


def summary_table(summary: dict) -> str:
    """One notebook's published summary (``read_summary``) as the index page's table."""
    macro = environment().get_template("macros.html.j2").module.summary_table
    return str(macro(_summary_view(summary)))


def flagged_rows(summary: dict) -> list[str]:
    """The rows of a published summary whose ``run`` column says INVALID or noisy, each
    named by its first column (the step, the variant, the source)."""
    columns = list(summary.get("columns") or [])
    name_col = next((c for c in columns if c != "run"), None)
    flagged = []
    for row in summary.get("rows", []):
        run = str(row.get("run") or "").strip()
        if run.upper().startswith("INVALID") or "noisy" in run.lower():
            flagged.append(str(row.get(name_col, "?")) if name_col else "?")
    return flagged


def warnings(runs: Iterable[NotebookRun], env: Environment | None = None) -> list[dict[str, str]]:
    """What the banner at the top of the index says: one entry per section whose headline
    numbers come from an INVALID run or a noisy machine, and the whole run when the machine
    was noisy at its start or end."""
    out = []
    for run in runs:
        problems = []
        rows = flagged_rows(run.summary) if run.summary else []
        if rows:
            problems.append(f"{len(rows)} of {len(run.summary.get('rows', []))} rows from "
                            f"INVALID or noisy runs ({', '.join(rows)})")
        check = run.extra.get("noise")
        if check and check.get("noisy"):
            problems.append("the machine was busy around it ("
                            + NoiseCheck.from_dict(check).short() + ")")
        if problems:
            out.append({"section": (run.summary or {}).get("title") or run.title or run.name,
                        "problem": "; ".join(problems)})
    if env is not None and env.noise is not None and env.noise.noisy:
        out.append({"section": "the whole report run",
                    "problem": f"the machine was busy at its start or end ({env.noise.short()})"})
    return out


def render_index(runs: Iterable[NotebookRun], env: Environment, *, out_dir: Path,
                 total_seconds: float) -> str:
    runs = list(runs)
    rows = [{"name": run.name, "title": run.title or run.name, "seconds": run.seconds,
             "href": os.path.relpath(run.html, out_dir) if run.html else None,
             "error": run.error.one_line() if run.error else None} for run in runs]
    summaries = [_summary_view(run.summary, title=run.title) for run in runs if run.summary]
    return render("index.html.j2", profile=env.profile, date=env.date, runs=rows,
                  summaries=summaries, env_rows=env.rows(), total_runs=len(runs),
                  warnings=warnings(runs, env),
                  smoke_note=Markup(smoke_note_html(env.profile)),   # escaped by smoke_note_html
                  failed=sum(not r.ok for r in runs), total_seconds=total_seconds)


def write_index(runs: Iterable[NotebookRun], env: Environment, out_dir: str | Path, *,
                total_seconds: float) -> Path:
    out_dir = Path(out_dir)
    path = out_dir / "index.html"
    path.write_text(render_index(runs, env, out_dir=out_dir, total_seconds=total_seconds),
                    encoding="utf-8")
    return path
