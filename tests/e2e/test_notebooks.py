"""The shipped notebooks: committed clean, and every one runs in the quick size through
``lootlab report``; the exported pages are then checked in a real headless Chromium, and the
whole report drawn again from its stored run reads the same.

The report is measured once per session (``quick_report`` in conftest) and every assertion
here and in the replay tests reuses it.  The notebooks use the embedded defaults, so the
session's LOOTLAB_DATA (a temp dir set by conftest) receives the default world and index.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from _replay import drawn_pages, page_differences
from _report import (
    PageLog,
    browser,
    click_zooms,
    figure_sizes,
    flamegraph_frames,
    layout_problems,
    text_problems,
)

from lootlab.report import build_report, external_urls, notebooks_dir

NOTEBOOKS = sorted(notebooks_dir().glob("*.ipynb"))
EXPECTED = ["01-story", "02-latency", "03-flamegraphs", "04-memory", "05-rebuild",
            "06-conditions", "07-decision"]

# The whole quick report (all notebooks) runs inside the first test of the session that
# needs it.
pytestmark = pytest.mark.timeout(1800)


def test_the_shipped_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_carry_no_outputs(path: Path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.get("outputs") == [], cell.source[:60]
        assert cell.get("execution_count") is None, cell.source[:60]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for line in ('size = "quick"', 'run_dir = ""', "replay = False"):
        assert line in params[0].source, line
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


# What a notebook cell must not do itself: magics, and drawing (that is lootlab.plots' job).
NOT_IN_A_CELL = ("%matplotlib", "%config", "import matplotlib", "from matplotlib", "Figure(",
                 "subplots(", ".plot(", ".plot.", "pd.set_option", "filterwarnings")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_set_up_with_one_call_and_draw_with_lootlab_plots(path: Path):
    """Set-up lives in ``lootlab.notebook.setup`` (called right after the parameters) and
    drawing in ``lootlab.plots``, so the notebooks cannot drift apart in either."""
    nb = nbformat.read(str(path), as_version=4)
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    first = nb.cells[params + 1]
    assert first.cell_type == "code"
    assert first.source.startswith("import lootlab.notebook\nlootlab.notebook.setup(size)")
    for cell in nb.cells:
        if cell.cell_type == "code":
            found = [s for s in NOT_IN_A_CELL if s in cell.source]
            assert found == [], f"{found} in cell {cell.source[:60]!r}"


@pytest.fixture(scope="module")
def chromium():
    with browser() as b:
        yield b


def test_every_notebook_runs_in_the_quick_size(quick_report):
    failed = {r.name: r.error.one_line() for r in quick_report.runs if not r.ok}
    assert failed == {}
    assert [r.name for r in quick_report.runs] == EXPECTED
    assert sum("running (quick)" in m for m in quick_report.messages) == len(EXPECTED)


def test_each_notebook_has_html_and_executed_copy_outside_the_repo(quick_report):
    out = quick_report.out_dir
    for name in EXPECTED:
        assert (out / f"{name}.html").stat().st_size > 0
        assert (out / "executed" / f"{name}.ipynb").exists()
    assert notebooks_dir() not in out.parents
    # executing never writes back into notebooks/
    for path in NOTEBOOKS:
        nb = nbformat.read(str(path), as_version=4)
        assert all(c.get("outputs") == [] for c in nb.cells if c.cell_type == "code")


def test_each_notebook_publishes_a_summary_and_the_story_verdict_comes_from_data(quick_report):
    runs = {r.name: r for r in quick_report.runs}
    for name in EXPECTED:
        assert runs[name].summary, name
    story = runs["01-story"].summary
    assert [row["step"] for row in story["rows"]] == [
        "grpc-tls-fresh", "grpc-tls-resumed", "grpc-tls-pooled", "grpc-tls-packed", "mmap"]
    achieved = next(c for c in story["columns"] if c.startswith("achieved"))  # "achieved (req/s)"
    rate = story["rows"][0][achieved]
    assert "grpc-tls-fresh" in story["verdict"] and "mmap" in story["verdict"]
    assert rate > 0
    first, last = story["rows"][0], story["rows"][-1]
    headline = story["verdict"].split(". ")[0]
    if first["run"].startswith("valid") and last["run"].startswith("valid"):  # a ratio, or why not
        assert "requests/s" in headline or "No ratio" in headline, headline
    else:                                                  # never a ratio from an invalid run
        assert headline.startswith("No ratio") and "x lower" not in headline, headline
    index = (quick_report.out_dir / "index.html").read_text()
    assert "grpc-tls-packed" in index and story["verdict"][:40] in index


def test_the_report_keeps_its_results_as_one_run_that_compares(quick_report):
    """Every report writes a run directory (``out/run``) that ``lootlab compare`` reads: the
    latency results the notebooks kept, named by notebook, the py-spy stacks of 03 and the
    memory table of 04.  The run compared with itself has rows of every kind, every one
    that could be judged within noise."""
    from lootlab.experiments.comparison import compare_runs, load_run
    from lootlab.experiments.sizes import sizes_for

    run = load_run(quick_report.run_dir)
    assert run.meta["what"] == "lootlab report --size quick"
    assert run.stored.path == quick_report.run_dir and run.stored.parts == EXPECTED
    names = set(run.results)
    assert {f"01-story: {s}" for s in ("grpc-tls-fresh", "grpc-tls-pooled", "mmap")} <= names
    assert {"02-latency: one rate: mmap at 200/s", "02-latency: spike: mmap",
            "05-rebuild: rebuild from local", "05-rebuild: rebuild from s3"} <= names
    assert any(n.startswith("02-latency: sweep: ") for n in names)
    # the spike is not pooled with the one-rate run of the same variant and rate
    assert len(run.results["02-latency: one rate: mmap at 200/s"]) == 1
    flames = run.stored.part("03-flamegraphs", measuring=False)
    assert "py-spy: mmap" in flames.names("stacks")
    memory = run.stored.part("04-memory", measuring=False).rows("memory")
    assert list(memory["variant"]) == sizes_for("04-memory", "quick")["variants"]

    frame = compare_runs(run, run)
    assert set(frame["kind"]) == {"latency", "profile", "memory"}
    assert "03-flamegraphs: py-spy: mmap" in set(frame[frame["kind"] == "profile"]["variant"])
    assert {f"04-memory: {v}" for v in memory["variant"]} == \
        set(frame[frame["kind"] == "memory"]["variant"])
    assert set(frame["verdict"]) <= {"within noise", "too few samples", "no data"}
    judged = frame[frame["verdict"] == "within noise"]
    assert set(judged["kind"]) == {"latency", "profile", "memory"}


def test_readers_saw_every_swap_without_an_error(quick_report):
    rebuild = next(r for r in quick_report.runs if r.name == "05-rebuild").summary
    assert {row["source"] for row in rebuild["rows"]} == {"local", "s3"}
    for row in rebuild["rows"]:
        assert row["errors"] == 0, row
        assert row["swaps"] >= 2, row
        assert row["generations seen"] >= 2, row


def test_the_what_if_notebook_decides_per_condition_and_the_index_says_under_what(
        quick_report):
    """Notebook 06: one summary row per RTT (and CPU limit, where cgroups can be
    written), a verdict drawn from the decision table, the quick size's thin tails never
    called a fit; the index states every notebook's conditions beside its numbers."""
    runs = {r.name: r for r in quick_report.runs}
    whatif = runs["06-conditions"].summary
    conditions = [row["condition"] for row in whatif["rows"]]
    assert conditions[:3] == ["loopback (RTT 0 ms)", "RTT 5 ms", "RTT 20 ms"]
    assert whatif["verdict"].startswith("With a p99 budget of 50 ms, no variant fits under every")
    # quick: 20 samples per run leave none above a p99, so nothing is called a fit
    assert all(row["fits the budget"] == "none" for row in whatif["rows"]), whatif["rows"]
    assert "RTT 0-20 ms through a delaying proxy" in whatif["conditions"]
    assert runs["01-story"].summary["conditions"] == "loopback, no CPU limit"
    index = (quick_report.out_dir / "index.html").read_text()
    notebooks = index[index.index("<table class=\"notebooks\">"):index.index("<h2>Summary</h2>")]
    # every notebook but the two that add a round trip (06's sweep, 07's reader's RTT)
    assert notebooks.count("loopback, no CPU limit") == len(EXPECTED) - 2
    assert "RTT 0-20 ms through a delaying proxy" in notebooks
    assert "latency at an added round trip of 1 ms" in notebooks
    from lootlab.experiments.comparison import load_run

    run = load_run(quick_report.run_dir)
    assert any(n.startswith("06-conditions: rtt sweep: grpc-tls-fresh") for n in run.results)


