"""What a careful reader would call broken on a report page, as checks a test can run.

Two kinds:

- *content* checks read the page's HTML (no browser): mixed units within one table, blank
  cells without a reason, and sentences or tables that contradict each other in a way a
  rule can decide (``content_problems``);
- *layout* checks need the page laid out in Chromium at a window width: text cut inside a
  table cell, a column out of view with no visible way to scroll to it (or a run's
  valid / INVALID column out of view at all), figure text smaller than 8 px, and SVG text
  outside its figure (``layout_problems``).

Each problem is one line naming the check, the element and what is wrong.  The rules are
deliberately conservative: each flags only what reads wrong whatever the data.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bs4 import BeautifulSoup, Tag

#: Smallest text a reader may be given (CSS px) at an 800 px window.
MIN_TEXT_PX = 8.0
#: The smallest text (points) a matplotlib figure may hold, by the shared figure rules.
FIGURE_MIN_PT = 8.0
#: Variant names a sentence or a cell may name (the registered ones).
VARIANTS = ("grpc-tls-fresh", "grpc-tls-resumed", "grpc-tls-pooled", "grpc-tls-packed",
            "grpc-plain", "mmap")
STATUS_HEADERS = {"run", "status", "valid"}


# --- tables as a reader sees them ------------------------------------------------------------

@dataclass
class Table:
    """One data table: its name (caption, else headers), header texts, and rows of cells
    (text, and whether the cell holds an image or a control instead of text)."""

    name: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    filled: list[list[bool]] = field(default_factory=list)
    scope: Tag | None = None

    def column(self, i: int) -> list[str]:
        return [r[i] for r in self.rows if i < len(r)]

    def header_index(self, *words: str) -> int | None:
        for i, h in enumerate(self.headers):
            if _bare(h) in words:
                return i
        return None


def _text(node: Tag) -> str:
    return " ".join(node.get_text(" ", strip=True).split())


def _bare(header: str) -> str:
    """A header without its unit: "p99 (ms)" -> "p99"."""
    return re.sub(r"\s*\([^()]*\)\s*$", "", header).strip().lower()


def _scope(table: Tag) -> Tag | None:
    """The part of the page a table belongs to: its section, or its notebook cell."""
    for parent in table.parents:
        classes = parent.get("class") or []
        if parent.name == "section" or "jp-Cell" in classes:
            return parent
    return None


def parse(html: str) -> BeautifulSoup:
    # the page's base64 figures are long and irrelevant here: drop them before parsing
    html = re.sub(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=\s]+", "data:,", html)
    return BeautifulSoup(html, "html.parser")


def tables(soup: BeautifulSoup) -> list[Table]:
    """The page's data tables (those with a header row), each cell as its visible words."""
    found = []
    for node in soup.find_all("table"):
        if node.find_parent("table") is not None or node.find_parent("svg") is not None:
            continue
        head_row = node.find("thead")
        head_row = head_row.find_all("tr")[-1] if head_row and head_row.find("tr") else None
        if head_row is None:
            head_row = next((tr for tr in node.find_all("tr") if tr.find("th")
                             and not tr.find("td")), None)
        if head_row is None:
            continue
        headers = [_text(c) for c in head_row.find_all(["th", "td"], recursive=False)]
        caption = node.find("caption")
        name = _text(caption) if caption else " | ".join(h for h in headers if h)[:80]
        table = Table(name, headers, scope=_scope(node))
        for tr in node.find_all("tr"):
            if tr is head_row or tr.find_parent("thead") is not None or not tr.find("td"):
                continue
            cells = tr.find_all(["td", "th"], recursive=False)
            table.rows.append([_status_text(c) or _text(c) for c in cells])
            table.filled.append([bool(c.find(["img", "svg", "input", "canvas", "iframe"]))
                                 for c in cells])
        found.append(table)
    return found


def _status_text(cell: Tag) -> str:
    """A run's badge alone ("valid", "INVALID"), without the reasons folded under it."""
    badge = cell.find(class_="ll-badge")
    return _text(badge) if badge is not None else ""


