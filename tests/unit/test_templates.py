"""The report's HTML comes from jinja2 templates in package data, autoescaped.

Each test feeds values that carry markup (``<``, ``&``, quotes) and checks that they arrive as
text, and that the pages keep the sections, classes and links the browser tests rely on.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from importlib.resources import files
from pathlib import Path

import nbformat
import pytest

from lootlab.profiling import svg as flame_svg
from lootlab.report import embed, export, front_page as index, summary
from lootlab.report.environment import Environment
from lootlab.report.execute import CellError, NotebookRun
from lootlab.report.templating import environment, render

EVIL = "<script>alert(\"x&y\")</script> 'q'"
EVIL_ESCAPED = "&lt;script&gt;alert(&#34;x&amp;y&#34;)&lt;/script&gt; &#39;q&#39;"


def _env(**extra: str) -> Environment:
    return Environment(cpu=EVIL, cores=2, usable_cores=1, memory_gib=1.0, python="3.11",
                       platform="linux", packages={"numpy": "2.0"}, git_commit="abc",
                       size="quick", date="2024-01-01 00:00", page_cache="warm", extra=extra)


def _runs(out: Path) -> list[NotebookRun]:
    published = summary.summary_bundle(EVIL, [{"step": EVIL, "p99 ms": 95.0, "n": 12345}],
                                       verdict=EVIL)[summary.SUMMARY_MIME]
    return [
        NotebookRun("01-good", Path("a"), Path("b"), 12.4, html=out / "01-good.html",
                    title=EVIL, summary=published),
        NotebookRun("02-bad", Path("a"), Path("b"), 3.0, title="Bad",
                    error=CellError(2, "ValueError", EVIL, "x = 1\n")),
    ]


def test_every_template_is_package_data_found_by_importlib_resources():
    names = {p.name for p in files("lootlab.report").joinpath("templates").iterdir()}
    assert {"index.html.j2", "macros.html.j2", "summary.html.j2", "env_footer.html.j2",
            "nav.html.j2", "export_offline.html.j2", "svg_document.html.j2",
            "svg_frame.html.j2", "index.css", "history_shim.js"} <= names
    assert files("lootlab.profiling").joinpath("flamegraph.js").is_file()
    loadable = set(environment().list_templates())
    assert names <= loadable


def test_autoescape_is_on_for_every_template():
    assert render("summary.html.j2", title="<b>", columns=[], rows=[], verdict="") \
        .startswith("<h4>&lt;b&gt;</h4>")
    assert environment().autoescape is True


def test_index_page_escapes_data_and_keeps_its_sections(tmp_path):
    page = index.render_index(_runs(tmp_path), _env(**{EVIL: EVIL}), out_dir=tmp_path,
                              total_seconds=15.4)
    assert "<script>alert" not in page and "x&y" not in page   # the data, escaped
    # link text; summary title, verdict, cell; the error; CPU, an extra row's key and value
    assert page.count(EVIL_ESCAPED) == 8
    assert [m for m in re.findall(r"<h2>(.*?)</h2>", page)] == ["Notebooks", "Summary",
                                                                "Environment"]
    for cls in ("notebooks", "env"):
        assert f'<table class="{cls}">' in page
    assert "<table class='summary'>" in page and "<p class='verdict'>" in page
    assert f"<a href='01-good.html'>{EVIL_ESCAPED}</a>" in page
    assert "<td class='num'>95</td>" in page and "<td class='num'>12,345</td>" in page
    assert "<td class='num'>12 s</td>" in page
    assert "<span class='failed'>1 of 2 notebooks failed</span>" in page
    assert "<span class='ok'>ok</span>" in page and "<span class='failed'>failed</span>: " in page
    assert "<title>lootlab report (quick)</title>" in page and "15 s in all" in page
    assert "td.num { text-align: right" in page  # the stylesheet is inlined
    assert "No notebook published a summary" not in page


def test_index_page_without_summaries_or_failures_says_so(tmp_path):
    run = NotebookRun("03-plain", Path("a"), Path("b"), 1.0, title="")
    page = index.render_index([run], _env(), out_dir=tmp_path, total_seconds=1)
    assert "<p>No notebook published a summary (see the notebooks).</p>" in page
    assert "<span class='ok'>all 1 notebooks ran</span>" in page
    assert "<td>03-plain</td><td>03-plain</td>" in page  # no HTML: name, not a link


def test_summary_bundle_html_escapes_title_cells_and_verdict():
    bundle = summary.summary_bundle(EVIL, [{EVIL: EVIL, "v": 1234.5}, {"v": None}], verdict=EVIL)
    table = bundle["text/html"]
    # title, column head, cell and verdict, each escaped (the table by lootlab.report.format)
    assert "<script>" not in table and table.count("&lt;script&gt;") == 4
    assert table.startswith(f"<h4>{EVIL_ESCAPED}</h4>")
    assert "<table class='ll-table'>" in table
    assert "<td class='ll-num'>1,230</td>" in table   # three figures, as everywhere else
    # a missing value is a dash, never "None" or "nan"
    assert "<td class='ll-num'>–</td>" in table and "None" not in table and "nan" not in table
    assert table.endswith(f"<p class='lootlab-verdict'><b>{EVIL_ESCAPED}</b></p>")
    assert bundle[summary.SUMMARY_MIME]["verdict"] == EVIL  # the JSON keeps the raw text


def test_env_footer_and_nav_escape_their_values():
    footer = export.env_footer([(EVIL, EVIL)], note=EVIL)
    assert footer == (f"<div class='lootlab-footer'><b>Environment</b><p>{EVIL_ESCAPED}</p>"
                      f"<table><tr><td>{EVIL_ESCAPED}</td><td>{EVIL_ESCAPED}</td></tr>"
                      "</table></div>")
    nav = export.nav_header(["01-a", "02-<b>"], "01-a")
    assert nav.startswith("<div class='lootlab-nav'><a href='index.html'>index</a> |")
    assert "<b>01-a</b> · <a href='02-&lt;b&gt;.html'>02-&lt;b&gt;</a></div>" in nav


def test_export_uses_the_packaged_template(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# hello")]
    out = export.export_html(nb, tmp_path / "n.html", header=export.nav_header(["n"], "n"),
                             footer=export.env_footer([("k", EVIL)]), title=EVIL)
    page = out.read_text()
    assert ".lootlab-nav { font: 14px sans-serif;" in page  # the template's extra_css block
    # nbconvert re-serialises the page (double quotes, only <>& escaped in text)
    assert '<div class="lootlab-nav"><a href="index.html">index</a> | <b>n</b></div>' in page
    text = html.escape(EVIL, quote=False)
    assert f"<td>{text}</td>" in page and f"<title>{text}</title>" in page
    assert "<script>alert" not in page
    assert export.external_urls(page) == []
    assert page.index('"lootlab-nav">') < page.index("hello") < page.index('"lootlab-footer">')


def test_svg_frame_escapes_the_whole_document_into_srcdoc():
    svg = '<?xml version="1.0"?><svg height="50"><text>a &amp; "b"</text></svg>'
    frame = embed.interactive_svg_html(svg, title=EVIL)
    assert frame.startswith('<div class="lootlab-svg-frame"><iframe class="lootlab-svg"')
    assert frame.count("<iframe") == 1 and "<svg" not in frame and "<script" not in frame
    assert f'title="{EVIL_ESCAPED}"' in frame and "height:66px" in frame
    srcdoc = html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1))
    assert srcdoc == embed.svg_document(svg)
    assert "<?xml" not in srcdoc and '<body><svg height="50"><text>a &amp; "b"</text>' in srcdoc
    shim = files("lootlab.report").joinpath("templates", "history_shim.js").read_text()
    assert f"<script>{shim.rstrip()}</script>" in srcdoc  # runs before the figure's script


def test_flamegraph_embeds_the_packaged_script_once():
    text = flame_svg.render({("main", "f<x>&"): 3, ("main", "g"): 1}, title=EVIL, width=600)
    packaged = files("lootlab.profiling").joinpath("flamegraph.js").read_text()
    assert "lfWidth" in packaged and "]]>" not in packaged
    assert text.count("<script>") == 1 and f"<script><![CDATA[\n{packaged}]]></script>" in text
    root = ET.fromstring(text)  # well-formed XML: names and the title are escaped
    assert root.get("data-lf-width") == "600.000000" and root.get("data-lf-pad") == "10.000000"
    assert root.find("{http://www.w3.org/2000/svg}text").text.startswith(EVIL)
    names = [g.get("data-n") for g in root.iter("{http://www.w3.org/2000/svg}g")]
    assert names[0] == "all" and "f<x>&" in names


def test_flamegraph_script_refuses_a_cdata_terminator(monkeypatch):
    class Fake:
        def joinpath(self, *_):
            return self

        def read_text(self, encoding: str = "utf-8") -> str:
            return "var a = b[c[0]]>1;"

    flame_svg.script.cache_clear()
    monkeypatch.setattr(flame_svg, "files", lambda _pkg: Fake())
    try:
        with pytest.raises(ValueError, match="CDATA|]]>"):
            flame_svg.script()
    finally:
        flame_svg.script.cache_clear()
