"""The page checks (``tests/_page_checks.py``) can fail: each is shown a small page with the
one problem it exists for, and the same page without it.

The content checks read HTML alone.  The layout checks need a laid-out page, so those
tests drive headless Chromium on tiny local pages (no server, no network; skipped where
Chromium is not installed)."""

from __future__ import annotations

import base64
import io
import shutil

import pytest
from _page_checks import content_problems, layout_problems, quantity, reader_browser
from hypothesis import given
from hypothesis import strategies as st

from lootlab.report.templating import template_text


def _table(headers: list[str], *rows: list[str], caption: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    cap = f"<caption>{caption}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kinds(problems: list[str]) -> list[str]:
    return sorted({p.split(":")[0] for p in problems})


# --- content -----------------------------------------------------------------------------------

def test_one_quantity_in_two_units_within_a_table_is_caught():
    bad = _table(["source", "p50 (µs)", "p99 (us)", "max (ms)"], ["local", "120", "340", "30.1"])
    good = _table(["source", "p50 (ms)", "p99 (ms)", "max (ms)"], ["local", "0.12", "0.34", "30.1"])
    assert _kinds(content_problems(bad)) == ["mixed units"]
    assert "'max (ms)'" in content_problems(bad)[0]
    assert content_problems(good) == []


def test_different_quantities_may_take_different_units():
    page = _table(["variant", "send lag p99 (us)", "generator's own send error p99 (ms)",
                   "pause total (ms)", "pause p99 (us)"], ["mmap", "12", "1.5", "3", "40"])
    assert content_problems(page) == []
    also = page.replace("<th>pause total (ms)</th>", "<th>pause max (ms)</th>")
    assert _kinds(content_problems(also)) == ["mixed units"]     # pause max vs pause p99


@given(st.sampled_from(["p50", "p99", "p99.9", "max", "min", "mean", "p99 95 % CI high"]),
       st.sampled_from(["us", "µs", "ms", "s", "MiB"]))
def test_a_statistic_of_a_quantity_is_that_quantity(stat, unit):
    name, _, said = quantity(f"pause {stat} ({unit})")
    assert name == "pause" and said == {"us": "µs"}.get(unit, unit)


def test_cells_with_different_unit_suffixes_down_one_column_are_caught():
    bad = _table(["variant", "p99"], ["grpc-tls-fresh", "2.41 s"], ["mmap", "285 µs"])
    good = _table(["variant", "p99"], ["grpc-tls-fresh", "2,410 ms"], ["mmap", "0.285 ms"])
    assert _kinds(content_problems(bad)) == ["mixed units"]
    assert content_problems(good) == []


def test_a_blank_cell_needs_a_reason():
    bad = _table(["step", "write-up p99 (ms)"], ["grpc-tls-fresh", "95"], ["grpc-tls-pooled", ""])
    nan = _table(["step", "kernel share"], ["mmap", "NaN"])
    good = _table(["step", "write-up p99 (ms)"], ["grpc-tls-fresh", "95"],
                  ["grpc-tls-pooled", "n/a: the write-up gave none"])
    figure = _table(["step", "spectrum"], ["mmap", "<img src='x.png' alt='spectrum'>"])
    assert _kinds(content_problems(bad)) == ["blank cell"]
    assert "grpc-tls-pooled" in content_problems(bad)[0]
    assert _kinds(content_problems(nan)) == ["blank cell"]
    assert content_problems(good) == [] and content_problems(figure) == []


def test_a_layout_table_without_headers_is_not_a_data_table():
    assert content_problems("<table><tr><td>CPU</td><td></td></tr></table>") == []


def test_one_run_valid_in_one_table_and_invalid_in_another_is_a_contradiction():
    trials = _table(["trial", "variant", "p99 (ms)", "run"], ["1", "mmap", "0.3", "valid"],
                    ["2", "mmap", "0.4", "valid"], caption="trials")
    health = _table(["variant", "trial", "offered (req/s)", "run"], ["mmap", "1", "100", "valid"],
                    ["mmap", "2", "100", "INVALID"], caption="health")
    agree = health.replace("INVALID", "valid")
    assert _kinds(content_problems(trials + health)) == ["contradiction"]
    assert "'2'" in content_problems(trials + health)[0]
    assert content_problems(trials + agree) == []


def test_runs_under_other_conditions_are_other_runs():
    a = _table(["variant", "trial", "RTT (ms)", "run"], ["mmap", "1", "2", "valid"])
    b = _table(["variant", "trial", "RTT (ms)", "run"], ["mmap", "1", "20", "INVALID"])
    assert content_problems(a + b) == []


def test_a_variant_that_fits_and_is_over_the_budget_under_one_condition_is_a_contradiction():
    one = _table(["condition", "fits the budget", "over the budget", "cannot tell"],
                 ["RTT 2 ms", "mmap, grpc-tls-resumed", "grpc-tls-resumed", "–"], caption="one")
    decision = _table(["condition", "fits the budget", "over the budget"],
                      ["RTT 2 ms", "mmap", "grpc-tls-fresh"], caption="decision")
    budget = _table(["condition", "fits the budget", "over the budget"],
                    ["RTT 2 ms", "grpc-tls-fresh, mmap", "–"], caption="budget")
    other = budget.replace("RTT 2 ms", "RTT 20 ms")
    assert _kinds(content_problems(one)) == ["contradiction"]
    assert "grpc-tls-resumed" in content_problems(one)[0]
    assert ["grpc-tls-fresh" in p for p in content_problems(decision + budget)] == [True]
    assert content_problems(decision + other) == []


def test_a_run_said_to_keep_its_schedule_but_invalid_is_a_contradiction():
    runs = _table(["step", "p99 (ms)", "run"], ["grpc-tls-fresh", "9.6", "valid"],
                  ["mmap", "0.29", "INVALID"])
    kept = "<p>At 100 requests/s mmap was fastest. mmap's generator kept its schedule.</p>"
    same = "<p>mmap's generator kept its schedule, yet its runs are INVALID.</p>"
    fine = "<p>mmap's generator could not keep its schedule, so its runs are INVALID.</p>"
    other = "<p>grpc-tls-fresh's generator kept its schedule.</p>"
    assert _kinds(content_problems(kept + runs)) == ["contradiction"]
    assert _kinds(content_problems(same)) == ["contradiction"]
    assert content_problems(fine + runs) == [] and content_problems(other + runs) == []


# --- layout, in Chromium -----------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(not shutil.which("chromium"),
                                    reason="no chromium (make system-deps)")
