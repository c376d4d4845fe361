"""Every notebook page leads with its answer: after the title, its short introduction and the
set-up cells, the first thing the page shows is the verdict, computed in the notebook by a
function of the rows (never a sentence written in advance).

Read from the notebooks' JSON alone (nothing runs): a code cell *shows* something when a
statement outside the measuring blocks is an expression (``say(...)``, ``display(...)``, a
table or a chart as the cell's value).  ``if part.measuring:`` blocks only measure (in the
exported report, which replays the run, they do nothing), and ``lootlab.notebook.setup``
only configures the kernel.  The first statement that shows something must be
``say(...)`` of a name holding the verdict or answer, assigned from a call.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PAGES = sorted(p for p in NOTEBOOKS.glob("0*.ipynb") if p.stem[:2] in
               {"01", "02", "03", "04", "05", "06", "07"})
#: Calls that configure the kernel and show nothing.
SILENT = {"lootlab.notebook.setup"}
#: Words a variable holding a page's answer is named by.
ANSWER_WORDS = ("verdict", "answer")
#: Paragraphs of prose a reader may meet between the title and the answer.
MAX_INTRO_PARAGRAPHS = 2


def _code_cells(path: Path) -> list[tuple[int, str, str]]:
    cells = json.loads(path.read_text())["cells"]
    return [(i, c["cell_type"], "".join(c["source"])) for i, c in enumerate(cells)]


def _measuring_only(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.If) and not stmt.orelse
            and ast.unparse(stmt.test) == "part.measuring")


def _shows(stmts: list[ast.stmt]) -> list[ast.Expr]:
    """The expression statements that show output, in order, outside measuring blocks."""
    out: list[ast.Expr] = []
    for stmt in stmts:
        if _measuring_only(stmt) or isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
            continue
        if isinstance(stmt, ast.Expr):
            call = stmt.value
            if isinstance(call, ast.Call) and ast.unparse(call.func) in SILENT:
                continue
            out.append(stmt)
        for field in ("body", "orelse", "handlers", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list) and not isinstance(stmt, ast.Expr):
                out += _shows([s for s in inner if isinstance(s, ast.stmt)])
    return out


def _assigned_from_call(sources: list[str], name: str) -> bool:
    """``name`` is assigned somewhere in the notebook from an expression holding a call."""
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Assign):
                targets = [n.id for t in node.targets for n in ast.walk(t)
                           if isinstance(n, ast.Name)]
                if name in targets and any(isinstance(n, ast.Call)
                                           for n in ast.walk(node.value)):
                    return True
    return False


def first_shown(path: Path) -> tuple[int, ast.Expr]:
    """The cell index and statement of the first thing a page shows after its set-up."""
    for i, kind, source in _code_cells(path):
        if kind != "code":
            continue
        shown = _shows(ast.parse(source).body)
        if shown:
            return i, shown[0]
    raise AssertionError(f"{path.name} shows nothing")


def lead_problems(path: Path) -> list[str]:
    """Why the page does not lead with its verdict ([] when it does)."""
    cells = _code_cells(path)
    at, stmt = first_shown(path)
    said = ast.unparse(stmt)[:90]
    call = stmt.value
    problems = []
    if not (isinstance(call, ast.Call) and ast.unparse(call.func) == "say"):
        return [f"{path.name}: cell {at} first shows `{said}`, not say(<verdict>)"]
    names = {n.id for a in call.args for n in ast.walk(a) if isinstance(n, ast.Name)}
    answers = sorted(n for n in names if any(w in n.lower() for w in ANSWER_WORDS))
    if not answers:
        problems.append(f"{path.name}: cell {at} first shows `{said}`, which says no "
                        f"verdict or answer")
    sources = [s for _, kind, s in cells if kind == "code"]
    for name in answers:
        if not _assigned_from_call(sources, name):
            problems.append(f"{path.name}: `{name}` is not computed by a call")
    prose = [s for i, kind, s in cells if kind == "markdown" and i < at]
    paragraphs = [p for s in prose for p in s.split("\n\n")
                  if p.strip() and not p.lstrip().startswith("#")]
    if len(paragraphs) > MAX_INTRO_PARAGRAPHS:
        problems.append(f"{path.name}: {len(paragraphs)} paragraphs before the verdict")
    return problems


@pytest.mark.parametrize("path", PAGES, ids=[p.stem for p in PAGES])
def test_every_page_leads_with_its_computed_verdict(path):
    assert lead_problems(path) == []


def test_the_pages_are_found():
    assert {p.stem[:2] for p in PAGES} >= {"01", "02", "03", "04", "05", "06"}


# --- the check itself can fail ---------------------------------------------------------------

def _notebook(tmp_path: Path, *cells: tuple[str, str]) -> Path:
    path = tmp_path / "09-x.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": k, "source": s, "metadata": {}}
                                          for k, s in cells]}))
    return path


def test_a_page_that_shows_its_setup_before_the_verdict_is_caught(tmp_path):
    setup = ("code", ("import lootlab.notebook\nlootlab.notebook.setup(size)\n"
                      "if part.measuring:\n    measure()\n"))
    answer = ("code", "verdict = rule(rows)\nsay(f'**{verdict}**')\ntable(rows)")
    good = _notebook(tmp_path, ("markdown", "# T\n\nOne line."), setup, answer)
    assert lead_problems(good) == []
    late = _notebook(tmp_path, ("markdown", "# T"), setup,
                     ("code", "say(f'ran {n} runs')"), answer)
    assert "not say(<verdict>)" not in lead_problems(late)[0]
    assert "says no verdict" in lead_problems(late)[0]
    table_first = _notebook(tmp_path, ("markdown", "# T"), ("code", "fmt.table(rows)"), answer)
    assert "not say(<verdict>)" in lead_problems(table_first)[0]
    written = _notebook(tmp_path, ("markdown", "# T"),
                        ("code", "verdict = 'mmap wins'\nsay(verdict)"))
    assert "not computed" in lead_problems(written)[0]
    wordy = _notebook(tmp_path, ("markdown", "# T\n\na\n\nb\n\nc"), answer)
    assert "3 paragraphs" in lead_problems(wordy)[0]