def _status(text: str) -> str | None:
    word = text.split(" ")[0].strip(":;,") if text else ""
    return word if word in ("valid", "INVALID") else None


def status_column(table: Table) -> int | None:
    """The column saying whether each row's run is valid or INVALID, if any."""
    i = table.header_index(*STATUS_HEADERS)
    if i is not None:
        return i
    for i in range(len(table.headers)):
        col = [c for c in table.column(i) if c]
        if col and all(_status(c) for c in col):
            return i
    return None


# --- mixed units -----------------------------------------------------------------------------

_UNITS = {"ns": ("time", "ns"), "us": ("time", "µs"), "µs": ("time", "µs"), "μs": ("time", "µs"),
          "ms": ("time", "ms"), "s": ("time", "s"), "min": ("time", "min"),
          "B": ("bytes", "B"), "KiB": ("bytes", "KiB"), "MiB": ("bytes", "MiB"),
          "GiB": ("bytes", "GiB"), "KB": ("bytes", "KB"), "MB": ("bytes", "MB"),
          "GB": ("bytes", "GB")}
_HEADER_UNIT = re.compile(r"\((?:[^(),]*,\s*)?(" + "|".join(_UNITS) + r")(?:,[^()]*)?\)\s*$")
_CELL_UNIT = re.compile(r"^[<>~≈]?\s*[-+−]?\d[\d,]*(?:\.\d+)?\s*(" + "|".join(_UNITS) + r")$")
# words that name a statistic of a quantity, not another quantity: p50 and max of a latency
_STAT = re.compile(r"\b(p\d+(?:\.\d+)?|max|min|mean|median|average|there|target|"
                   r"(?:95 % )?ci (?:low|high)|lowest trial|highest trial)\b", re.IGNORECASE)


def quantity(header: str) -> tuple[str, str, str] | None:
    """(quantity, dimension, unit) a header names, or None: "pause p99 (us)" ->
    ("pause", "time", "µs"); p50 and p99 of one thing are one quantity."""
    m = _HEADER_UNIT.search(header)
    if not m:
        return None
    dim, unit = _UNITS[m.group(1)]
    base = _STAT.sub(" ", header[:m.start()]).lower()
    return " ".join(base.split()), dim, unit


def mixed_units(table: Table) -> list[str]:
    """One quantity in two units within a table (headers), or two units down one column."""
    out = []
    by_quantity: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for h in table.headers:
        q = quantity(h)
        if q:
            by_quantity[q[:2]].setdefault(q[2], h)
    for (name, _), units in by_quantity.items():
        if len(units) > 1:
            out.append(f"mixed units: table '{table.name}': " + " and ".join(
                f"'{h}'" for h in units.values()) + f" give {name or 'one quantity'} in "
                f"{len(units)} units")
    for i, header in enumerate(table.headers):
        seen: dict[str, dict[str, str]] = defaultdict(dict)
        for cell in table.column(i):
            m = _CELL_UNIT.match(cell.strip())
            if m:
                dim, unit = _UNITS[m.group(1)]
                seen[dim].setdefault(unit, cell)
        for units in seen.values():
            if len(units) > 1:
                out.append(f"mixed units: table '{table.name}', column '{header}': cells "
                           + ", ".join(f"'{c}'" for c in units.values()))
    return out


# --- blank cells -----------------------------------------------------------------------------

_NO_VALUE = {"", "nan", "NaN", "None", "null", "<NA>", "NaT"}


def blank_cells(table: Table) -> list[str]:
    """A data cell left empty, or holding a placeholder that says nothing (NaN, None)."""
    out = []
    for r, (row, filled) in enumerate(zip(table.rows, table.filled)):
        key = next((c for c in row if c), f"row {r + 1}")
        for i, (cell, has_content) in enumerate(zip(row, filled)):
            if cell.strip() in _NO_VALUE and not has_content:
                header = table.headers[i] if i < len(table.headers) else f"column {i + 1}"
                said = "empty" if not cell.strip() else f"'{cell.strip()}'"
                out.append(f"blank cell: table '{table.name}', row '{key}', column "
                           f"'{header}' is {said} with no reason given")
    return out