REPORT_STYLE = (f"<style>{template_text('readable.css')}</style>"
                f"<script>{template_text('scroll_hint.js')}</script>")
WIDE_HEADERS = [f"column {i} (ms)" for i in range(14)] + ["run"]
WIDE_ROW = [f"{1000 + i}.5" for i in range(14)] + ["<span class='ll-badge'>valid</span>"]


@pytest.fixture(scope="module")
def chromium():
    with reader_browser() as b:
        yield b


@pytest.fixture
def shown(chromium, tmp_path):
    """Lay out ``body`` in a window ``width`` px wide; its layout problems."""
    pages = []

    def show(body: str, width: int = 800) -> list[str]:
        path = tmp_path / f"page{len(pages)}.html"
        path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'>{REPORT_STYLE}"
                        f"</head><body style='margin:8px;font:14px sans-serif'>{body}</body></html>")
        page = chromium.new_page(viewport={"width": width, "height": 700})
        pages.append(page)
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        return layout_problems(page)

    yield show
    for page in pages:
        page.close()


@needs_chromium
def test_text_cut_inside_a_cell_is_caught(shown):
    long = "a frame name far too long for its narrow column"
    cut = _table(["frame", "share"], [long, "5 %"]).replace(
        "<td>" + long, "<td style='max-width:90px;overflow:hidden;white-space:nowrap'>" + long)
    spill = ("<table style='table-layout:fixed;width:200px'><thead><tr><th>frame</th><th>share"
             "</th></tr></thead><tbody><tr><td style='white-space:nowrap'>" + long +
             "</td><td>5 %</td></tr></tbody></table>")
    assert _kinds(shown(cut)) == ["clipped cell"]
    assert _kinds(shown(spill)) == ["clipped cell"]
    assert shown(_table(["frame", "share"], [long, "5 %"])) == []


@needs_chromium
def test_a_column_out_of_view_needs_a_scroll_bar_and_a_shadow(shown):
    wide = _table(WIDE_HEADERS, WIDE_ROW).replace("<table>", "<table class='summary'>")
    hidden = f"<div style='overflow:hidden'>{wide}</div>"
    bare = f"<div style='overflow-x:auto'>{wide}</div>"
    report = f"<div class='scroll' style='overflow-x:auto'>{wide}</div>".replace("<th>run</th>",
                                                          "<th class='ll-status'>run</th>")
    report = report.replace("<td><span class='ll-badge'>", "<td class='ll-status'><span class='ll-badge'>")
    assert any("nothing scrolls" in p for p in shown(hidden))
    assert any("no shadow" in p for p in shown(bare))
    assert any("run column" in p for p in shown(bare))
    assert shown(report) == []
    assert shown(bare, width=2400) == []


