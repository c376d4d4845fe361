"""The report's pages as a reader sees them in Chromium at 800 and 1280 px: no text cut
inside a table cell, no column out of view without a visible way to scroll to it (and a
run's valid / INVALID column always in view), no figure text under 8 px, no SVG text
outside its figure; and in the text: one unit per quantity within a table, no blank cell
without a reason, no sentence or table contradicting another (``tests/_page_checks.py``;
``tests/unit/test_page_checks.py`` shows each check failing on a page made to fail it).

The pages are the quick report the session measures once (``quick_report`` in conftest)."""

from __future__ import annotations

import shutil

import pytest
from _page_checks import content_problems, layout_problems, reader_browser
from _report import PageLog

PAGES = ["index", "01-story", "02-latency", "03-flamegraphs", "04-memory", "05-rebuild",
         "06-conditions", "07-decision"]
#: How long one page may take to load and lay out (its flamegraph frames included).
LOAD_TIMEOUT_MS = 120_000

pytestmark = pytest.mark.skipif(not shutil.which("chromium"), reason="no chromium (make system-deps)")


@pytest.fixture(scope="module")
def chromium():
    with reader_browser() as b:
        yield b


@pytest.mark.parametrize("width", [800, 1280])
@pytest.mark.parametrize("name", PAGES)
def test_page_lays_out_for_a_reader(quick_report, chromium, name, width):
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(LOAD_TIMEOUT_MS)
    log = PageLog(page)
    page.goto((quick_report.out_dir / f"{name}.html").as_uri())
    page.wait_for_load_state("load")
    problems = layout_problems(page)
    page.close()
    assert log.errors == [], log.errors
    assert problems == [], f"{name}.html at {width} px:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", PAGES)
def test_page_says_one_thing_in_one_set_of_units(quick_report, name):
    problems = content_problems((quick_report.out_dir / f"{name}.html").read_text("utf-8"))
    assert problems == [], f"{name}.html:\n" + "\n".join(problems)