# --- contradictions --------------------------------------------------------------------------

_KEY_HEADERS = {"variant", "step", "source", "trial", "rtt", "cpu limit", "rate", "offered",
                "condition"}


def run_status_conflicts(found: list[Table]) -> list[str]:
    """The same run called valid in one table and INVALID in another: rows of two tables
    that agree on every key column both tables have (variant or step, trial, and the
    conditions both state), where that key names one row in each."""
    keyed = []
    for table in found:
        status = status_column(table)
        keys = {_bare(table.headers[i]): i for i, h in enumerate(table.headers)
                if _bare(h) in _KEY_HEADERS}
        if status is not None and "trial" in keys and keys.keys() & {"variant", "step", "source"}:
            keyed.append((table, status, keys))
    out = []
    for n, (a, sa, ka) in enumerate(keyed):
        for b, sb, kb in keyed[n + 1:]:
            shared = sorted(ka.keys() & kb.keys())
            if "trial" not in shared or not set(shared) & {"variant", "step", "source"}:
                continue
            rows_a, rows_b = _by_key(a, sa, [ka[k] for k in shared]), \
                _by_key(b, sb, [kb[k] for k in shared])
            for key in rows_a.keys() & rows_b.keys():
                wa, wb = rows_a[key], rows_b[key]
                if len(wa) == len(wb) == 1 and None not in (wa[0], wb[0]) and wa != wb:
                    out.append(f"contradiction: run {dict(zip(shared, key))} is {wa[0]} in "
                               f"table '{a.name}' and {wb[0]} in table '{b.name}'")
    return out


def _by_key(table: Table, status: int, cols: list[int]) -> dict[tuple, list[str | None]]:
    rows: dict[tuple, list[str | None]] = defaultdict(list)
    for row in table.rows:
        if max(cols + [status]) < len(row):
            rows[tuple(row[i] for i in cols)].append(_status(row[status]))
    return rows


def _named(text: str) -> set[str]:
    return {v for v in VARIANTS if re.search(rf"(?<![\w-]){re.escape(v)}(?![\w-])", text)}


def budget_conflicts(found: list[Table]) -> list[str]:
    """One variant listed as fitting the budget and as over it under the same condition
    (within a table or across the page's tables)."""
    said: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for table in found:
        cols = {}
        for i, h in enumerate(table.headers):
            bare = _bare(h)
            if bare.startswith(("fits", "fit the")):
                cols[i] = "fits"
            elif bare.startswith(("over the budget", "over budget", "over")):
                cols[i] = "over"
        if "fits" not in cols.values() or "over" not in cols.values():
            continue
        for row in table.rows:
            condition = row[0]
            for i, verdict in cols.items():
                for variant in _named(row[i]) if i < len(row) else ():
                    said[(condition, variant)].setdefault(verdict, table.name)
    return [f"contradiction: {variant} both fits and is over the budget under '{cond}' "
            f"(tables '{w['fits']}' and '{w['over']}')"
            for (cond, variant), w in said.items() if len(w) > 1]


_KEPT = re.compile(r"(?<!not )(?<!n't )(?<!never )\b(?:kept|keeps|keeping) (?:up with )?"
                   r"(?:its|their|the) schedule", re.IGNORECASE)


def sentences(soup: BeautifulSoup) -> list[tuple[str, Tag]]:
    """Sentences of the page's prose (not tables, code, scripts or styles), each with the
    block it stands in."""
    out = []
    for block in soup.find_all(["p", "li", "div", "dd", "figcaption", "h1", "h2", "h3", "h4"]):
        if block.find_parent(["table", "script", "style", "pre", "code"]):
            continue
        if block.find(["p", "li", "div", "table", "ul", "ol"]):   # the innermost blocks only
            continue
        text = _text(block)
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text):
            if sentence:
                out.append((sentence, block))
    return out


