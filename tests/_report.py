"""Helpers for the report tests: tiny notebooks to feed the pipeline, and a headless browser."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def write_notebook(path: Path, cells: list[str], *, title: str = "A notebook",
                   parameters: str = 'size = "quick"') -> Path:
    """A notebook with a heading, a tagged parameters cell, then ``cells`` (code)."""
    params = new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell(f"# {title}"), params,
                             *[new_code_cell(src) for src in cells]])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))
    return path


@contextmanager
def browser() -> Iterator[object]:
    """Debian's chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class PageLog:
    """Console errors, page errors and any network (non-file) request of a page; the
    network ones are aborted so a page that needs the internet shows it."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        self.network: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.route("**/*", self._route)

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:", "about:", "blob:")):
            route.continue_()
        else:
            self.network.append(url)
            route.abort()


def figure_sizes(page) -> list[tuple[int, int]]:
    """(naturalWidth, naturalHeight) of every <img> in the page once loaded."""
    return page.eval_on_selector_all(
        "img", "els => els.map(e => [e.complete ? e.naturalWidth : 0, e.complete ? e.naturalHeight : 0])")


def flamegraph_frames(page) -> list:
    """The Playwright frames holding an embedded flamegraph SVG with its script: py-spy's
    own (inferno: ``#frames``) or lootlab's (``g.lf`` boxes)."""
    return [f for f in page.frames if f != page.main_frame and f.evaluate(
        "() => !!document.querySelector('svg script') && "
        "!!(document.getElementById('frames') || document.querySelector('g.lf'))")]


_NARROWEST = """() => {
  const gs = [...document.querySelectorAll('g.lf')].filter(g => !g.dataset.root);
  gs.sort((a, b) => (+a.dataset.w) - (+b.dataset.w));
  const g = gs.find(g => +g.dataset.w > 0.001) || gs[0];
  g.setAttribute('data-test-target', '1');
  return +g.querySelector('rect').getAttribute('width');
}"""


def click_zooms(frame) -> bool:
    """Click a small frame box and check the graph zoomed into it: inferno un-hides its
    'Reset Zoom' button; lootlab's SVG widens the clicked box."""
    if frame.evaluate("() => !!document.getElementById('unzoom')"):
        before = frame.evaluate("() => document.getElementById('unzoom').getAttribute('class')")
        boxes = frame.locator("#frames > g")
        boxes.nth(boxes.count() - 1).click(force=True)
        after = frame.evaluate("() => document.getElementById('unzoom').getAttribute('class')")
        return before == "hide" and after != "hide"
    width_before = frame.evaluate(_NARROWEST)
    frame.locator("g.lf[data-test-target='1']").click(force=True)
    width_after = frame.evaluate(
        "() => +document.querySelector(\"g.lf[data-test-target='1'] rect\").getAttribute('width')")
    return width_after > width_before * 2


# What a reader must never see in a page: a Python dict printed raw, a process id or a
# loopback port (lines the harness logs for itself).
RAW_TEXT = {"raw dict": r"\{'|\": \{", "pid": r"\bpid \d+", "loopback port": r"127\.0\.0\.1:\d+"}

_LAYOUT = """() => {
  const out = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth)
    out.push(`page scrolls sideways: ${doc.scrollWidth} px wide in a ${window.innerWidth} px window`);
  const name = e => {
    const text = (e.querySelector && e.querySelector('th, caption, h4') || e).textContent || '';
    return `${e.tagName.toLowerCase()}${e.className && typeof e.className === 'string'
      ? '.' + e.className.trim().split(/\\s+/)[0] : ''} "${text.trim().slice(0, 40)}"`;
  };
  const scrolls = s => s === 'auto' || s === 'scroll';
  const clips = s => s === 'hidden' || s === 'clip';
  const boxes = [...document.querySelectorAll('table, img, iframe, canvas, svg')]
    .filter(e => !(e.tagName.toLowerCase() === 'svg' && e.parentElement.closest('svg')))
    .filter(e => e.getBoundingClientRect().width > 0);
  for (const e of boxes) {
    const w = e.getBoundingClientRect().width;
    const table = e.tagName.toLowerCase() === 'table';
    const parent = e.parentElement;
    if (!table && parent.clientWidth > 0 && w > parent.clientWidth + 1) {   // figures scale
      out.push(`${name(e)} is ${Math.round(w)} px wide in a ${parent.clientWidth} px ` +
               `${parent.tagName.toLowerCase()}`);
      continue;
    }
    let held = false;   // by a wrapper that scrolls or cuts off: the first one decides
    for (let a = parent; a && a !== doc && !held; a = a.parentElement) {
      const cs = getComputedStyle(a);
      if (scrolls(cs.overflowX)) {       // scrolls inside a wrapper: it must fit the page
        held = true;
        const r = a.getBoundingClientRect();
        if (r.right > window.innerWidth + 1 || r.left < -1)
          out.push(`${name(e)} scrolls in a wrapper wider than the page (${Math.round(r.width)} px)`);
      } else if (clips(cs.overflowX) && a.clientWidth > 0 && w > a.clientWidth + 1) {
        held = true;
        out.push(`${name(e)} is ${Math.round(w)} px wide in a ${a.clientWidth} px ` +
                 `${a.tagName.toLowerCase()} that cuts it off`);
      }
    }
    if (!held && parent.clientWidth > 0 && w > parent.clientWidth + 1)
      out.push(`${name(e)} is ${Math.round(w)} px wide in a ${parent.clientWidth} px ` +
               `${parent.tagName.toLowerCase()}: it runs past its container`);
  }
  return out;
}"""


def layout_problems(page) -> list[str]:
    """What a reader would see as broken layout in the loaded ``page`` at its window width:
    the page scrolling sideways, a table or figure wider than what holds it (a table may
    scroll inside a wrapper, if the wrapper fits the page)."""
    return page.evaluate(_LAYOUT)


def text_problems(text: str) -> list[str]:
    """Raw dicts, pids and loopback ports in a page's visible text, each with its context."""
    import re

    found = []
    for what, pattern in RAW_TEXT.items():
        for m in re.finditer(pattern, text):
            context = " ".join(text[max(0, m.start() - 50):m.end() + 50].split())
            found.append(f"{what}: ...{context}...")
    return found
