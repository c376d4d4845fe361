"""The report pipeline on small real notebooks: execute, export offline HTML, index, failures,
and the result opened in a real headless Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from _report import (
    PageLog,
    browser,
    click_zooms,
    figure_sizes,
    flamegraph_frames,
    layout_problems,
    text_problems,
    write_notebook,
)
from hypothesis import given
from hypothesis import strategies as st

from lootlab.report import build_report, external_urls, read_summary
from lootlab.report.embed import interactive_svg_html
from lootlab.report.environment import page_cache_residency

FLAME_SCRIPT = textwrap.dedent("""
    import sys, time
    def spin():
        s = 0
        for i in range(200_000):
            s += i
        return s
    t = time.time()
    while time.time() - t < 1.0:
        spin()
""")

PLOT = textwrap.dedent("""
    %matplotlib inline
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2, 3], [3, 1, 2])
    plt.show()
""")

SUMMARY = textwrap.dedent("""
    from lootlab.report import publish_summary
    publish_summary("Steps", [{"step": "a", "p99 ms": 95.0 if size == "quick" else 1.0},
                              {"step": "b", "p99 ms": 34.0}], verdict=f"ran with {size}")
""")


@pytest.fixture(scope="module")
def flame_svg(tmp_path_factory) -> str:
    """A real py-spy flamegraph of a short busy loop."""
    tmp = tmp_path_factory.mktemp("flame")
    script = tmp / "spin.py"
    script.write_text(FLAME_SCRIPT)
    out = tmp / "fg.svg"
    subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "-r", "100", "-o",
                    str(out), "--", sys.executable, str(script)], check=True,
                   capture_output=True, timeout=60)
    return out.read_text()


@pytest.fixture(scope="module")
def report(tmp_path_factory, flame_svg):
    """One pipeline run over three tiny notebooks: a good one, one that fails, one plain."""
    tmp = tmp_path_factory.mktemp("report")
    nbs = tmp / "nbs"
    nbs.mkdir()
    svg_path = tmp / "fg.svg"
    svg_path.write_text(flame_svg)
    write_notebook(nbs / "01-good.ipynb", [
        PLOT, SUMMARY,
        (f"from lootlab.report import interactive_svg\n"
         f"interactive_svg(open({str(svg_path)!r}).read())"),
        "print('math $x^2$ and done')",
    ], title="Good notebook")
    write_notebook(nbs / "02-bad.ipynb", [
        "print('before the failure')",
        "raise RuntimeError('the index went away')",
        "print('never runs')",
    ], title="Bad notebook")
    write_notebook(nbs / "03-plain.ipynb", ["x = 1 + 1\nx"], title="Plain notebook")
    sources = {p.name: p.read_bytes() for p in nbs.iterdir()}
    result = build_report("quick", tmp / "out", notebooks=nbs, progress=lambda m: None)
    result.sources_before = sources  # type: ignore[attr-defined]
    result.nbs = nbs  # type: ignore[attr-defined]
    return result


def test_every_notebook_gets_html_and_the_index_links_them(report):
    out = report.out_dir
    assert sorted(p.name for p in out.glob("*.html")) == [
        "01-good.html", "02-bad.html", "03-plain.html", "index.html"]
    index = (out / "index.html").read_text()
    for name in ("01-good", "02-bad", "03-plain"):
        assert f"href='{name}.html'" in index


def test_a_failing_cell_fails_the_report_and_keeps_partial_html(report):
    runs = {r.name: r for r in report.runs}
    assert not report.ok
    assert runs["01-good"].ok and runs["03-plain"].ok
    bad = runs["02-bad"]
    assert bad.error.ename == "RuntimeError" and "index went away" in bad.error.evalue
    assert "raise RuntimeError" in bad.error.one_line()
    page = bad.html.read_text()
    assert "before the failure" in page
    assert "the index went away" in page
    assert "failed" in (report.out_dir / "index.html").read_text()


def test_notebook_sources_are_untouched_and_executed_copies_live_in_out(report):
    for path in report.nbs.iterdir():
        assert path.read_bytes() == report.sources_before[path.name]
    executed = nbformat.read(str(report.out_dir / "executed" / "01-good.ipynb"), as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    assert executed.cells[2].source.startswith("# Parameters")  # papermill's injected cell


def test_size_reaches_the_notebook_and_summary_reaches_the_index(report):
    good = next(r for r in report.runs if r.name == "01-good")
    assert good.summary["verdict"] == "ran with quick"
    assert [row["p99 ms"] for row in good.summary["rows"]] == [95.0, 34.0]
    index = (report.out_dir / "index.html").read_text()
    assert "ran with quick" in index and "<td class='num'>95</td>" in index
    data = json.loads((report.out_dir / "report.json").read_text())
    assert data["size"] == "quick" and len(data["notebooks"]) == 3
    assert data["environment"]["cores"] >= 1 and data["environment"]["git_commit"]


def test_code_is_hidden_unless_asked(report, tmp_path):
    good = report.out_dir / "01-good.html"
    assert "publish_summary" not in good.read_text()
    assert 'hl-ipython3' not in good.read_text()
    shown = build_report("quick", tmp_path, notebooks=report.nbs, only=["03"], show_code=True,
                         progress=lambda m: None)
    page = shown.runs[0].html.read_text()
    assert 'hl-ipython3' in page


def test_html_needs_no_network_source(report):
    for page in report.out_dir.glob("*.html"):
        text = page.read_text()
        assert external_urls(text) == [], page.name
        assert "require.min.js" not in text and "MathJax.js" not in text


def test_environment_is_stated_in_every_page(report):
    for name in ("01-good", "02-bad", "index"):
        text = (report.out_dir / f"{name}.html").read_text()
        for label in ("CPU", "cores", "Python", "git commit", "report size", "page cache",
                      "numpy"):
            assert label in text, (name, label)


def test_page_cache_residency_reads_a_file_we_just_wrote(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * (1 << 20))
    frac = page_cache_residency(path)
    assert frac is not None and 0.0 <= frac <= 1.0
    assert page_cache_residency(tmp_path / "missing") is None


def test_read_summary_takes_the_last_one():
    from lootlab.report.summary import SUMMARY_MIME, summary_bundle

    first, last = summary_bundle("a", [{"v": 1}]), summary_bundle("b", [{"v": 2}])
    nb = {"cells": [{"outputs": [{"data": first}]}, {"outputs": [{"data": last}]}]}
    assert read_summary(nb)["title"] == "b"
    assert read_summary({"cells": []}) is None
    assert SUMMARY_MIME in first and "<table" in first["text/html"]


def test_unknown_size_and_missing_notebooks_are_lootlab_errors(tmp_path):
    from lootlab.errors import LootlabError
    from lootlab.report import ReportError

    with pytest.raises(LootlabError, match="size"):
        build_report("huge", tmp_path)
    with pytest.raises(ReportError, match="no notebooks"):
        build_report("quick", tmp_path / "out", notebooks=tmp_path)
    (tmp_path / "01-a.ipynb").write_text("{}")
    with pytest.raises(ReportError, match="zz"):
        build_report("quick", tmp_path / "out", notebooks=tmp_path, only=["zz"])


def test_cli_fails_with_one_line_naming_the_cell(report, tmp_path):
    proc = subprocess.run([str(Path(sys.executable).parent / "lootlab"), "report", "--notebooks",
                           str(report.nbs), "--only", "02", "--out", str(tmp_path)],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("lootlab: error:") and "RuntimeError" in last and "02-bad" in last
    assert "Traceback" not in proc.stderr
    assert "\r" not in proc.stderr      # a log gets whole lines, never a bar's redraws
    assert (tmp_path / "02-bad.html").exists()
    assert "[1/1] 02-bad.ipynb" in proc.stderr


# --- in a real browser -----------------------------------------------------------------------

# Browser waits are for a condition, with a deadline generous enough for a machine whose
# load average is 4x its cores (a 10 s wait failed there)
BROWSER_DEADLINE_MS = 120_000


@pytest.fixture(scope="module")
def chromium():
    with browser() as b:
        yield _PatientBrowser(b)


class _PatientBrowser:
    """The browser, handing out pages whose every wait has ``BROWSER_DEADLINE_MS``."""

    def __init__(self, browser):
        self._browser = browser

    def new_page(self, **options):
        page = self._browser.new_page(**options)
        page.set_default_timeout(BROWSER_DEADLINE_MS)
        page.set_default_navigation_timeout(BROWSER_DEADLINE_MS)
        return page


def test_pages_render_offline_without_console_errors(report, chromium):
    for name in ("index", "01-good", "02-bad", "03-plain"):
        page = chromium.new_page()
        log = PageLog(page)
        page.goto((report.out_dir / f"{name}.html").as_uri())
        page.wait_for_load_state("load")
        assert log.errors == [], (name, log.errors)
        assert log.network == [], (name, log.network)
        page.close()


def test_figures_load_and_flamegraph_is_interactive(report, chromium):
    page = chromium.new_page()
    log = PageLog(page)
    page.goto((report.out_dir / "01-good.html").as_uri())
    page.wait_for_load_state("load")
    sizes = figure_sizes(page)
    assert sizes and all(w > 0 and h > 0 for w, h in sizes), sizes
    frames = flamegraph_frames(page)
    assert len(frames) == 1
    frame = frames[0]
    assert frame.evaluate("() => typeof init === 'function' && typeof search === 'function'")
    assert click_zooms(frame)
    # the search only looks inside the zoomed frame, and which box was clicked depends on
    # what py-spy sampled (on a busy machine, often one without `spin`): zoom out first
    frame.locator("#unzoom").click(force=True)
    page.on("dialog", lambda d: d.accept("spin"))
    frame.locator("#search").click(force=True)
    # the prompt is answered asynchronously: wait for the search to report, do not race it
    frame.wait_for_function(
        "() => document.getElementById('matched').textContent.includes('Matched:')",
        timeout=BROWSER_DEADLINE_MS)
    assert log.errors == [] and log.network == []
    page.close()


def test_index_links_resolve_in_the_browser(report, chromium):
    page = chromium.new_page()
    page.goto((report.out_dir / "index.html").as_uri())
    hrefs = page.eval_on_selector_all("table.notebooks a", "els => els.map(e => e.href)")
    assert len(hrefs) == 3
    for href in hrefs:
        other = chromium.new_page()
        response = other.goto(href)
        assert response is not None and response.ok, href
        assert other.title(), href
        other.close()
    page.close()


def test_svg_embedding_escapes_into_a_single_iframe(flame_svg):
    html = interactive_svg_html(flame_svg, title="t")
    assert html.count("<iframe") == 1 and "<svg" not in html and html.startswith("<div")  # all of it inside srcdoc
    assert "&lt;svg" in html and "replaceState" in html


# --- the story's verdict and chart (plain data in, words and a figure out) --------------------

def _steps(p99s, *, valid=None, errors=0):
    import pandas as pd

    from lootlab.experiments.story import STEPS, WRITEUP

    names = list(STEPS)[: len(p99s)]
    return pd.DataFrame({
        "variant": names, "change": [STEPS[n] for n in names],
        "p50_ms": [p / 3 for p in p99s], "p99_ms": p99s, "p999_ms": [p * 1.2 for p in p99s],
        "offered_per_s": 200.0, "achieved_per_s": 200.0, "requests": 600,
        "errors": [errors] + [0] * (len(p99s) - 1),
        "valid": valid if valid is not None else [True] * len(p99s),
        "writeup_p99_ms": [WRITEUP["p99_ms_by_step"].get(n, float("nan")) for n in names]})


def test_verdict_reads_the_numbers_it_is_given():
    from lootlab.report.story_text import verdict

    text = verdict(_steps([40.0, 30.0, 12.0, 8.0, 0.5]))
    assert "40.0 ms (grpc-tls-fresh) to 0.50 ms (mmap), 80.0x lower" in text
    assert "largest gain that stands clear of trial-to-trial noise was grpc-tls-pooled" in text
    assert "18.0 ms" in text
    assert "could not keep" not in text and "failed" not in text


def test_verdict_says_when_mmap_loses_a_step_regresses_or_the_generator_saturates():
    from lootlab.report.story_text import verdict

    text = verdict(_steps([5.0, 9.0, 4.0, 3.0, 6.0], valid=[True, True, False, True, True],
                          errors=7))
    assert "mmap did not beat grpc-tls-fresh" in text
    assert "p99 got worse at: grpc-tls-resumed, mmap" in text
    assert "could not keep the schedule for grpc-tls-pooled" in text
    assert "7 requests failed" in text


def test_step_chart_draws_every_step_and_the_writeup_reference():
    from lootlab.plots.steps import step_chart

    fig = step_chart(_steps([40.0, 30.0, 12.0, 8.0, 0.5], valid=[True, False, True, True, True]))
    ax, wf = fig.axes[:2]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "grpc-tls-fresh" and labels[-1] == "mmap"
    # p50 and p99 bars per step, then the write-up's three p99 figures as markers
    assert len(ax.patches) == 10
    assert ax.collections[0].get_offsets()[0][1] == 95.0
    assert sum("INVALID" in t.get_text() for t in ax.texts) == 1
    assert len(wf.patches) == 5


def test_lab_runs_jupyter_lab_from_the_venv_with_its_arguments():
    proc = subprocess.run([str(Path(sys.executable).parent / "lootlab"), "lab", "--version"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    from importlib.metadata import version

    assert proc.stdout.strip() == version("jupyterlab")


def test_verdict_names_a_step_that_could_not_keep_up():
    from lootlab.report.story_text import verdict

    steps = _steps([900.0, 30.0, 12.0, 8.0, 0.5])
    steps.loc[0, "achieved_per_s"] = 150.0
    text = verdict(steps)
    assert "200 requests/s, grpc-tls-fresh could not keep up here (it completed 150/s:" in text
    assert verdict(_steps([40.0, 30.0, 12.0, 8.0, 0.5])).count("could not keep up") == 0


def test_a_cell_past_its_timeout_fails_the_notebook_and_keeps_what_ran(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs / "01-slow.ipynb", ["print('first cell ran')",
                                           "import time\ntime.sleep(60)"], title="Slow")
    rep = build_report("quick", tmp_path / "out", notebooks=nbs, cell_timeout=3,
                       progress=lambda m: None)
    run = rep.runs[0]
    assert not run.ok and "Timeout" in run.error.ename, run.error
    assert run.seconds < 50
    assert "first cell ran" in run.html.read_text()


# --- the index leads with the answer (plain data in, a page out; no report run) --------------

def _figure(width: float = 6.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 3))
    fig.subplots().set_title("p99 per step")
    return fig


def test_publish_summary_carries_a_figure_as_an_offline_png():
    import base64

    from lootlab.report.summary import SUMMARY_MIME, summary_bundle

    bundle = summary_bundle("Steps", [{"step": "a"}], verdict="v.", figure=_figure(6.0))
    figure = bundle[SUMMARY_MIME]["figure"]
    png = base64.b64decode(figure["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and figure["mime"] == "image/png"
    assert (figure["width"], figure["height"]) == (600, 300)  # as laid out; drawn at 2x
    assert int.from_bytes(png[16:20], "big") == 1200
    assert figure["alt"] == "Steps"
    html = bundle["text/html"]
    assert "src='data:image/png;base64," in html and html.index("<img") < html.index("<table")
    assert "http" not in html
    with pytest.raises(TypeError, match="matplotlib Figure"):
        summary_bundle("Steps", [], figure="not a figure")


def test_a_summary_without_a_figure_has_none():
    from lootlab.report.summary import SUMMARY_MIME, summary_bundle

    bundle = summary_bundle("Steps", [{"step": "a"}])
    assert "figure" not in bundle[SUMMARY_MIME] and "<img" not in bundle["text/html"]


_WORD = st.text(alphabet="abcxyz0123456789-", min_size=1, max_size=8)
_SENTENCE = st.builds(lambda words, num, end: " ".join(words).capitalize() + f" {num}" + end,
                      st.lists(_WORD, min_size=1, max_size=6),
                      st.sampled_from(["0.50 ms", "3.0x", "95 -> 78 -> 34 ms", "1,200/s"]),
                      st.sampled_from([".", "!", "?", ":."]))


@given(st.lists(_SENTENCE, min_size=0, max_size=8))
def test_sentences_cut_only_between_sentences(parts):
    from lootlab.report.front_page import sentences

    assert sentences("  \n ".join(parts)) == parts


def _published(title, verdict, *, figure=None, conditions=None, instrument=None):
    from lootlab.report.summary import SUMMARY_MIME, summary_bundle

    return summary_bundle(title, [{"step": "s", "p99 ms": 1.0}], verdict=verdict,
                          figure=figure, conditions=conditions,
                          instrument=instrument)[SUMMARY_MIME]


def _index_page(tmp_path, summaries):
    from lootlab.report import environment
    from lootlab.report.execute import NotebookRun
    from lootlab.report.front_page import render_index

    runs = [NotebookRun(name, Path("a"), Path("b"), 1.0, html=tmp_path / f"{name}.html",
                        title=name, summary=s) for name, s in summaries]
    env = environment.Environment(cpu="c", cores=2, usable_cores=2, memory_gib=1.0,
                                  python="3.11", platform="linux", packages={},
                                  git_commit="abc", size="standard", date="d",
                                  page_cache="warm")
    return render_index(runs, env, out_dir=tmp_path, total_seconds=1)


def test_index_leads_with_the_story_figure_then_three_verdict_sentences(tmp_path):
    story = " ".join(f"Sentence {i} says 0.{i}0 ms." for i in range(1, 7))
    page = _index_page(tmp_path, [("01-a", _published("Other", "Other verdict.")),
                                  ("02-story", _published("Story", story, figure=_figure()))])
    answer = page[page.index("<section class='answer'>"):page.index("<h2>Notebooks</h2>")]
    assert answer.index("<img") < answer.index("Sentence 1")
    assert "Sentence 1 says 0.10 ms. Sentence 2 says 0.20 ms. Sentence 3 says 0.30 ms." \
        in answer and "Sentence 4" not in answer
    assert "href='02-story.html'" in answer
    # the evidence keeps the rest of the verdict once, and the other notebook's in full
    evidence = page[page.index("<h2>Summary</h2>"):]
    assert all(page.count(f"Sentence {i} ") == 1 for i in range(1, 7))
    assert "Sentence 1" not in evidence and "<li>Sentence 6 says 0.60 ms.</li>" in evidence
    assert "Other verdict." in evidence and page.count("<img") == 1
    assert page.index("<section class='answer'>") < page.index("<h2>Notebooks</h2>") \
        < page.index("<h2>Summary</h2>") < page.index("<h2>Environment</h2>")


def test_without_a_figure_the_first_notebook_verdict_leads_and_no_answer_without_one(tmp_path):
    page = _index_page(tmp_path, [("01-a", _published("A", "First. Second.")),
                                  ("02-b", _published("B", "Bee."))])
    answer = page[page.index("<section class='answer'>"):page.index("<h2>Notebooks</h2>")]
    assert "First. Second." in answer and "<img" not in answer and "Bee." not in answer
    page = _index_page(tmp_path, [("01-a", _published("A", "")), ("02-b", _published("B", "Bee."))])
    assert "<section class='answer'>" not in page and "Bee." in page


def test_the_index_states_the_conditions_of_every_run_next_to_its_numbers(tmp_path):
    """Each notebook's row and summary say what its numbers were measured under
    (RTT, CPU limit); a summary naming none ran on loopback with no CPU limit, and a limit
    asked but not applied says so."""
    from lootlab.report.conditions import label

    story = _published("Story", "Fast.", figure=_figure(), conditions={
        "rtt_ms": 5.0, "jitter_ms": 1.0, "bandwidth_mbit": None, "cpu_limit": 0.5,
        "cpu_limit_applied": True, "cpu_limit_note": ""})
    old = _published("Old", "Old verdict.")
    old.pop("conditions")                                  # published before conditions existed
    page = _index_page(tmp_path, [("01-story", story), ("02-old", old),
                                  ("06-whatif", _published("What if", "Depends.",
                                                           conditions="RTT 0-20 ms"))])
    rows = page[page.index("<table class=\"notebooks\">"):page.index("<h2>Summary</h2>")]
    assert "<th>conditions</th>" in rows
    assert rows.index("RTT 5 ms ± 1 ms, CPU limit 0.5 cores") < rows.index("02-old") \
        < rows.index("loopback, no CPU limit") < rows.index("RTT 0-20 ms")
    evidence = page[page.index("<h2>Summary</h2>"):]
    heads = [evidence.index(f"<h3>{t}</h3>") for t in ("Story", "Old", "What if")]
    said = [evidence.index(f"Measured under: <b>{c}</b>") for c in (
        "RTT 5 ms ± 1 ms, CPU limit 0.5 cores", "loopback, no CPU limit", "RTT 0-20 ms")]
    assert heads[0] < said[0] < heads[1] < said[1] < heads[2] < said[2]   # each under its own
    answer = page[page.index("<section class='answer'>"):page.index("<h2>Notebooks</h2>")]
    assert "conditions: RTT 5 ms ± 1 ms, CPU limit 0.5 cores" in answer
    assert label({"rtt_ms": 0.0, "cpu_limit": 1, "cpu_limit_applied": False,
                  "cpu_limit_note": "cgroup not writable"}) == (
        "loopback, CPU limit 1 core asked, not applied: cgroup not writable")
    assert label(None) == label({}) == "loopback, no CPU limit"


def test_the_index_states_how_fine_the_instrument_was_beside_each_notebooks_numbers(tmp_path):
    """Each summary carries its runs' resolution line; the page says it once per section
    (the lead's with the answer), and a summary published before it says nothing."""
    rows = [{"generator_error_p99_us": 23.0, "scheduling": "SCHED_FIFO 1"},
            {"generator_lag_p99_us": 4_600.0}]
    story = _published("Story", "Fast.", figure=_figure(), instrument=rows)
    other = _published("Other", "Slow.", instrument=[{"generator_error_p99_ms": 0.015}])
    old = _published("Old", "Old verdict.")
    page = _index_page(tmp_path, [("01-story", story), ("02-other", other), ("03-old", old)])
    lead = ("Instrument: the load generator&#39;s own send error p99 was 4.6 ms in these runs "
            "(the worst of 2): latency differences smaller than that are not resolved. "
            "Senders scheduled SCHED_FIFO 1.")
    answer = page[page.index("<section class='answer'>"):page.index("<h2>Notebooks</h2>")]
    assert lead in answer and page.count(lead) == 1
    evidence = page[page.index("<h2>Summary</h2>"):]
    assert evidence.index("<h3>Other</h3>") < evidence.index("was 15 µs in this run") \
        < evidence.index("<h3>Old</h3>")
    assert page.count("Instrument:") == 2


# --- the browser checks themselves, on pages made to fail them --------------------------------

_WIDE = "<table><tr><td style='min-width:1400px'>wide</td></tr></table>"
_PAGES = {
    "fits": "<p>short</p><div style='overflow-x:auto'>" + _WIDE + "</div>"
            "<img style='max-width:100%' width=2000 height=10 src='data:image/gif;base64,"
            "R0lGODlhAQABAAAAACw='>",
    "page overflow": _WIDE,
    "wrapper wider than the page": "<div style='overflow-x:auto;width:1500px'>" + _WIDE + "</div>",
    "cut off": "<div style='overflow:hidden;width:300px'>" + _WIDE + "</div>",
    "figure past its container": "<div style='width:300px'><img width=500 height=10 "
                                 "src='data:image/gif;base64,R0lGODlhAQABAAAAACw='></div>",
}


@pytest.mark.parametrize("what", list(_PAGES))
def test_layout_problems_finds_what_a_reader_would_see_broken(chromium, tmp_path, what):
    path = tmp_path / "p.html"
    path.write_text(f"<!DOCTYPE html><html><body>{_PAGES[what]}</body></html>")
    page = chromium.new_page(viewport={"width": 800, "height": 600})
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    problems = layout_problems(page)
    page.close()
    if what == "fits":
        assert problems == []
    else:
        assert problems, what
        assert what != "cut off" or any("cuts it off" in p for p in problems)
        assert what != "wrapper wider than the page" or any("wrapper" in p for p in problems)


def test_text_problems_names_raw_dicts_pids_and_ports():
    assert text_problems("p99 12 ms {not a dict} pid-less; 10.0.0.1") == []
    found = text_problems("sizes {'rate': 100}; json {\"a\": {\"b\": 1}}; server "
                          "127.0.0.1:40621 (pid 861)")
    assert [f.split(":")[0] for f in found] == ["raw dict", "raw dict", "pid", "loopback port"]


# --- progress: whole lines for a log while a long cell runs -----------------------------------

def test_running_cell_reads_papermill_state(tmp_path):
    from datetime import UTC, datetime

    from lootlab.report.execute import running_cell

    started = datetime(2024, 1, 1, tzinfo=UTC)
    def cell(status, source):
        return {"cell_type": "code", "source": source, "metadata": {"papermill": {
            "status": status, "start_time": started.isoformat()}}}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": "# t", "metadata": {}},
        cell("completed", "x = 1"), cell("running", ["# why\n", "run = slow()\n"]),
        cell("pending", "y")]}))
    found = running_cell(path, now=started.timestamp() + 42)
    assert found.describe() == "cell 2 of 3, 42 s in: why"    # its comment, not its code
    path.write_text('{"cells": [')       # mid-write
    assert running_cell(path) is None
    assert running_cell(tmp_path / "missing.ipynb") is None


