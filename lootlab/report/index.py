"""The report's front page: links to each notebook's HTML, the story's numbers, the machine."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Iterable

from .environment import Environment
from .execute import NotebookRun

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 24px auto; color: #222; }
h1 { margin-bottom: 0 } .sub { color: #666; margin-top: 4px }
table { border-collapse: collapse; margin: 8px 0 20px } td, th { padding: 4px 12px; text-align: left;
 border-bottom: 1px solid #e4e4e4; vertical-align: top } th { background: #f6f6f6 }
td.num { text-align: right; font-variant-numeric: tabular-nums }
.ok { color: #176f2c; font-weight: 600 } .failed { color: #b00020; font-weight: 600 }
.verdict { background: #f3f7ff; border-left: 4px solid #3367d6; padding: 8px 12px }
.env td:first-child { color: #555; white-space: nowrap }
"""


def _cell(value) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3g}"
        return f"<td class='num'>{html.escape(text)}</td>"
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def summary_table(summary: dict) -> str:
    columns = summary.get("columns") or []
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    rows = "".join("<tr>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>"
                   for row in summary.get("rows", []))
    out = f"<table class='summary'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if summary.get("verdict"):
        out = f"<p class='verdict'>{html.escape(summary['verdict'])}</p>" + out
    return out


def render_index(runs: Iterable[NotebookRun], env: Environment, *, out_dir: Path,
                 total_seconds: float) -> str:
    runs = list(runs)
    lines = []
    for run in runs:
        href = os.path.relpath(run.html, out_dir) if run.html else None
        link = (f"<a href='{html.escape(href)}'>{html.escape(run.title or run.name)}</a>"
                if href else html.escape(run.title or run.name))
        status = ("<span class='ok'>ok</span>" if run.ok else
                  f"<span class='failed'>failed</span>: {html.escape(run.error.one_line())}")
        lines.append(f"<tr><td>{html.escape(run.name)}</td><td>{link}</td>"
                     f"<td class='num'>{run.seconds:.0f} s</td><td>{status}</td></tr>")
    summaries = []
    for run in runs:
        if run.summary:
            summaries.append(f"<h3>{html.escape(run.summary.get('title') or run.title)}</h3>"
                             + summary_table(run.summary))
    if not summaries:
        summaries.append("<p>No notebook published a summary (see the notebooks).</p>")
    env_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                       for k, v in env.rows())
    failed = sum(not r.ok for r in runs)
    state = (f"<span class='failed'>{failed} of {len(runs)} notebooks failed</span>" if failed
             else f"<span class='ok'>all {len(runs)} notebooks ran</span>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lootlab report ({html.escape(env.profile)})</title>
<style>{_STYLE}</style></head><body>
<h1>lootlab report</h1>
<p class="sub">Remote gRPC+TLS service or local memory-mapped index, measured on this machine.
Profile <b>{html.escape(env.profile)}</b>, {html.escape(env.date)} UTC, {state}, {total_seconds:.0f} s in all.</p>
<h2>Notebooks</h2>
<table class="notebooks"><thead><tr><th>file</th><th>report</th><th>run time</th><th>status</th></tr></thead>
<tbody>{''.join(lines)}</tbody></table>
<h2>Summary</h2>
{''.join(summaries)}
<h2>Environment</h2>
<table class="env"><tbody>{env_rows}</tbody></table>
</body></html>
"""


def write_index(runs: Iterable[NotebookRun], env: Environment, out_dir: str | Path, *,
                total_seconds: float) -> Path:
    out_dir = Path(out_dir)
    path = out_dir / "index.html"
    path.write_text(render_index(runs, env, out_dir=out_dir, total_seconds=total_seconds),
                    encoding="utf-8")
    return path