@needs_chromium
def test_the_run_column_must_show_without_scrolling_even_with_a_shadow(shown):
    wide = _table(WIDE_HEADERS, WIDE_ROW).replace("<table>", "<table class='summary'>")
    problems = shown(f"<div class='scroll' style='overflow-x:auto'>{wide}</div>")  # run hides
    assert _kinds(problems) == ["hidden column"] and all("run column" in p for p in problems)


@needs_chromium
def test_svg_text_too_small_or_outside_its_figure_is_caught(shown):
    def svg(size: float, x: int = 20, width: str = "100%") -> str:
        return (f"<svg width='{width}' viewBox='0 0 1200 300'><text x='{x}' y='150' "
                f"font-size='{size}'>latency per 1 s (µs)</text></svg>")
    assert _kinds(shown(svg(10))) == ["small text"]             # 1200 units in ~780 px: 6.5 px
    assert shown(svg(14)) == []
    assert _kinds(shown(svg(14, x=1150))) == ["text outside figure"]
    assert _kinds(shown(f"<iframe srcdoc=\"{svg(10)}\" style='width:780px'></iframe>")) == [
        "small text"]


def _png(width_in: float, dpi: int = 100) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, 2), layout="constrained")
    fig.subplots().set_xlabel("latency (ms)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@needs_chromium
def test_a_figure_shrunk_until_its_text_is_small_is_caught(shown):
    scaled = "<div style='max-width:760px'><img src='{}' style='max-width:100%'></div>"
    assert _kinds(shown(scaled.format(_png(12)))) == ["small text"]
    assert shown(scaled.format(_png(8))) == []
    assert shown(scaled.format(_png(6, dpi=200))) == []


# --- the rules the checks hold the pages to, where lootlab applies them --------------------------

def test_every_text_of_a_finished_figure_is_at_least_the_minimum():
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from lootlab.plots.axes import MIN_TEXT_PT, fit_titles

    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.subplots()
    ax.plot([1, 2, 3], label="p99")
    ax.tick_params(labelsize=6)
    ax.annotate("0.536", (2, 2), fontsize=7)
    ax.legend(fontsize=6)
    ax.set_title("a title")
    fit_titles(fig)
    fig.draw_without_rendering()            # ticks made at drawing time count too
    sizes = {t.get_text(): t.get_fontsize() for t in fig.findobj(Text) if t.get_text()}
    assert min(sizes.values()) >= MIN_TEXT_PT, sizes


def test_the_latency_split_fits_the_page_width():
    import pandas as pd

    from lootlab.plots.axes import PAGE_WIDTH_IN
    from lootlab.plots.split import latency_split

    steps = pd.DataFrame({"variant": ["grpc-tls-fresh", "grpc-tls-pooled", "mmap"],
                          "split_send_wait_ms": [0.1, 0.02, 0.001],
                          "split_transport_ms": [4.5, 1.2, None],
                          "split_call_ms": [None, None, 0.1]})
    assert latency_split(steps).get_size_inches()[0] <= PAGE_WIDTH_IN


@pytest.mark.parametrize("width_in,dpi", [(12, 100), (8, 100), (7, 200), (4, 72)])
def test_a_figure_is_never_shown_narrower_than_its_text_reads(width_in, dpi):
    from lootlab.report.export import readable_figures
    from lootlab.report.templating import MIN_TEXT_PT, READABLE_PX, readable_min_width

    uri = _png(width_in, dpi)
    natural = width_in * dpi
    least = readable_min_width(uri.split(",", 1)[1])
    assert abs(least - min(natural, natural * READABLE_PX / (MIN_TEXT_PT * dpi / 72))) <= 2
    tag = f"<img src='{uri}' style='max-width:100%'>"
    assert readable_figures(tag) == f"<img src='{uri}' style='min-width:{least}px;max-width:100%'>"
    assert readable_figures(f'<img src="{uri}">') == f"<img style='min-width:{least}px' src=\"{uri}\">"


def test_the_pages_carry_the_reading_rules():
    from lootlab.report.templating import render

    summary = {"title": "The story's steps", "verdict": "", "columns": ["step", "p99 (ms)", "run"],
               "rows": [[("mmap", False), ("0.54", True), ("INVALID", False)]]}
    html = render("macros.html.j2") + render(
        "index.html.j2", size="quick", date="today", failed=0, total_runs=1, total_seconds=1.0,
        runs=[], answer={"figure": {"uri": _png(12), "alt": "steps", "width": 1200},
                         "verdict": "v", "href": "", "name": "01"},
        summaries=[summary], env_rows=[], warnings=[], smoke_note="")
    assert "<th class='ll-status'>run</th>" in html and "<td class='ll-status'>INVALID" in html
    assert "min-width:972px" in html                 # 12 in at 100 dpi: 8 pt reads 9 px
    assert ".ll-more-right" in html and "ll-more-right" in html.split("<script>")[1]
