"""Run one notebook top to bottom in a fresh kernel with papermill, keeping what it produced.

papermill injects the parameters after the cell tagged ``parameters`` and, when a cell
raises, still writes the executed notebook (outputs up to the failing cell plus its
traceback), which the report exports so the failure can be read.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from .bars import _took

# Kernels inherit the environment; a headless MPLBACKEND (tests set Agg) would turn every
# figure into "<Figure ...>" text.  The kernel always draws inline.  Progress bars are for
# people watching a live kernel; in a report they are noise (and a warning without ipywidgets).
_KERNEL_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYTHONUNBUFFERED": "1",
               "TQDM_DISABLE": "1"}


@dataclass
class CellError:
    """The first cell that raised: enough to name it on one line."""

    cell_index: int
    ename: str
    evalue: str
    source: str

    def one_line(self) -> str:
        first = next((ln for ln in self.source.splitlines() if ln.strip()), "")
        return f"cell {self.cell_index} ({first.strip()[:60]!r}) raised {self.ename}: {self.evalue}"


@dataclass
class NotebookRun:
    """One notebook's execution: where its executed copy is, how long it took, what failed."""

    name: str
    source: Path
    executed: Path
    seconds: float
    error: CellError | None = None
    html: Path | None = None
    summary: dict | None = None
    title: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


@contextmanager
def _kernel_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in _KERNEL_ENV}
    os.environ.update(_KERNEL_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def first_error(notebook: Any) -> CellError | None:
    """The first error output in an executed notebook (papermill's own banner cell skipped)."""
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return CellError(i, output.get("ename", "Error"), output.get("evalue", ""),
                                 cell.source)
    return None


def notebook_title(notebook: Any, default: str) -> str:
    """The first markdown heading, the way a reader would name the notebook."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return default


@dataclass
class CellProgress:
    """Where a running notebook is: its ``number``-th code cell of ``total`` has been running
    for ``seconds``; ``work`` is the cell's own progress (``report.bars`` state: desc, unit,
    done, total, started, updated) when it shows one, ``about`` the cell's first comment
    line (or the heading of its section) otherwise.  Never its code: a line of code cut at
    60 characters says nothing to a reader of a log."""

    number: int
    total: int
    seconds: float
    about: str = ""
    work: dict[str, Any] | None = None
    now: float = field(default_factory=time.time)

    def describe(self) -> str:
        """"cell 5 of 10, 26 s in; story steps: 7 of 24 steps done, about 1 min 10 s left"."""
        head = f"cell {self.number} of {self.total}, {_took(self.seconds)} in"
        if self.work:
            return f"{head}; {work_words(self.work, self.now)}"
        return f"{head}: {self.about}" if self.about else head


def work_words(work: dict[str, Any], now: float | None = None) -> str:
    """A progress state (``Progress.state``) in words: how many units of how many are done
    and, once one is, the time left at the pace so far."""
    desc, unit = str(work.get("desc") or "work"), str(work.get("unit") or "step")
    done, total = int(work.get("done") or 0), int(work.get("total") or 0)
    text = f"{desc}: {done:,} of {total:,} {unit}{'' if total == 1 else 's'} done"
    started, updated = work.get("started"), work.get("updated")
    if done <= 0 or not isinstance(started, (int, float)) or not isinstance(updated, (int, float)):
        return (text + ", time left not known yet") if done < total else text
    if done >= total:
        return text
    pace = max(0.0, updated - started) / done
    left = pace * (total - done) - max(0.0, (now or time.time()) - updated)
    return text + (f", about {_took(left)} left" if left >= 1 else ", about to finish")


def _latest_work(outputs: list[Any]) -> dict[str, Any] | None:
    """The cell's last progress state still counting (the one being worked on)."""
    states = [s for s in (((o.get("metadata") or {}).get("lootlab")) or {}
                          for o in outputs or [])
              if s.get("progress") and isinstance(s.get("total"), int)]
    counting = [s for s in states if int(s.get("done") or 0) < s["total"]]
    return (counting or states or [None])[-1]


def _about(source: str, heading: str) -> str:
    """The cell's first whole-line comment, else the heading of the section it is in."""
    for line in source.splitlines():
        if line.strip().startswith("#"):
            words = line.strip().lstrip("#").strip()
            if words:
                return words if len(words) <= 80 else words[:79].rsplit(" ", 1)[0] + " …"
    return heading