def test_the_whole_report_drawn_again_from_its_run_reads_the_same(quick_report, tmp_path):
    """``lootlab report --from RUN``: every page drawn again from the stored run, without
    measuring, reads as the measured page did (timings, papermill's id of the parameters
    cell and the report's own directory apart)."""
    again = build_report(out=tmp_path / "again", from_run=quick_report.run_dir,
                         progress=lambda message: None)
    assert {r.name: r.error.one_line() for r in again.runs if not r.ok} == {}
    assert [r.name for r in again.runs] == EXPECTED
    measured = drawn_pages(quick_report.out_dir)
    assert sorted(measured) == sorted(["index.html", *(f"{n}.html" for n in EXPECTED)])
    assert page_differences(measured, drawn_pages(again.out_dir)) == {}


def test_pages_need_no_network(quick_report):
    for page in quick_report.out_dir.glob("*.html"):
        assert external_urls(page.read_text()) == [], page.name


@pytest.mark.parametrize("name", ["index", *EXPECTED])
def test_page_renders_offline_without_console_errors_and_figures_load(quick_report, chromium,
                                                                      name):
    page = chromium.new_page()
    log = PageLog(page)
    page.goto((quick_report.out_dir / f"{name}.html").as_uri())
    page.wait_for_load_state("load")
    assert log.errors == [], log.errors
    assert log.network == [], log.network
    if name != "index":
        sizes = figure_sizes(page)
        assert sizes, f"{name} shows no figure"
        assert all(w > 0 and h > 0 for w, h in sizes), sizes
        assert "Traceback" not in page.content()
    page.close()


