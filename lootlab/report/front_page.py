"""The report's front page: the answer first (the story's chart and the first sentences of
its verdict), then the evidence (each notebook's summary, linked), then the machine.

The page is ``templates/index.html.j2``; this module only turns runs and summaries into the
plain values it shows (autoescaped there).  No prose is written here: the words on the page
are the notebooks' own published verdicts, picked, never paraphrased.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ..experiments.verdicts import INVALID_MEANS
from ..noise import NoiseCheck
from .cells import number
from .conditions import label
from .environment import Environment
from .execute import NotebookRun
from .export import smoke_note_html
from .summary import figure_uri
from .templating import environment, render

#: How many of the story's verdict sentences the page leads with; the rest follow its table.
LEAD_SENTENCES = 3

# A sentence ends at . ! or ? followed by white space; "0.50 ms", "3.0x" and "95 -> 78" have
# no space after their dot, so they never split.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def sentences(text: str) -> list[str]:
    """``text`` cut into its sentences (white space between them dropped)."""
    text = " ".join(str(text or "").split())
    return [s for s in _SENTENCE_END.split(text) if s] if text else []


def _cell(value: Any) -> tuple[str, bool]:
    """(text, numeric?): numbers as every page and the CLI write them (``cells.number``),
    aligned right."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return number(value), True
    return ("" if value is None else str(value)), False


def _figure_view(summary: dict) -> dict[str, Any] | None:
    figure = summary.get("figure")
    if not isinstance(figure, dict) or not figure.get("data"):
        return None
    return {"uri": figure_uri(figure), "alt": figure.get("alt") or "",
            "width": int(figure.get("width") or 0) or None}


def _summary_view(summary: dict, *, title: str = "", name: str = "",
                  href: str | None = None) -> dict[str, Any]:
    columns = [str(c) for c in summary.get("columns") or []]
    return {"title": summary.get("title") or title, "verdict": summary.get("verdict") or "",
            "conditions": conditions_of(summary),
            "instrument": str(summary.get("instrument") or ""),
            "name": name, "href": href, "figure": _figure_view(summary), "columns": columns,
            "rows": [[_cell(row.get(c)) for c in summary.get("columns") or []]
                     for row in summary.get("rows", [])]}


def conditions_of(summary: dict | None) -> str:
    """What a published summary's numbers were measured under, in words; a summary that
    names none (published before conditions existed, or by a notebook that adds none) ran
    on loopback with no CPU limit.  "" without a summary (a failed notebook's run)."""
    if not summary:
        return ""
    return label(summary.get("conditions"))


def summary_table(summary: dict) -> str:
    """One notebook's published summary (``read_summary``) as the index page's table."""
    macro = environment().get_template("macros.html.j2").module.summary_table
    return str(macro(_summary_view(summary)))


def lead_index(summaries: list[dict[str, Any]]) -> int | None:
    """Which summary the page leads with: the first that published a figure (the story's
    chart), else the first notebook's when it has a verdict (the notebooks are numbered so
    that the first tells the story); None when neither."""
    for i, s in enumerate(summaries):
        if s["figure"]:
            return i
    if summaries and summaries[0]["verdict"]:
        return 0
    return None


def answer_and_details(verdict: str) -> tuple[str, list[str]]:
    """A published verdict cut into its answer and the details after it: a verdict whose
    first paragraph is its answer (a blank line after it, each detail on a line of its own,
    as ``story_text.verdict`` writes it) is cut there; any other into its first
    ``LEAD_SENTENCES`` sentences and the rest, one sentence per detail."""
    text = str(verdict or "").strip()
    head, blank, rest = text.partition("\n\n")
    if blank and len(sentences(head)) <= LEAD_SENTENCES:
        return " ".join(sentences(head)), [" ".join(line.split())
                                           for line in rest.splitlines() if line.strip()]
    said = sentences(text)
    return " ".join(said[:LEAD_SENTENCES]), said[LEAD_SENTENCES:]


def lead(summaries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The answer at the top of the page, and the lead summary trimmed so nothing is said
    twice: its section below keeps the table and only the verdict's details, as a list."""
    i = lead_index(summaries)
    if i is None:
        return None
    s = summaries[i]
    said, more = answer_and_details(s["verdict"])
    answer = {"title": s["title"], "name": s["name"], "href": s["href"], "figure": s["figure"],
              "verdict": said, "conditions": s.get("conditions", ""),
              "instrument": s.get("instrument", "")}
    summaries[i] = {**s, "figure": None, "verdict": "", "more": more,
                    "lead": True, "instrument": ""}     # said once, with the answer
    return answer


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
    hrefs = {run.name: os.path.relpath(run.html, out_dir) if run.html else None for run in runs}
    rows = [{"name": run.name, "title": run.title or run.name, "seconds": run.seconds,
             "href": hrefs[run.name], "conditions": conditions_of(run.summary),
             "error": run.error.one_line() if run.error else None} for run in runs]
    summaries = [_summary_view(run.summary, title=run.title, name=run.name,
                               href=hrefs[run.name])
                 for run in runs if run.summary]
    answer = lead(summaries)
    return render("index.html.j2", size=env.size, date=env.date, runs=rows,
                  answer=answer, summaries=summaries, env_rows=env.rows(),
                  invalid_means=INVALID_MEANS,
                  total_runs=len(runs), warnings=warnings(runs, env),
                  smoke_note=Markup(smoke_note_html(env.size)),   # escaped by smoke_note_html
                  failed=sum(not r.ok for r in runs), total_seconds=total_seconds)


def write_index(runs: Iterable[NotebookRun], env: Environment, out_dir: str | Path, *,
                total_seconds: float) -> Path:
    out_dir = Path(out_dir)
    path = out_dir / "index.html"
    path.write_text(render_index(runs, env, out_dir=out_dir, total_seconds=total_seconds),
                    encoding="utf-8")
    return path