def schedule_conflicts(soup: BeautifulSoup, found: list[Table]) -> list[str]:
    """A sentence that says a variant's generator kept its schedule while that variant's
    run is INVALID (the pages define INVALID as "could not keep its schedule"): in the same
    sentence, or in a table of the page where every row for it is INVALID."""
    invalid: dict[str, str] = {}
    for table in found:
        status = status_column(table)
        if status is None:
            continue
        rows: dict[str, list[str]] = defaultdict(list)
        for row in table.rows:
            for variant in _named(row[0]) if row else ():
                if row[0].strip() == variant and status < len(row):
                    rows[variant].append(_status(row[status]) or "")
        for variant, words in rows.items():
            if words and all(w == "INVALID" for w in words):
                invalid.setdefault(variant, table.name)
    out = []
    for sentence, _ in sentences(soup):
        if not _KEPT.search(sentence):
            continue
        for variant in sorted(_named(sentence)):
            if "INVALID" in sentence or variant in invalid:
                where = "the same sentence" if "INVALID" in sentence else \
                    f"table '{invalid[variant]}'"
                out.append(f"contradiction: '{sentence[:160]}' says {variant} kept its "
                           f"schedule, but {where} calls its run INVALID")
    return out


def content_problems(html: str) -> list[str]:
    """Every content problem of one page's HTML."""
    soup = parse(html)
    found = tables(soup)
    out = []
    for table in found:
        out += mixed_units(table) + blank_cells(table)
    return (out + run_status_conflicts(found) + budget_conflicts(found)
            + schedule_conflicts(soup, found))


# --- layout, in a browser --------------------------------------------------------------------

@contextmanager
def reader_browser() -> Iterator[object]:
    """Debian's Chromium as a reader has it: scroll bars drawn (Playwright's headless
    default hides them, and a hidden scroll bar is one of the things checked)."""
    from _report import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      ignore_default_args=["--hide-scrollbars"])
        try:
            yield chromium
        finally:
            chromium.close()


def _js(name: str) -> str:
    """The browser-side checks, as one function expression Playwright can call."""
    return f"(args) => {{ {LAYOUT_JS}\n return {name}(args); }}"


