"""The public surface is pinned: a change to ``lootlab.__all__`` or to the error index is a
deliberate edit here too (as httpx pins its exports), and help() says how to call things."""

from __future__ import annotations

import pydoc

import lootlab
import lootlab.errors

PUBLIC = [
    "BuildOptionError", "BuildReport", "Endpoint", "FIELDS", "InvalidIndexError",
    "InvalidRecordsError", "LocalSource", "LootClient", "LootIndex", "LootRecord", "LootlabError",
    "LootlabTimeout", "Network", "PublishError", "QueryError", "RECORD_DTYPE", "RESULT_DTYPE", "Rebuilder",
    "Records", "RemoteError", "S3Source", "VARIANTS", "Variant", "build_index", "connect",
    "generate_world", "open_index", "open_source", "pack_key", "unpack_key",
]


def test_all_is_pinned_and_every_name_resolves():
    assert sorted(lootlab.__all__) == PUBLIC
    for name in lootlab.__all__:
        assert getattr(lootlab, name) is not None, name


def test_every_error_class_is_reachable_from_lootlab_errors():
    import importlib
    import pkgutil
    seen = set()
    for info in pkgutil.walk_packages(lootlab.__path__, "lootlab."):
        if info.name.endswith(("loot_pb2", "loot_pb2_grpc", "locustfile", "__main__")):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, lootlab.LootlabError)
                    and value.__module__.startswith("lootlab")):
                seen.add(value)
    listed = {getattr(lootlab.errors, name) for name in lootlab.errors.__all__}
    missing = sorted(c.__qualname__ for c in seen - listed)
    assert missing == [], f"error classes not reachable from lootlab.errors: {missing}"
    assert all(issubclass(c, lootlab.LootlabError) for c in listed)


def test_timeouts_are_timeout_errors():
    from lootlab.errors import DeadlineExceeded, LoopbackTimeout
    assert issubclass(DeadlineExceeded, TimeoutError)
    assert issubclass(LoopbackTimeout, TimeoutError)


def _help(obj) -> str:
    return pydoc.render_doc(obj, renderer=pydoc.plaintext)


def test_help_of_open_index_lists_its_options_and_errors():
    text = _help(lootlab.open_index)
    for word in ("verify", "refresh_interval", "InvalidIndexError"):
        assert word in text, word


def test_help_of_connect_lists_its_options_and_errors():
    text = _help(lootlab.connect)
    for word in ("server", "target", "ca", "timeout", "index", "UnknownVariantError",
                 "ServerUnavailable", "TLSError"):
        assert word in text, word


# -- the exported pages: a cell that shows nothing takes no room ---------------------------

def _page_notebook():
    """A page as the report runs it: its title, the parameters and measuring cells (input
    hidden, nothing printed, or only a progress line), then the answer and a table."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from lootlab.report.bars import PROGRESS_METADATA

    progress = new_output("display_data", data={"text/plain": "step 3 of 3, 2 s"},
                          metadata=PROGRESS_METADATA)
    nb = new_notebook()
    nb.cells = [
        new_markdown_cell("# Latency"),
        new_code_cell("size = 'quick'"),                                   # parameters
        new_code_cell("measure()", outputs=[progress]),                    # measuring
        new_code_cell("print('', end='')",
                      outputs=[new_output("stream", name="stdout", text="")]),
        new_markdown_cell("## The answer"),
        new_code_cell("answer()", outputs=[new_output(
            "display_data", data={"text/html": "<p class='verdict'>mmap wins</p>"})]),
    ]
    nbformat.validate(nb)
    return nb


def test_an_exported_page_leaves_out_cells_that_show_nothing(tmp_path):
    """Without shown code, a code cell with no output is an empty box: a blank gap above
    the answer.  Only the cell that shows something is in the page."""
    import re

    from lootlab.report.export import export_html

    page = export_html(_page_notebook(), tmp_path / "p.html").read_text()
    body = page[page.index("<body"):]
    cells = re.findall(r'<div[^>]*class="[^"]*\bjp-CodeCell\b', body)
    assert len(cells) == 1, cells
    between = body[body.index('id="Latency"'):body.index("The answer")]
    assert "jp-CodeCell" not in between            # nothing stands above the answer
    assert "mmap wins" in body
    # with the code shown, every cell has something to show and stays
    shown = export_html(_page_notebook(), tmp_path / "c.html", show_code=True).read_text()
    assert len(re.findall(r'<div[^>]*class="[^"]*\bjp-CodeCell\b', shown)) == 4
