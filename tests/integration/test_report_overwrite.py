"""Measuring a report into a directory that holds one replaces it: never without a line
saying so, and never a larger one (a 15-minute standard or hour-long full report wiped by a
quick smoke run) unless ``--replace`` is given.

One tiny notebook (no imports, nothing measured) keeps each real report a few seconds.
"""

from __future__ import annotations

import json

import pytest
from _report import write_notebook
from click.testing import CliRunner

from lootlab.cli import main
from lootlab.experiments import rundir
from lootlab.report import build_report

PARAMETERS = 'size = "quick"\nrun_dir = ""\nreplay = False'


@pytest.fixture
def notebooks(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs / "01-tiny.ipynb", ["print(size)"], title="Tiny", parameters=PARAMETERS)
    return nbs


def _earlier_report(out, size: str):
    """A run directory as a measuring ``lootlab report --size SIZE`` leaves it, with a part."""
    run = rundir.create(out / "run", what=f"lootlab report --size {size}",
                        params={"size": size, "notebooks": ["01-tiny"]})
    run.part("01-tiny").put_data("hours", "of measurements")
    return run


def _run_size(out) -> str:
    return json.loads((out / "run" / "manifest.json").read_text())["params"]["size"]


@pytest.mark.parametrize("earlier,asked", [("standard", "quick"), ("full", "quick"),
                                           ("full", "standard")])
def test_a_smaller_report_refuses_to_replace_a_larger_one(tmp_path, notebooks, earlier, asked):
    out = tmp_path / "reports"
    run = _earlier_report(out, earlier)
    created = run.manifest["created"][:16].replace("T", " ")
    result = CliRunner().invoke(main, ["report", "--size", asked, "--out", str(out),
                                       "--notebooks", str(notebooks)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"the {earlier} report of {created} in {out}/" in lines[0]
    assert f"a {asked} report" in lines[0] and "--replace" in lines[0]
    # nothing was touched: the earlier run and its part are still there
    assert _run_size(out) == earlier
    assert rundir.open_run(out / "run").part("01-tiny", measuring=False).data("hours") == \
        "of measurements"
    assert not (out / "index.html").exists()


def test_replace_measures_over_a_larger_report_and_says_so(tmp_path, notebooks):
    out = tmp_path / "reports"
    _earlier_report(out, "standard")
    result = CliRunner().invoke(main, ["report", "--size", "quick", "--out", str(out),
                                       "--notebooks", str(notebooks), "--replace"])
    assert result.exit_code == 0, result.output
    replacing = [line for line in result.stderr.splitlines() if line.startswith("replacing ")]
    assert len(replacing) == 1, result.stderr
    assert "the standard report of " in replacing[0] and f"(its run: {out}/run)" in replacing[0]
    assert _run_size(out) == "quick"


@pytest.mark.parametrize("earlier,asked", [("quick", "quick"), ("quick", "standard")])
def test_a_report_of_the_same_or_a_larger_size_replaces_with_one_line(
        tmp_path, notebooks, earlier, asked):
    out = tmp_path / "reports"
    said: list[str] = []
    first = build_report(earlier, out, notebooks=notebooks, progress=said.append)
    assert first.ok, [r.error for r in first.runs]
    assert not [line for line in said if line.startswith("replacing")]   # nothing to replace
    created = json.loads((out / "run" / "manifest.json").read_text())["created"]
    result = CliRunner().invoke(main, ["report", "--size", asked, "--out", str(out),
                                       "--notebooks", str(notebooks)])
    assert result.exit_code == 0, result.output
    replacing = [line for line in result.stderr.splitlines() if line.startswith("replacing ")]
    assert replacing == [(f"replacing the {earlier} report of {created[:16].replace('T', ' ')} "
                          f"in {out}/ (its run: {out}/run); --out another directory to keep it")]
    assert _run_size(out) == asked