LAYOUT_JS = r"""
const say = e => {
  const t = e.closest && e.closest('table');
  const name = t ? ((t.caption && t.caption.textContent) ||
    [...t.querySelectorAll('th')].map(h => h.textContent.trim()).join(' | ')) : '';
  return name ? `table '${name.trim().slice(0, 70)}'` : e.tagName.toLowerCase();
};
const cut = s => s === 'hidden' || s === 'clip';
const scrolls = s => s === 'auto' || s === 'scroll';
const shown = e => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden' &&
  (!e.checkVisibility || e.checkVisibility({contentVisibilityAuto: true, visibilityProperty: true}));
// a reader opens every collapsed table ("Every variant at every RTT"): open them, and
// resolve once each has said so (the page's scripts redraw on that event)
function openTables() {
  const closed = [...document.querySelectorAll('details:not([open])')].filter(d => d.querySelector('table'));
  return Promise.all(closed.map(d => new Promise(done => {
    d.addEventListener('toggle', () => done(), {once: true});
    d.open = true;
  }))).then(() => closed.length);
}
// the visible box of an element: the window cut by every ancestor that clips or scrolls
function viewBox(e) {
  let box = {left: 0, right: document.documentElement.clientWidth}, holder = null;
  for (let a = e.parentElement; a && a !== document.documentElement; a = a.parentElement) {
    const cs = getComputedStyle(a);
    if (cut(cs.overflowX) || scrolls(cs.overflowX)) {
      const r = a.getBoundingClientRect(), left = r.left + a.clientLeft;
      box = {left: Math.max(box.left, left), right: Math.min(box.right, left + a.clientWidth)};
      holder = holder || a;
    }
  }
  return {box, holder};
}
// a reader can see there is more: a scroll bar drawn, and a shadow or fade at the edge
function affordance(holder, box) {
  if (!holder || !scrolls(getComputedStyle(holder).overflowX)) return 'nothing scrolls';
  const cs = getComputedStyle(holder);
  const bar = holder.offsetHeight - holder.clientHeight - parseFloat(cs.borderTopWidth) -
              parseFloat(cs.borderBottomWidth);
  if (bar < 3) return 'no visible scroll bar';
  const marked = el => { const s = getComputedStyle(el);
    return s.boxShadow !== 'none' || (s.maskImage && s.maskImage !== 'none') ||
           (s.webkitMaskImage && s.webkitMaskImage !== 'none') || /gradient/.test(s.backgroundImage); };
  if (marked(holder)) return '';
  for (const el of holder.querySelectorAll('td, th, img')) {
    const r = el.getBoundingClientRect();
    if (Math.abs(r.right - box.right) < 3 && marked(el)) return '';
  }
  return 'no shadow at the edge';
}
function tableProblems(out) {
  for (const t of document.querySelectorAll('table')) {
    if (!shown(t) || t.closest('svg') || !t.querySelector('th')) continue;
    const {box, holder} = viewBox(t);
    for (const c of t.querySelectorAll('td, th')) {
      if (!shown(c)) continue;
      const what = `${say(c)}: cell '${c.textContent.trim().slice(0, 40)}'`;
      for (const e of [c, ...c.querySelectorAll('*')]) {
        const cs = getComputedStyle(e);
        if ((cut(cs.overflowX) || cs.textOverflow === 'ellipsis') && e.scrollWidth > e.clientWidth + 1) {
          out.push(`clipped cell: ${what} is cut (${e.scrollWidth} px of text in ${e.clientWidth} px)`);
          break;
        }
      }
      const range = document.createRange();
      range.selectNodeContents(c);
      const cr = c.getBoundingClientRect(), tr = range.getBoundingClientRect();
      if (tr.width > 0 && (tr.right > cr.right + 1 || tr.left < cr.left - 1))
        out.push(`clipped cell: ${what} runs ${Math.round(Math.max(tr.right - cr.right, cr.left - tr.left))} px out of its cell`);
    }
    const heads = [...(t.tHead ? t.tHead.rows[t.tHead.rows.length - 1].cells : t.rows[0].cells)];
    const hidden = heads.filter(h => h.getBoundingClientRect().right > box.right + 1 ||
                                     h.getBoundingClientRect().left < box.left - 1);
    if (hidden.length) {
      const why = affordance(holder, box);
      if (why) out.push(`hidden column: ${say(t)}: ${hidden.map(h => `'${h.textContent.trim()}'`).join(', ')} ` +
                        `out of view at a ${window.innerWidth} px window (${why})`);
    }
    heads.forEach((h, i) => {
      const words = ['run', 'status', 'valid'];
      const cells = [...t.querySelectorAll('tbody tr')].map(r => r.cells[i]).filter(Boolean);
      const isStatus = words.includes(h.textContent.trim().toLowerCase()) ||
        (cells.length && cells.every(c => /^(valid|INVALID)\b/.test(c.textContent.trim())));
      if (!isStatus) return;
      const r = h.getBoundingClientRect();
      if (r.right > box.right + 1 || r.left < box.left - 1)
        out.push(`hidden column: ${say(t)}: the run column '${h.textContent.trim()}' is out of view ` +
                 `at a ${window.innerWidth} px window (it must show without scrolling)`);
    });
  }
}
// a raster figure: its 8 pt text is figureMinPt * dpi / 72 image pixels, shown at its scale
function pngDpi(src) {
  const m = /^data:image\/png;base64,(.*)$/.exec(src || '');
  if (!m) return null;
  const head = atob(m[1].slice(0, 4096).replace(/\s/g, '').slice(0, 4092));
  let pos = 8;
  const u32 = p => ((head.charCodeAt(p) << 24) >>> 0) + (head.charCodeAt(p + 1) << 16) +
                   (head.charCodeAt(p + 2) << 8) + head.charCodeAt(p + 3);
  while (pos + 8 <= head.length) {
    const len = u32(pos), kind = head.slice(pos + 4, pos + 8);
    if (kind === 'IDAT') break;
    if (kind === 'pHYs' && head.charCodeAt(pos + 16) === 1) return u32(pos + 8) * 0.0254;
    pos += 12 + len;
  }
  return 100;   // matplotlib's default when a PNG does not say
}
function figureProblems(out, args) {
  for (const img of document.querySelectorAll('img')) {
    if (!shown(img) || !img.naturalWidth || img.naturalWidth < 100) continue;
    const dpi = pngDpi(img.getAttribute('src'));
    const r = img.getBoundingClientRect();
    const name = `figure '${(img.alt || '').slice(0, 50) || img.naturalWidth + ' px wide'}'`;
    if (dpi) {
      const px = args.figureMinPt * dpi / 72 * r.width / img.naturalWidth;
      if (px < args.minTextPx)
        out.push(`small text: ${name}: its ${args.figureMinPt} pt text shows at ${px.toFixed(1)} px ` +
                 `(shrunk to ${Math.round(r.width)} of ${img.naturalWidth} px)`);
    }
    const {box, holder} = viewBox(img);
    if (r.right > box.right + 1 || r.left < box.left - 1) {
      const why = affordance(holder, box);
      if (why) out.push(`hidden column: ${name} runs out of view (${why})`);
    }
  }
}
function svgProblems(args) {
  const out = [];
  const inside = ['defs', 'clipPath', 'mask', 'symbol', 'marker', 'pattern'];
  for (const svg of document.querySelectorAll('svg')) {
    if (svg.parentElement.closest('svg') || !shown(svg)) continue;
    const sr = svg.getBoundingClientRect();
    for (const t of svg.querySelectorAll('text')) {
      const words = t.textContent.trim();
      if (!words || !shown(t) || inside.some(n => t.closest(n))) continue;
      const tr = t.getBoundingClientRect();
      if (tr.width === 0 || tr.height === 0) continue;
      const m = t.getScreenCTM(), px = parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
      if (px < args.minTextPx - 0.05)
        out.push(`small text: svg text '${words.slice(0, 40)}' renders at ${px.toFixed(1)} px`);
      if (tr.left < sr.left - 1 || tr.right > sr.right + 1 || tr.top < sr.top - 1 || tr.bottom > sr.bottom + 1)
        out.push(`text outside figure: svg text '${words.slice(0, 40)}' runs outside its svg ` +
                 `(${Math.round(tr.left)}..${Math.round(tr.right)} in ${Math.round(sr.left)}..${Math.round(sr.right)} px)`);
    }
  }
  return out;
}
function pageProblems(args) {
  const out = [];
  tableProblems(out);
  figureProblems(out, args);
  return out.concat(svgProblems(args));
}
"""


def layout_problems(page, *, min_text_px: float = MIN_TEXT_PX) -> list[str]:
    """Layout problems of the loaded ``page`` at its window width, its frames included
    (a flamegraph's SVG lives in an iframe)."""
    page.evaluate(_js("openTables"), {})
    out = page.evaluate(_js("pageProblems"), {"minTextPx": min_text_px,
                                              "figureMinPt": FIGURE_MIN_PT})
    for frame in page.frames:
        if frame == page.main_frame:
            continue
        try:
            title = frame.frame_element().get_attribute("title") or frame.name or "a frame"
            found = frame.evaluate(_js("svgProblems"), {"minTextPx": min_text_px})
        except Exception as exc:  # noqa: BLE001 (a detached frame: say so)
            found = [f"frame unreadable: {exc}"]
            title = "a frame"
        out += [f"{p} (in iframe '{title}')" for p in found]
    return out


__all__ = ["Table", "blank_cells", "budget_conflicts", "content_problems", "layout_problems",
           "mixed_units", "parse", "quantity", "reader_browser", "run_status_conflicts",
           "schedule_conflicts", "sentences", "status_column", "tables"]
