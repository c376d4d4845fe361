"""``lootlab report --from RUN``: every page drawn again from a stored run, without measuring.

Tiny notebooks stand in for the real ones: each "measures" (counts how often it did, in a
file outside the run) into its part of the run directory and draws only from what it stored.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from _replay import drawn_pages, page_differences
from _report import write_notebook
from click.testing import CliRunner

from lootlab.report import build_report

PARAMETERS = 'size = "quick"\nrun_dir = ""\nreplay = False'

MEASURE = textwrap.dedent("""
    import pathlib, random
    import lootlab.notebook
    part = lootlab.notebook.run_part("{name}", run_dir, replay=replay, params={{"size": size}})
    if part.measuring:
        counter = pathlib.Path({counter!r})
        counter.write_text(str(int(counter.read_text() or 0) + 1) if counter.exists() else "1")
        part.put_rows("draws", [{{"x": i, "y": random.random()}} for i in range(5)])
        part.put_data("said", "measured on a machine that was there")
        from lootlab.report.bars import progress
        with progress(2, "measuring", unit="draw") as bar:
            bar.update(2)
""")

DRAW = textwrap.dedent("""
    import matplotlib.pyplot as plt
    from lootlab.report import publish_summary
    rows = part.rows("draws")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(rows["x"], rows["y"])
    publish_summary("Draws", rows.to_dict("records"), verdict=part.data("said"), figure=fig)
    plt.close(fig)
""")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replay")
    nbs = tmp / "nbs"
    nbs.mkdir()
    counter = tmp / "measured.txt"
    for name in ("01-first", "02-second"):
        write_notebook(nbs / f"{name}.ipynb",
                       [MEASURE.format(name=name, counter=str(counter)), DRAW],
                       title=name, parameters=PARAMETERS)
    report = build_report("quick", tmp / "out", notebooks=nbs, progress=lambda m: None)
    assert report.ok, [r.error for r in report.runs]
    return tmp, nbs, counter, report


def test_a_report_measures_into_its_run_directory(measured):
    tmp, _, counter, report = measured
    assert report.run_dir == tmp / "out" / "run"
    manifest = json.loads((report.run_dir / "manifest.json").read_text())
    assert manifest["schema"] == "lootlab-run/2"
    assert manifest["parts"] == ["01-first", "02-second"]
    assert manifest["params"]["size"] == "quick" and manifest["env"]["cores"] >= 1
    assert set(manifest["noise"]) == {"01-first", "02-second"}
    assert counter.read_text() == "2"
    assert (report.run_dir / "01-first" / "rows" / "draws.parquet").exists()
    # how long measuring took is in the notebook, never on the page (a replay cannot say it)
    executed = (tmp / "out" / "executed" / "01-first.ipynb").read_text()
    assert "measuring: 2 of 2 draws in" in executed
    assert "measuring: 2 of 2" not in (tmp / "out" / "01-first.html").read_text()


def test_a_stored_run_draws_the_same_pages_again_without_measuring(measured):
    tmp, nbs, counter, report = measured
    again = build_report("standard", tmp / "again", notebooks=nbs, from_run=report.run_dir,
                         progress=lambda m: None)
    assert again.ok, [r.error for r in again.runs]
    assert counter.read_text() == "2", "a replay measured again"
    assert again.env.size == "quick"             # the run's own size, not the one asked
    assert page_differences(drawn_pages(tmp / "out"), drawn_pages(tmp / "again")) == {}
    data = json.loads((tmp / "again" / "report.json").read_text())
    assert data["replayed"] and data["run"] == str(report.run_dir)


def test_a_replay_fails_a_notebook_that_reads_what_was_never_stored(measured, tmp_path):
    _, nbs, _, report = measured
    write_notebook(tmp_path / "01-first.ipynb",
                   [MEASURE.format(name="01-first", counter=str(tmp_path / "c")),
                    "part.rows('never stored')"], parameters=PARAMETERS)
    again = build_report("quick", tmp_path / "out", notebooks=tmp_path,
                         from_run=report.run_dir, progress=lambda m: None)
    [run] = again.runs
    assert not run.ok and "never stored" in run.error.one_line()
    assert "draws" in run.error.one_line()          # it names what the part does hold


def test_replay_from_what_is_not_a_run_is_one_line_from_the_cli(tmp_path):
    from lootlab.cli import main

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text(json.dumps({"schema": "lootlab-run/1"}))
    for where, said in [(tmp_path / "nothing", "no such run directory"),
                        (tmp_path / "old", "lootlab-run/1")]:
        result = CliRunner().invoke(main, ["report", "--from", str(where), "--out",
                                           str(tmp_path / "out")])
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and said in lines[0], result.stderr


def test_every_page_states_the_machine_as_the_index_does_and_around_its_own_notebook(measured):
    """One reading of the machine on every page, judged against one baseline (a page once
    said 0.86 ms where the index said 0.72 ms of the same sample), and beside it the check
    around that page's own notebook (the console said a notebook ran busy while its page
    said only the whole run's 'quiet')."""
    tmp, _, _, _ = measured

    def rows(page: str) -> dict[str, str]:
        return dict(re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td></tr>", page))

    index = rows((tmp / "out" / "index.html").read_text())
    assert "machine at start" in index and "machine at end" in index
    for name in ("01-first", "02-second"):
        footer = rows((tmp / "out" / f"{name}.html").read_text())
        assert footer["machine at start"] == index["machine at start"]
        assert footer["machine at end"] == index["machine at end"]
        around = footer["machine around this notebook"]
        assert around == "quiet" or around.startswith("NOISY: ")
