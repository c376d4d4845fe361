"""Drawing a stored run again, for the replay tests (``e2e/test_replay_*``, ``e2e/test_report*``).

The measuring run is the session's quick report (``quick_report`` in conftest): its run
directory and the executed copies papermill wrote while measuring.  A replay executes a
notebook again with ``replay=True`` in a kernel whose first cell refuses to start any
process, and its page must show what the measuring run's page showed (``shown``); a whole
report drawn again must give the same HTML pages (``drawn_pages``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat

from lootlab.report import Report, execute_notebook, notebooks_dir
from lootlab.report.bars import is_progress

# What a page shows; warnings on stderr are not the page.
SHOWN = ("text/plain", "text/html", "text/markdown", "image/png", "image/svg+xml")
GUARD_ID = "replay-guard"

# First cell of a replayed copy: any process started from the kernel (a server, a proxy, a
# cgroup's helper, py-spy, perf, memray, the rebuild worker, S3) raises instead, naming what
# it tried to run.
NO_PROCESSES = '''import _posixsubprocess, os

def _refuse(*args, **kwargs):
    raise RuntimeError(f"a replay started a process: {args[0] if args else kwargs}")

_posixsubprocess.fork_exec = _refuse
os.fork = os.posix_spawn = os.posix_spawnp = _refuse'''


def measured_page(report: Report, name: str) -> Any:
    """Notebook ``name`` as papermill wrote it while the report measured."""
    return nbformat.read(str(report.out_dir / "executed" / f"{name}.ipynb"), as_version=4)


def _guarded(name: str, where: Path) -> Path:
    """A copy of notebook ``name`` whose first cell is ``NO_PROCESSES``."""
    nb = nbformat.read(str(notebooks_dir() / f"{name}.ipynb"), as_version=4)
    cell = nbformat.v4.new_code_cell(NO_PROCESSES)
    cell.id = GUARD_ID
    nb.cells.insert(0, cell)
    copy = where / f"{name}-guarded.ipynb"
    nbformat.write(nb, str(copy))
    return copy


def replay(name: str, out: Path, run_dir: Path, **parameters: Any) -> Any:
    """Notebook ``name`` drawn again from ``run_dir`` (quick size unless ``parameters`` say
    otherwise) in a kernel that refuses to start a process, executed as the report executes
    (same kernel environment), into ``out``; a failing cell fails the test."""
    out.parent.mkdir(parents=True, exist_ok=True)
    run = execute_notebook(_guarded(name, out.parent), out,
                           parameters={"size": "quick", **parameters, "run_dir": str(run_dir),
                                       "replay": True})
    assert run.ok, f"{name} replayed: {run.error.one_line()}"
    return nbformat.read(str(out), as_version=4)


def shown(nb: Any) -> dict[str, list[dict[str, Any]]]:
    """Each code cell's outputs as the page shows them, by cell id: progress lines (how long
    measuring took, which only a measuring run can say), the replay's guard and papermill's
    cell of parameters (whose id is new in every run) left out."""
    return {c.id: [{m: o["data"][m] for m in SHOWN if m in o["data"]}
                   for o in c.outputs
                   if o.output_type in ("display_data", "execute_result") and not is_progress(o)]
            for c in nb.cells if c.cell_type == "code" and c.id != GUARD_ID
            and "injected-parameters" not in c.metadata.get("tags", [])}


def progress_lines(nb: Any) -> list[Any]:
    """The progress outputs a run left: only a measuring run leaves any."""
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if is_progress(o)]


def page_text(nb: Any) -> str:
    """All the text a page shows (figures apart), for phrases a test looks for."""
    return "\n".join(str(v) for outs in shown(nb).values() for o in outs
                     for m, v in o.items() if not m.startswith("image/"))


def assert_same_page(measured: Any, replayed: Any, name: str) -> None:
    """The replay shows exactly what the measuring run showed, cell by cell."""
    measuring, again = shown(measured), shown(replayed)
    assert list(again) == list(measuring), f"{name}: other cells"
    for cell_id, outputs in measuring.items():
        assert again[cell_id] == outputs, f"{name}: cell {cell_id} differs"


def drawn_pages(out: Path) -> dict[str, str]:
    """Every page of the report in ``out``, with what legitimately differs between two
    drawings of one run taken out: timings, the id papermill gives the cell of parameters it
    injects, the report's own directory."""
    pages = {}
    for page in sorted(out.glob("*.html")):
        text = page.read_text()
        text = re.sub(r"\d+(\.\d+)? s\b", "<s>", text)
        text = re.sub(r'id="cell-id=[0-9a-f-]+"', "", text)
        pages[page.name] = text.replace(str(out), "<out>")
    return pages


def page_differences(measured: dict[str, str], again: dict[str, str]) -> dict[str, str]:
    """{page: where it first differs} of two ``drawn_pages`` (a page is megabytes of
    embedded figures: a whole diff would drown the difference)."""
    differ = {}
    for name in sorted(set(measured) | set(again)):
        a, b = measured.get(name), again.get(name)
        if a is None or b is None:
            differ[name] = "only in the measured report" if b is None else "only in the replay"
        elif a != b:
            at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            near = slice(max(0, at - 80), at + 80)
            differ[name] = f"at {at}: measured {a[near]!r}, replay {b[near]!r}"
    return differ