def running_cell(executed: Path, now: float | None = None) -> CellProgress | None:
    """The running code cell of a notebook papermill is executing into ``executed`` (it saves
    the file as each cell starts, and every few seconds while one runs and prints), or None
    when none is running or the file is mid-write."""
    from datetime import datetime

    try:
        node = json.loads(executed.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    now = time.time() if now is None else now
    cells = node.get("cells", [])
    code = [c for c in cells if c.get("cell_type") == "code"]
    heading, number = "", 0
    for cell in cells:
        source = cell.get("source") or ""
        source = "".join(source) if isinstance(source, list) else source
        if cell.get("cell_type") == "markdown":
            heading = next((ln.lstrip("#").strip() for ln in source.splitlines()
                            if ln.startswith("#")), heading)
            continue
        if cell.get("cell_type") != "code":
            continue
        number += 1
        meta = (cell.get("metadata") or {}).get("papermill") or {}
        if meta.get("status") == "running" and meta.get("start_time"):
            started = datetime.fromisoformat(meta["start_time"]).timestamp()
            return CellProgress(number, len(code), now - started,
                                _about(source, heading), _latest_work(cell.get("outputs")),
                                now)
    return None


@contextmanager
def _watch(executed: Path, report: Callable[[CellProgress], None] | None,
           every: float) -> Iterator[None]:
    """Call ``report`` every ``every`` seconds with the running cell while the block runs:
    a long cell shows up in a log as whole lines, not as silence."""
    if report is None:
        yield
        return
    done = threading.Event()

    def loop() -> None:
        while not done.wait(every):
            cell = running_cell(executed)
            if cell is not None and cell.seconds >= every / 2:
                report(cell)

    thread = threading.Thread(target=loop, name="lootlab-report-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def execute_notebook(source: str | Path, executed: str | Path, *, parameters: dict[str, Any],
                     cwd: str | Path | None = None, cell_timeout: float = 900,
                     kernel_name: str = "python3", cell_bar: bool = False,
                     on_long_cell: Callable[[CellProgress], None] | None = None,
                     every: float = 30.0) -> NotebookRun:
    """Execute ``source`` into ``executed`` (never back into ``source``); never raises on a
    failing cell: the failure is in the returned run's ``error``.

    ``cell_bar`` shows papermill's bar of cells (for a terminal: it redraws with ``\\r``);
    ``on_long_cell`` is called every ``every`` seconds with the cell still running (for a
    log: one whole line each time)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source, executed = Path(source), Path(executed)
    executed.parent.mkdir(parents=True, exist_ok=True)
    executed.unlink(missing_ok=True)    # an earlier run's copy would read as this one's state
    started = time.perf_counter()
    error: CellError | None = None
    raised: Exception | None = None
    bar = {"desc": source.stem, "leave": False, "disable": None} if cell_bar else False
    with _kernel_env(), _watch(executed, on_long_cell, every):
        try:
            papermill.execute_notebook(
                str(source), str(executed), parameters=parameters, kernel_name=kernel_name,
                cwd=str(cwd or executed.parent), progress_bar=bar, log_output=False,
                execution_timeout=cell_timeout, request_save_on_cell_execute=True,
                # the running cell's outputs (its progress) reach the file the log reads
                autosave_cell_every=max(1, int(every / 10)),
                # the kernel's start-up warning about TCP on loopback is noise in a report
                extra_arguments=["--IPKernelApp.log_level=ERROR"])
        except PapermillExecutionError as exc:
            error = CellError(exc.exec_count or -1, exc.ename, exc.evalue, "")
        except Exception as exc:  # noqa: BLE001 (a cell timeout, a dead kernel: a failed notebook)
            raised = exc
    seconds = time.perf_counter() - started
    node = nbformat.read(str(executed), as_version=4) if executed.exists() else None
    found = first_error(node) if node is not None else None
    if raised is not None:
        # the cell's own output then only shows how it was stopped (KeyboardInterrupt)
        lines = str(raised).strip().splitlines()
        error = CellError(found.cell_index if found else -1, type(raised).__name__,
                          lines[0] if lines else "", found.source if found else "")
    elif found is not None:
        error = found
    from .summary import read_summary

    return NotebookRun(name=source.stem, source=source, executed=executed, seconds=seconds,
                       error=error, summary=read_summary(node) if node is not None else None,
                       title=notebook_title(node, source.stem) if node is not None else source.stem)


@contextmanager
def shared_kernel(cwd: str | Path, kernel_name: str = "python3") -> Iterator[Any]:
    """One kernel for drawing several notebooks from a stored run: the imports (pandas,
    matplotlib, lootlab: seconds each time) are paid once.  Only for replays: a measuring
    notebook gets a fresh kernel, so one notebook's threads or memory never touch the next
    one's numbers."""
    from jupyter_client.manager import KernelManager

    with _kernel_env():
        km = KernelManager(kernel_name=kernel_name)
        km.start_kernel(cwd=str(cwd), extra_arguments=["--IPKernelApp.log_level=ERROR"])
    try:
        yield km
    finally:
        km.shutdown_kernel(now=True)


#: Run first in a shared kernel: the previous notebook's names are gone, so a notebook that
#: reads a name it never set fails here as it would in a fresh kernel.
_RESET = "get_ipython().run_line_magic('reset', '-f')"


def replay_notebook(source: str | Path, executed: str | Path, *, parameters: dict[str, Any],
                    kernel: Any, cell_timeout: float = 300) -> NotebookRun:
    """Execute ``source`` into ``executed`` in ``kernel`` (``shared_kernel``), its names
    reset first; like ``execute_notebook``, a failing cell is the run's ``error``."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbformat.v4 import new_code_cell
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    source, executed = Path(source), Path(executed)
    executed.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    node = parameterize_notebook(load_notebook_node(str(source)), parameters)
    node.cells.insert(0, new_code_cell(_RESET))
    raised: Exception | None = None
    try:
        NotebookClient(node, km=kernel, timeout=cell_timeout, allow_errors=False).execute()
    except CellExecutionError:
        pass                         # the error output is in the cell: first_error finds it
    except Exception as exc:  # noqa: BLE001 (a timeout, a dead kernel: a failed notebook)
        raised = exc
    node.cells.pop(0)
    nbformat.write(node, str(executed))
    seconds = time.perf_counter() - started
    error = first_error(node)
    if raised is not None and error is None:
        lines = str(raised).strip().splitlines()
        error = CellError(-1, type(raised).__name__, lines[0] if lines else "", "")
    from .summary import read_summary

    return NotebookRun(name=source.stem, source=source, executed=executed, seconds=seconds,
                       error=error, summary=read_summary(node),
                       title=notebook_title(node, source.stem))