@pytest.mark.parametrize("width", [800, 1280])
@pytest.mark.parametrize("name", ["index", *EXPECTED])
def test_page_reads_as_a_person_would_see_it(quick_report, chromium, name, width):
    """Every page at a narrow and a wide window: nothing runs past the page or its container
    (a table may scroll inside a wrapper that fits), no raw dict, pid or port in the text a
    reader sees, no console error, no network request."""
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(120_000)
    log = PageLog(page)
    page.goto((quick_report.out_dir / f"{name}.html").as_uri())
    page.wait_for_load_state("load")
    problems = layout_problems(page) + text_problems(page.inner_text("body"))
    assert log.errors == [] and log.network == [], (log.errors, log.network)
    page.close()
    assert problems == [], "\n".join(problems)


def test_the_index_leads_with_the_answer(quick_report, chromium):
    """The story's verdict comes before the evidence, under the banner when a run behind a
    headline number was INVALID or the machine noisy, and the figure (when the story
    publishes one) above it."""
    from lootlab.report.front_page import warnings

    story = next(r for r in quick_report.runs if r.name == "01-story")
    page = chromium.new_page(viewport={"width": 800, "height": 900})
    page.goto((quick_report.out_dir / "index.html").as_uri())
    order = page.evaluate("""() => {
      const y = s => { const e = document.querySelector(s); return e ? e.getBoundingClientRect().top : null; };
      return {banner: y('.banner'), figure: y('.answer img'), verdict: y('.answer .verdict'),
              evidence: y('h2 ~ section.evidence')}; }""")
    verdict = page.inner_text(".answer .verdict")
    page.close()
    assert verdict.startswith(story.summary["verdict"].split(". ")[0])
    assert order["verdict"] < order["evidence"]
    if story.summary.get("figure"):
        assert order["figure"] < order["verdict"]
    if warnings(quick_report.runs, quick_report.env):
        assert order["banner"] is not None and order["banner"] < order["verdict"]


def test_flamegraphs_are_interactive_in_the_export(quick_report, chromium):
    page = chromium.new_page()
    log = PageLog(page)
    page.goto((quick_report.out_dir / "03-flamegraphs.html").as_uri())
    page.wait_for_load_state("load")
    frames = flamegraph_frames(page)
    # one per profiled variant, plus the differential view
    assert len(frames) >= 3
    for frame in frames:
        assert click_zooms(frame)
    assert log.errors == []
    page.close()


def test_index_links_resolve(quick_report, chromium):
    page = chromium.new_page()
    page.goto((quick_report.out_dir / "index.html").as_uri())
    hrefs = page.eval_on_selector_all("table.notebooks a", "els => els.map(e => e.href)")
    assert len(hrefs) == len(EXPECTED)
    for href in hrefs:
        other = chromium.new_page()
        response = other.goto(href)
        assert response is not None and response.ok, href
        assert other.locator("h1").count() >= 1, href
        other.close()
    page.close()
