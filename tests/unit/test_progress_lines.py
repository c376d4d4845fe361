"""Long work says which step of how many and the time left, in whole lines a log keeps.

The report's heartbeat (``report.execute.running_cell``) reads the notebook papermill saves:
the running cell's own progress output (``report.bars`` puts its state in the output's
metadata) gives "story steps: 7 of 24 steps done, about 1 min 10 s left"; without one, the
cell's first comment or its section's heading, never a line of its code.  The load
generator's ticker writes ``\\r``-redrawn bars only to a terminal; to a log, a plain line
every few seconds.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.loadgen import ticker
from lootlab.report import bars
from lootlab.report.execute import running_cell, work_words

STARTED = datetime(2024, 1, 1, tzinfo=UTC)


def notebook(path, running_source, outputs=(), heading="## Step by step", title="# Title"):
    def cell(status, source, outs=()):
        return {"cell_type": "code", "source": source, "outputs": list(outs),
                "metadata": {"papermill": {"status": status,
                                           "start_time": STARTED.isoformat()}}}
    path.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": title, "metadata": {}},
        cell("completed", "x = 1"),
        {"cell_type": "markdown", "source": [heading + "\n", "Some words."], "metadata": {}},
        cell("running", running_source, outputs), cell("pending", "y = 2")]}))
    return path


def progress_output(state):
    return {"output_type": "display_data", "data": {"text/plain": "story steps: 29%|##"},
            "metadata": state, "transient": {}}


def seconds_in(text: str) -> float:
    """"1 min 10 s" / "26 s" / "3.5 s" back to seconds (an oracle for the words)."""
    m = re.fullmatch(r"(?:(\d+) min )?([\d.]+) s", text)
    assert m, text
    return 60 * int(m.group(1) or 0) + float(m.group(2))


def test_the_heartbeat_names_the_cell_by_number_and_its_work_by_step(tmp_path):
    t0 = STARTED.timestamp() + 5
    state = {"lootlab": {"progress": True, "desc": "story steps", "unit": "step", "done": 7,
                         "total": 24, "started": t0, "updated": t0 + 70}}
    path = notebook(tmp_path / "nb.ipynb", "with progress(SIZES['trials'] * 4) as bar:\n"
                    "    run(bar)", [progress_output(state)])
    now = t0 + 80
    found = running_cell(path, now=now)
    line = found.describe()
    m = re.fullmatch(r"cell 2 of 3, (.+) in; story steps: 7 of 24 steps done, "
                     r"about (.+) left", line)
    assert m, line
    assert seconds_in(m.group(1)) == pytest.approx(now - STARTED.timestamp(), abs=1)
    pace = 70 / 7                                 # seconds a step took so far
    assert seconds_in(m.group(2)) == pytest.approx(pace * (24 - 7) - (now - (t0 + 70)), abs=1)
    assert "progress(" not in line and "SIZES" not in line


def test_without_a_bar_the_line_says_the_cells_comment_or_heading_never_its_code(tmp_path):
    path = notebook(tmp_path / "a.ipynb", ["run = slow()  # not this\n",
                                            "# measure every variant at one rate\n",
                                            "more()\n"])
    assert running_cell(path, now=STARTED.timestamp() + 42).describe() == \
        "cell 2 of 3, 42 s in: measure every variant at one rate"
    path = notebook(tmp_path / "b.ipynb", "if part.measuring:\n    run = slow()\n",
                    heading="## The story, step by step")
    line = running_cell(path, now=STARTED.timestamp() + 42).describe()
    assert line == "cell 2 of 3, 42 s in: The story, step by step"
    path = notebook(tmp_path / "c.ipynb", "run = slow()", heading="", title="")
    assert running_cell(path, now=STARTED.timestamp() + 3).describe() == "cell 2 of 3, 3.0 s in"


def test_nothing_running_or_a_file_mid_write_gives_none(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text('{"cells": [')
    assert running_cell(path) is None
    assert running_cell(tmp_path / "missing.ipynb") is None


@settings(deadline=None)
@given(st.integers(1, 500), st.integers(0, 500), st.floats(1, 1e4), st.floats(0, 1e3))
def test_the_time_left_is_the_pace_so_far_times_the_steps_to_go(total, done, took, since):
    done = min(done, total)
    state = {"desc": "sweep", "unit": "run", "done": done, "total": total,
             "started": 1_000.0, "updated": 1_000.0 + took}
    text = work_words(state, now=1_000.0 + took + since)
    assert text.startswith(f"sweep: {done:,} of {total:,} run{'' if total == 1 else 's'} done")
    left = re.search(r"about (.+) left", text)
    if done == 0:
        assert text.endswith("time left not known yet")
    elif done == total:
        assert left is None and "finish" not in text
    elif left:
        assert seconds_in(left.group(1)) == pytest.approx(took / done * (total - done) - since,
                                                          abs=1)
    else:
        assert text.endswith("about to finish") and took / done * (total - done) - since < 1


class _Handle:
    def __init__(self, log):
        self.log = log

    def update(self, obj, *, metadata=None, **_):
        self.log.append((obj["text/plain"], metadata))


@pytest.fixture
def kernel_display(monkeypatch):
    """A kernel without ipywidgets, as ``lootlab report`` runs it (its TQDM_DISABLE=1 acts
    when tqdm is first imported, so the report's own test checks that part)."""
    import importlib.util

    import IPython.display

    log: list = []
    real_find = importlib.util.find_spec
    monkeypatch.setattr(bars, "in_kernel", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ipywidgets" else real_find(name, *a))
    monkeypatch.setattr(IPython.display, "display", lambda obj, *, metadata=None, **kw: (
        log.append((obj["text/plain"], metadata)), _Handle(log))[1])
    return log


def test_a_bar_in_a_report_kernel_leaves_its_steps_where_the_heartbeat_reads_them(
        kernel_display, tmp_path):
    with bars.progress(4, "story steps") as bar:
        for name in ("a", "b", "c"):
            bar.start(name)
        # as papermill saves it while the cell runs: the handle's latest output
        text, meta = kernel_display[-1]
        assert bars.is_progress({"metadata": meta})
        path = notebook(tmp_path / "nb.ipynb", "run()",
                        [{"output_type": "display_data", "data": {"text/plain": text},
                          "metadata": meta}])
        line = running_cell(path, now=time.time()).describe()
        assert "story steps: 2 of 4 steps done" in line, line
        assert "c" in text                    # the bar's own line names the step running
    assert kernel_display[-1][0].startswith("story steps: 4 of 4 steps in ")


# --- the load generator's ticker -------------------------------------------------------------

def test_the_ticker_writes_whole_lines_to_a_log(monkeypatch):
    monkeypatch.setattr(ticker, "LINE_EVERY", 0.05)
    log, stop = io.StringIO(), threading.Event()
    thread = ticker._progress_thread(3.0, True, stop, log)
    deadline = time.monotonic() + 60
    while log.getvalue().count("\n") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(10)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) >= 2
    for line in lines:
        m = re.fullmatch(r"load: (\d+) s of 3 s, about (\d+) s left", line)
        assert m and int(m.group(1)) + int(m.group(2)) in (2, 3, 4), line


def test_the_ticker_draws_its_bar_only_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term, stop = Terminal(), threading.Event()
    thread = ticker._progress_thread(1.0, True, stop, term)
    deadline = time.monotonic() + 60
    while "\r" not in term.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(10)
    assert "\r" in term.getvalue() and "load:" in term.getvalue()
    assert ticker._progress_thread(1.0, False, stop, term) is None
