"""Every measured figure in the README says where it came from, and no page cites an issue.

A reader must be able to reproduce a figure: so each one names the command that measured it,
the date and the load average of the machine at the time (on a shared 2-core box the load
is half the figure).  A figure is a number with a unit of time, rate, share or ratio
(``152 ms``, ``73,305/s``, ``6 %``, ``4.1x``) in prose or in a table; it is *cited* when the
paragraph it stands in, or the paragraph just above its table, or its own table row, has a
backquoted command, a date (YYYY-MM-DD) and the words "load average" with a number.
Two kinds of number are not measurements and need no citation: the write-up's own figures,
in a paragraph that tells "the write-up"'s story and names no command, and settings
(``50 ms by default``, ``every 60 s``).  Code blocks are the tour's, checked by running it
(tests/e2e).

Issue numbers mean nothing to a reader of the repository, so README.md and docs/*.md must
not cite them (an issue by its number, or "the per-issue notes").
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))

FIGURE = re.compile(r"(?<![\w.\-/])~?\d[\d,]*(?:\.\d+)?\s?"
                    r"(?:µs|us|ms|s|sec|seconds?|min|minutes?|hours?|req/s|/s|k/s|"
                    r"M keys/s|%|x)(?![\w/])")
COMMAND = re.compile(r"`(?:[A-Z_]+=\S+\s+)*(?:python\s+-m\s+lootlab|python\s+-c\s[^`]*lootlab|"
                     r"lootlab\s|make\s|\.venv/bin/)[^`]*`")
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
LOAD = re.compile(r"load\s+average[^.;|]*?\d+\.\d+")
SETTING = re.compile(r"\d[\d.]*\s?(?:ms|s)\s+by default|every \d+ ?s\b|at most \d+ ?(?:ms|s)\b")
ISSUE = re.compile(r"\bissues?\s+#?\d+|\bper-issue\b|\(#\d+\)", re.I)


def _prose(text: str) -> str:
    """The text without fenced code blocks (the tour is checked by running it)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _blocks(text: str) -> list[str]:
    """Paragraphs and tables, in order, separated by blank lines."""
    return [b for b in re.split(r"\n\s*\n", _prose(text)) if b.strip()]


def figures(block: str) -> list[str]:
    """The measured figures of a paragraph: inline code, links' targets and settings removed."""
    plain = re.sub(r"`[^`]*`", " ", block)
    plain = re.sub(r"\]\([^)]*\)", "]", plain)
    plain = SETTING.sub(" ", plain)
    return [m.group(0) for m in FIGURE.finditer(plain)]


def cited(text: str) -> bool:
    return bool(COMMAND.search(text) and DATE.search(text) and LOAD.search(text))


def uncited(text: str) -> list[tuple[str, list[str]]]:
    """(the first line of a block or table row, its figures) for every uncited figure."""
    out = []
    blocks = _blocks(text)
    for i, block in enumerate(blocks):
        if "the write-up" in block.lower() and not COMMAND.search(block):
            continue     # the story as the write-up tells it, not a measurement of ours
        if block.lstrip().startswith("|"):
            above = blocks[i - 1] if i else ""
            for row in block.splitlines():
                found = figures(row)
                if found and not (cited(above) or cited(row)):
                    out.append((row.strip()[:80], found))
        elif (found := figures(block)) and not cited(block):
            out.append((block.strip().splitlines()[0][:80], found))
    return out


def test_every_readme_figure_names_its_command_date_and_load():
    assert uncited(README.read_text()) == []


def test_no_page_cites_an_issue_number():
    cites = [(p.name, m.group(0)) for p in [README, *DOCS]
             for m in ISSUE.finditer(p.read_text())]
    assert cites == []


# -- the rules themselves, on text with a known answer ----------------------------------------

def test_figures_are_found_in_prose_and_tables_but_not_in_code_or_settings():
    assert figures("build took 152 ms and 73,305/s, a 6 % share, 4.1x ahead") == \
        ["152 ms", "73,305/s", "6 %", "4.1x"]
    assert figures("run `bench --rate 5000 --duration 10 s` with 50 ms by default") == []
    assert figures("24-byte records, Python 3.11, p99.9, 2 cores, every 60 s") == []


def test_an_uncited_figure_is_caught_and_a_cited_one_passes():
    bare = "Intro.\n\nThe open takes 29 µs.\n"
    assert uncited(bare) == [("The open takes 29 µs.", ["29 µs"])]
    dated = ("The open takes 199 µs (`python -m lootlab.benchmarks index_peers`, 2026-12-07, "
             "load average 1.02).\n")
    assert uncited(dated) == []
    table = ("`python -m lootlab.benchmarks loadgen`, 2026-12-07, load average 0.98 at start:\n\n"
             "| figure | measured |\n|---|---|\n| spike | 73,305/s |\n")
    assert uncited(table) == []
    assert uncited("| figure | measured |\n|---|---|\n| spike | 130,000/s |\n") == \
        [("| spike | 130,000/s |", ["130,000/s"])]
    assert uncited("The write-up reports p99 95 -> 34 ms.\n") == []
    # a measurement does not hide behind a mention of the write-up
    assert uncited("`lootlab bench` gives 6 % (the write-up: 68 %).\n") != []
    assert uncited("```bash\nmake report   # ~17 min\n```\n") == []


def test_issue_citations_are_caught():
    # the citations are put together here, so this file does not cite an issue itself
    one, two = "issue" + " 16", "Issue" + " 17"
    found = [m.group(0) for m in ISSUE.finditer(
        f"fixed in {one}; see the per-issue notes; {two}'s targets; (#12)")]
    assert found == [one, "per-issue", two, "(#12)"]
    assert ISSUE.search("a certificate not issued for that host") is None
