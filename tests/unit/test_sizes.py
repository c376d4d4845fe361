"""The report sizes: one list everywhere (CLI, notebooks, Makefile), one table sizing every
notebook for each, and a quick page that says on its face it is only a smoke run."""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from lootlab.cli.report import SIZES as CLI_SIZES
from lootlab.cli.report import command as report_command
from lootlab.experiments import sizes as size_table
from lootlab.experiments.sizes import SIZES, check_size, sizes_for
from lootlab.notebook import setup
from lootlab.report import notebooks_dir
from lootlab.report.export import SMOKE_NOTE, export_html, notebook_size, smoke_note

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(notebooks_dir().glob("*.ipynb"))


# -- one list of sizes ----------------------------------------------------------------------

def test_the_sizes_are_quick_standard_full_everywhere():
    assert tuple(SIZES) == ("quick", "standard", "full")
    assert tuple(CLI_SIZES) == tuple(SIZES)
    assert all(check_size(p) == p for p in SIZES)


def test_setup_accepts_the_standard_size():
    setup("standard")   # outside IPython: validation and pandas options only
    with pytest.raises(ValueError, match="'standard'"):
        setup("standrad")   # the message lists the allowed ones, standard among them


def test_the_main_job_runs_the_standard_size():
    """`make report` and a bare `lootlab report` both mean standard; quick must be asked for."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^SIZE \?= \$\(or \$\(PROFILE\),standard\)$", makefile, re.MULTILINE)
    assert "--size $(SIZE)" in makefile
    option = next(p for p in report_command.params if p.name == "size")
    assert option.default == "standard"
    res = CliRunner().invoke(report_command, ["--size", "fast"])
    assert res.exit_code == 2 and "standard" in res.output


# -- every notebook sized for every size, from one table ------------------------------------

def test_every_notebook_of_the_report_has_sizes_for_every_size():
    assert [p.stem for p in NOTEBOOKS] == list(size_table.TABLE)
    for notebook, by_size in size_table.TABLE.items():
        assert list(by_size) == list(SIZES), notebook
        keys = {tuple(sorted(v)) for v in by_size.values()}
        assert len(keys) == 1, f"{notebook}: sizes name different settings: {keys}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_reads_its_sizes_from_the_table(path: Path):
    code = "\n".join(c.source for c in nbformat.read(str(path), as_version=4).cells
                     if c.cell_type == "code")
    assert f'sizes_for("{path.stem}", size)' in code
    assert "SIZES = {" not in code, "a notebook keeps its own copy of the sizes"


def test_the_table_names_every_variant_and_step_it_means():
    import lootlab
    from lootlab.experiments.story import STEPS

    assert sizes_for("02-latency", "full")["variants"] == list(lootlab.VARIANTS)
    assert sizes_for("06-conditions", "full")["cpu_variants"] == list(STEPS)


def test_a_notebook_changes_its_copy_never_the_table():
    mine = sizes_for("06-conditions", "quick")
    mine["rtts_ms"].append(99)
    assert 99 not in sizes_for("06-conditions", "quick")["rtts_ms"]


def test_unknown_sizes_and_notebooks_are_named():
    from lootlab.errors import LootlabError

    with pytest.raises(LootlabError, match="'huge'"):
        sizes_for("01-story", "huge")
    with pytest.raises(LootlabError, match="07-nothing"):
        sizes_for("07-nothing", "quick")


# -- the smoke-run note ---------------------------------------------------------------------

def executed_node(size: str | None) -> nbformat.NotebookNode:
    """A tiny notebook as papermill leaves it (its parameters in the metadata)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A page\n\nSome text.")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    if size is not None:
        nb.metadata["papermill"] = {"parameters": {"size": size}}
    return nb


def page_text(path: Path) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, whitespace collapsed."""
    return page_text_of(path.read_text(encoding="utf-8"))


def page_text_of(body: str) -> str:
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.DOTALL | re.IGNORECASE)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def visible(note: str) -> str:
    return " ".join(note.replace("`", " ").split())


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("sizes")
    made = {name: export_html(executed_node(size), out / f"{name}.html",
                              header="<div class='lootlab-nav'>nav</div>")
            for name, size in [("quick", "quick"), ("standard", "standard"),
                                  ("full", "full"), ("by-hand", None)]}
    made["quick-forced"] = export_html(executed_node("standard"), out / "forced.html",
                                       size="quick")
    return {name: page_text(path) for name, path in made.items()}


def test_the_note_says_what_the_issue_asks():
    assert SMOKE_NOTE == ("quick size: a smoke run, too few samples for conclusions; run "
                          "`make report` (standard) or `--size full`")
    assert [smoke_note(p) for p in SIZES] == [SMOKE_NOTE, "", ""]


def test_an_exported_quick_page_carries_the_smoke_note_at_the_top(pages):
    text = pages["quick"]
    assert visible(SMOKE_NOTE) in text
    assert text.index("nav") < text.index("smoke run") < text.index("Some text.")
    assert visible(SMOKE_NOTE) in pages["quick-forced"]   # an explicit size wins


@pytest.mark.parametrize("name", ["standard", "full", "by-hand"])
def test_pages_of_other_sizes_carry_no_smoke_note(pages, name):
    assert "Some text." in pages[name]
    assert "smoke run" not in pages[name]


def test_the_size_is_read_from_papermills_parameters():
    assert notebook_size(executed_node("quick")) == "quick"
    assert notebook_size(executed_node(None)) is None


@pytest.mark.parametrize("size", SIZES)
def test_the_index_page_carries_the_smoke_note_only_for_quick(tmp_path, size):
    from lootlab.report import front_page as index
    from lootlab.report.environment import Environment

    env = Environment(cpu="x", cores=2, usable_cores=2, memory_gib=1.0, python="3.11",
                      platform="linux", packages={}, git_commit="abc", size=size,
                      date="2026-01-01 00:00", page_cache="warm")
    text = page_text_of(index.render_index([], env, out_dir=tmp_path, total_seconds=1.0))
    if size == "quick":
        assert visible(SMOKE_NOTE) in text
        assert text.index("smoke run") < text.index("Notebooks")     # at the top
    else:
        assert "smoke run" not in text