def test_a_long_cell_prints_whole_lines_while_it_runs(tmp_path, monkeypatch):
    from lootlab.report import pipeline

    monkeypatch.setattr(pipeline, "LONG_CELL_EVERY", 1.0)
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    # the long cell runs until the test has read a line about it (2 minutes at most): as
    # long as a busy machine needs, and no longer on a quiet one
    write_notebook(nbs / "01-long.ipynb", [WAIT_FOR, 'wait_for("seen")'], title="Long")
    seen = tmp_path / "out" / "executed" / "seen"      # the kernel runs in out/executed
    messages: list[str] = []

    def progress(message: str) -> None:
        messages.append(message)
        if ": cell " in message:
            seen.touch()

    rep = build_report("quick", tmp_path / "out", notebooks=nbs, progress=progress)
    assert rep.ok
    lines = [m for m in messages if ": cell " in m]
    assert lines, messages
    # four code cells: the parameters, papermill's injected ones, then the two above; the
    # line names the running one by its section's heading, never by a line of its code
    assert all(m.startswith("[1/1] 01-long.ipynb: cell 4 of 4, ") and
               m.endswith(" in: Long") for m in lines), lines
    assert all("\r" not in m and "\n" not in m for m in messages)


WAIT_FOR = """import pathlib, time

def wait_for(flag, limit=120.0):
    ends = time.monotonic() + limit
    while not pathlib.Path(flag).exists() and time.monotonic() < ends:
        time.sleep(0.05)"""


def test_the_resolution_line_leaves_out_saturated_runs():
    """A saturated run's own error adds up a backlog's pauses and its figures are not
    shown: the page's resolution is that of the runs it does show."""
    from lootlab.report.instrument import resolution_line

    rows = [{"generator_error_p99_us": 20.0, "scheduling": "SCHED_FIFO 1, sleeping"},
            {"generator_error_p99_us": 100_000.0, "saturated": True}]
    line = resolution_line(rows)
    assert "was 20 µs in this run" in line, line
