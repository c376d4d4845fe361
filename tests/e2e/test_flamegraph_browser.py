"""Flame graphs as a reader sees them, in Chromium: they fit their container at 800 and
1280 px (embedded as the report and JupyterLab get them, an iframe srcdoc, and inline),
labels stay inside their boxes, a click zooms, and the search highlights and shares."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _report import PageLog, browser, click_zooms, flamegraph_frames

from lootlab.profiling import FlameProfile, diff_svg
from lootlab.report.embed import interactive_svg_html

LOOP = ("0x7f0000000001 (libc.so.6)", "main (lootlab/workload.py:270)",
        "_measured_ops (lootlab/workload.py:141)",
        "_overlay_op.<locals>.op (lootlab/workload.py:126)")
DEADLINE_MS = 30_000

pytestmark = pytest.mark.skipif(not shutil.which("chromium"), reason="no chromium (make system-deps)")


def _profile(name: str, leaves: dict[tuple[str, ...], int]) -> FlameProfile:
    return FlameProfile(name, {LOOP + s: c for s, c in leaves.items()},
                        {"native": True, "idle": False, "gil": False, "rate": 100})


REMOTE = _profile("grpc-tls-pooled", {
    ("GrpcClient.near (lootlab/clients.py:278)", "GrpcClient._query (lootlab/clients.py:248)",
     "_UnaryUnaryMultiCallable._blocking (grpc/_channel.py:1119)", "sendmsg (libc.so.6)"): 300,
    ("GrpcClient.near (lootlab/clients.py:278)", "_decode_messages (lootlab/clients.py:104)",
     "PyArray_AssignFromCache (numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so)"): 90,
    ("GrpcClient.near (lootlab/clients.py:278)", "tiny_frame_with_a_rather_long_name (x.py:1)"): 6,
})
LOCAL = _profile("mmap", {
    ("LootIndex.near (lootlab/index.py:231)", "Snapshot.query_cells (lootlab/snapshot.py:111)"): 250,
    ("LootIndex.near (lootlab/index.py:231)", "check_point (lootlab/queryargs.py:39)"): 50,
})
SLOWER = _profile("grpc-tls-slow-decode", {k: c * (4 if any("decode" in f for f in k) else 1)
                                           for k, c in {s[len(LOOP):]: c for s, c in
                                                        REMOTE.stacks.items()}.items()})


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """A report-like page (iframes in an 830 px output area, as JupyterLab has) and a page
    with the SVG inline (a notebook's ``_repr_html_``)."""
    d = tmp_path_factory.mktemp("flame-pages")
    figures = [interactive_svg_html(REMOTE.svg, title="remote"),
               interactive_svg_html(diff_svg(REMOTE, LOCAL), title="side by side"),
               interactive_svg_html(diff_svg(SLOWER, REMOTE), title="differential")]
    framed = d / "framed.html"
    framed.write_text("<!DOCTYPE html><html><body style='margin:8px'><div class='out' "
                      "style='max-width:830px'>" + "".join(figures) + "</div></body></html>")
    inline = d / "inline.html"
    inline.write_text("<!DOCTYPE html><html><body><div class='out'>" + REMOTE.svg +
                      "</div></body></html>")
    return {"framed": framed, "inline": inline}


@pytest.fixture(scope="module")
def chromium():
    with browser() as b:
        yield b


_FITS = """() => {
  const svg = document.querySelector('svg.lf-svg'), r = svg.getBoundingClientRect();
  const doc = document.documentElement;
  const bad = [];
  for (const g of svg.querySelectorAll('g.lf')) {
    if (g.style.display === 'none') continue;
    const t = g.querySelector('text'), b = g.querySelector('rect');
    if (!t.textContent) continue;
    const right = t.getBBox().x + t.getBBox().width, end = +b.getAttribute('x') + +b.getAttribute('width');
    if (right > end + 1) bad.push(t.textContent);
  }
  for (const t of svg.querySelectorAll('text.lf-title, text.lf-note, text.lf-heading, g.lf-legend text')) {
    if (t.closest('g') && t.closest('g').style.display === 'none') continue;
    if (t.getBBox().x + t.getBBox().width > r.width + 1) bad.push(t.textContent);
  }
  return {svg: r.width, doc: doc.clientWidth, scroll: doc.scrollWidth, bad: bad,
          labels: [...svg.querySelectorAll('g.lf text')].filter(t => t.textContent).length};
}"""


@pytest.mark.parametrize("width", [800, 1280])
def test_flamegraphs_fit_their_container(chromium, pages, width):
    page = chromium.new_page(viewport={"width": width, "height": 900})
    log = PageLog(page)
    page.goto(pages["framed"].as_uri())
    page.wait_for_load_state("load")
    frames = flamegraph_frames(page)
    assert len(frames) == 3
    out = page.eval_on_selector("div.out", "e => e.getBoundingClientRect().width")
    for iframe in page.query_selector_all("iframe.lootlab-svg"):
        box = iframe.bounding_box()
        assert box["width"] <= out + 0.5
        frame = iframe.content_frame()
        frame.wait_for_function("() => document.documentElement.getBoundingClientRect().height"
                                " <= window.innerHeight + 1", timeout=DEADLINE_MS)  # not cut off
        fit = frame.evaluate(_FITS)
        assert fit["svg"] <= fit["doc"] + 0.5 and fit["scroll"] <= fit["doc"], fit
        assert fit["bad"] == [] and fit["labels"] >= 3, fit
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert log.errors == [] and log.network == []
    page.close()


def test_an_inline_flamegraph_fits_and_lays_out_again_when_resized(chromium, pages):
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.goto(pages["inline"].as_uri())
    wide = page.evaluate(_FITS)
    page.set_viewport_size({"width": 800, "height": 900})
    page.wait_for_function("() => document.querySelector('svg.lf-svg').viewBox.baseVal.width < 800")
    narrow = page.evaluate(_FITS)
    assert narrow["svg"] <= narrow["doc"] and narrow["scroll"] <= narrow["doc"], narrow
    assert wide["bad"] == [] and narrow["bad"] == [] and wide["labels"] >= narrow["labels"]
    page.close()


def _search(frame, text: str) -> str:
    box = frame.locator("foreignObject.lf-search input")
    box.fill(text)
    frame.wait_for_function("() => document.querySelector('.lf-search-result').textContent",
                            timeout=DEADLINE_MS)
    return frame.evaluate("() => document.querySelector('.lf-search-result').textContent")


@pytest.mark.parametrize("width", [800, 1280])
def test_click_zooms_and_search_highlights_with_its_share(chromium, pages, width):
    page = chromium.new_page(viewport={"width": width, "height": 900})
    log = PageLog(page)
    page.goto(pages["framed"].as_uri())
    page.wait_for_load_state("load")
    remote, side, differential = flamegraph_frames(page)
    for frame in (remote, side, differential):
        assert click_zooms(frame)
        frame.locator("g.lf[data-root]").first.click(force=True)  # reset
    # 'sendmsg' is one frame, with 300 of the 396 samples in the measured loop
    result = _search(remote, "sendmsg")
    assert result == "1 frame: 75.8 % of samples", result
    assert remote.locator("g.lf[data-match]").count() == 1
    fill = remote.eval_on_selector("g.lf[data-match] rect", "r => r.getAttribute('fill')")
    assert fill == "rgb(230,0,230)"
    # a regex; nested matches are counted once (near contains _query)
    assert _search(remote, "/^GrpcClient\\./") == "2 frames: 100.0 % of samples"
    assert _search(remote, "no-such-frame") == "no frame matches"
    assert _search(remote, "/(/").startswith("not a regular expression")
    # side by side: the share in each profile
    assert _search(side, "near") == "2 frames: 100.0 % of grpc-tls-pooled, 100.0 % of mmap"
    assert _search(side, "check_point") == "1 frame: 0.0 % of grpc-tls-pooled, 16.7 % of mmap"
    # the differential view: both shares of one merged tree
    assert _search(differential, "_decode_messages") == \
        "1 frame: 54.1 % of grpc-tls-slow-decode, 22.7 % of grpc-tls-pooled"
    assert log.errors == [] and log.network == []
    page.close()
