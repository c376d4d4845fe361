"""The report profiles: one list everywhere (CLI, report layer, notebooks, Makefile), every
notebook sized for each, and a quick page that says on its face it is only a smoke run."""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from lootlab.cli.report import PROFILES as CLI_PROFILES
from lootlab.cli.report import command as report_command
from lootlab.notebook import check_profile, setup
from lootlab.report import PROFILES, notebooks_dir
from lootlab.report.export import SMOKE_NOTE, export_html, notebook_profile, smoke_note

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(notebooks_dir().glob("*.ipynb"))


# -- one list of profiles ------------------------------------------------------------------

def test_the_profiles_are_quick_standard_full_everywhere():
    assert tuple(PROFILES) == ("quick", "standard", "full")
    assert tuple(CLI_PROFILES) == tuple(PROFILES)
    assert all(check_profile(p) == p for p in PROFILES)


def test_setup_accepts_the_standard_profile():
    setup("standard")   # outside IPython: validation and pandas options only
    with pytest.raises(ValueError, match="'standard'"):
        setup("standrad")   # the message lists the allowed ones, standard among them


def test_the_main_job_runs_the_standard_profile():
    """`make report` and a bare `lootlab report` both mean standard; quick must be asked for."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PROFILE \?= standard$", makefile, re.MULTILINE)
    assert "--profile $(PROFILE)" in makefile
    option = next(p for p in report_command.params if p.name == "profile")
    assert option.default == "standard"
    res = CliRunner().invoke(report_command, ["--profile", "fast"])
    assert res.exit_code == 2 and "standard" in res.output


# -- every notebook sized for every profile -------------------------------------------------

def sizes_keys(path: Path) -> list[str]:
    """The keys of ``SIZES = {...}[profile]`` in the notebook's code cells (parsed, not run)."""
    nb = nbformat.read(str(path), as_version=4)
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code" or "SIZES" not in cell.source:
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "SIZES"
                                                     for t in node.targets)):
                value = node.value
                assert isinstance(value, ast.Subscript) and isinstance(value.value, ast.Dict)
                assert ast.unparse(value.slice) == "profile"
                found.append([ast.literal_eval(k) for k in value.value.keys])
    assert len(found) == 1, f"{path.name}: expected one SIZES = {{...}}[profile], found {found}"
    return found[0]


def test_every_notebook_of_the_report_is_parsed():
    assert [p.stem for p in NOTEBOOKS] == ["01-story", "02-latency", "03-flamegraphs",
                                           "04-memory", "05-rebuild", "06-conditions"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_sizes_for_every_profile(path: Path):
    assert sizes_keys(path) == list(PROFILES)


# -- the smoke-run note ---------------------------------------------------------------------

def executed_node(profile: str | None) -> nbformat.NotebookNode:
    """A tiny notebook as papermill leaves it (its parameters in the metadata)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A page\n\nSome text.")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    if profile is not None:
        nb.metadata["papermill"] = {"parameters": {"profile": profile}}
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
    out = tmp_path_factory.mktemp("profiles")
    made = {name: export_html(executed_node(profile), out / f"{name}.html",
                              header="<div class='lootlab-nav'>nav</div>")
            for name, profile in [("quick", "quick"), ("standard", "standard"),
                                  ("full", "full"), ("by-hand", None)]}
    made["quick-forced"] = export_html(executed_node("standard"), out / "forced.html",
                                       profile="quick")
    return {name: page_text(path) for name, path in made.items()}


def test_the_note_says_what_the_issue_asks():
    assert SMOKE_NOTE == ("quick profile: a smoke run, too few samples for conclusions; run "
                          "`make report` (standard) or `--profile full`")
    assert [smoke_note(p) for p in PROFILES] == [SMOKE_NOTE, "", ""]


def test_an_exported_quick_page_carries_the_smoke_note_at_the_top(pages):
    text = pages["quick"]
    assert visible(SMOKE_NOTE) in text
    assert text.index("nav") < text.index("smoke run") < text.index("Some text.")
    assert visible(SMOKE_NOTE) in pages["quick-forced"]   # an explicit profile wins


@pytest.mark.parametrize("name", ["standard", "full", "by-hand"])
def test_pages_of_other_profiles_carry_no_smoke_note(pages, name):
    assert "Some text." in pages[name]
    assert "smoke run" not in pages[name]


def test_the_profile_is_read_from_papermills_parameters():
    assert notebook_profile(executed_node("quick")) == "quick"
    assert notebook_profile(executed_node(None)) is None


@pytest.mark.parametrize("profile", PROFILES)
def test_the_index_page_carries_the_smoke_note_only_for_quick(tmp_path, profile):
    from lootlab.report import index
    from lootlab.report.environment import Environment

    env = Environment(cpu="x", cores=2, usable_cores=2, memory_gib=1.0, python="3.11",
                      platform="linux", packages={}, git_commit="abc", profile=profile,
                      date="2026-01-01 00:00", page_cache="warm")
    text = page_text_of(index.render_index([], env, out_dir=tmp_path, total_seconds=1.0))
    if profile == "quick":
        assert visible(SMOKE_NOTE) in text
        assert text.index("smoke run") < text.index("Notebooks")     # at the top
    else:
        assert "smoke run" not in text
