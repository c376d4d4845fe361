"""Progress in a log, end to end: a report's heartbeat reads the step count a notebook's bar
shows in a real kernel (where the report sets TQDM_DISABLE), and ``lootlab bench`` leaves no
``\\r`` frames in a log."""

from __future__ import annotations

import re

from _report import write_notebook
from click.testing import CliRunner

from lootlab.cli import main
from lootlab.report.pipeline import build_report

STEPS = """import pathlib, time
from lootlab.report.bars import progress

def wait_for(flag, limit=120.0):
    ends = time.monotonic() + limit
    while not pathlib.Path(flag).exists() and time.monotonic() < ends:
        time.sleep(0.05)

with progress(3, "demo steps") as bar:
    bar.start("a")
    began = time.monotonic()
    while time.monotonic() - began < 1.5:    # a step's work: longer than a save's interval
        time.sleep(0.05)
    bar.start("b")
    wait_for("seen")                         # until the log has said so (2 minutes at most)
    bar.start("c")"""


def test_the_reports_heartbeat_says_the_step_of_how_many_and_never_code(tmp_path, monkeypatch):
    from lootlab.report import pipeline

    monkeypatch.setattr(pipeline, "LONG_CELL_EVERY", 1.0)
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs / "01-steps.ipynb", [STEPS], title="Steps")
    seen = tmp_path / "out" / "executed" / "seen"        # the kernel runs in out/executed
    messages: list[str] = []

    def progress(message: str) -> None:
        messages.append(message)
        if "demo steps: 1 of 3 steps done" in message:
            seen.touch()

    rep = build_report("quick", tmp_path / "out", notebooks=nbs, progress=progress)
    assert rep.ok, rep.runs[0].error
    beats = [m for m in messages if re.search(r": cell \d+ of \d+, ", m)]
    assert any(re.fullmatch(r"\[1/1\] 01-steps\.ipynb: cell 3 of 3, .+ in; demo steps: "
                            r"1 of 3 steps done, (about .+ left|about to finish)", m)
               for m in beats), messages
    assert not any(code in m for m in beats for code in ("wait_for", "bar.start", "import"))
    assert all("\r" not in m and "\n" not in m for m in messages)


def test_bench_writes_no_carriage_returns_into_a_log(tmp_path):
    res = CliRunner().invoke(main, ["bench", "--variant", "mmap", "--rate", "200",
                                    "--duration", "1", "--warmup", "0.2",
                                    "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "\r" not in res.stderr and "\r" not in res.stdout
    for line in res.stderr.splitlines():
        if line.startswith("load:"):
            assert re.fullmatch(r"load: \d+ s of \d+ s, about \d+ s left", line), line
