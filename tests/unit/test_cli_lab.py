"""``lootlab lab`` works as root and never lets a saved notebook dirty the repository.
Jupyter itself is replaced by a recorder: no server is started."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from lootlab.cli import lab as lab_cli
from lootlab.cli import main
from lootlab.report import notebooks_dir


@pytest.fixture
def recorder(monkeypatch, tmp_path):
    """Replace the Jupyter call; "save" every notebook it was opened on, as a user would."""
    monkeypatch.setenv("LOOTLAB_DATA", str(tmp_path / "data"))
    calls = []

    def fake_call(cmd, cwd=None, env=None):
        calls.append({"cmd": list(cmd), "cwd": Path(cwd).resolve(), "env": env})
        for nb in Path(cwd).glob("*.ipynb"):
            doc = json.loads(nb.read_text())
            doc["cells"].append({"cell_type": "code", "execution_count": 1, "metadata": {},
                                 "outputs": [{"output_type": "stream", "name": "stdout",
                                              "text": "saved output\n"}],
                                 "source": "print('saved output')"})
            nb.write_text(json.dumps(doc))
        return 0

    monkeypatch.setattr(lab_cli.subprocess, "call", fake_call)
    return calls


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.ipynb"))}


@pytest.mark.parametrize("euid", [0, 1000])
def test_lab_passes_allow_root_only_as_root(recorder, monkeypatch, euid):
    monkeypatch.setattr(lab_cli.os, "geteuid", lambda: euid)
    res = CliRunner().invoke(main, ["lab", "--no-browser"])
    assert res.exit_code == 0, res.output
    (call,) = recorder
    cmd = call["cmd"]
    assert cmd[cmd.index("lab"):] == ["lab", "--no-browser"] + (["--allow-root"] if euid == 0
                                                              else [])


def test_allow_root_is_not_passed_twice(recorder, monkeypatch):
    monkeypatch.setattr(lab_cli.os, "geteuid", lambda: 0)
    CliRunner().invoke(main, ["lab", "--allow-root"])
    assert recorder[0]["cmd"].count("--allow-root") == 1


def test_lab_opens_a_working_copy_and_saving_leaves_notebooks_untouched(recorder, tmp_path):
    source = notebooks_dir()
    before = _snapshot(source)
    assert before, "the checkout has notebooks"
    res = CliRunner().invoke(main, ["lab"])
    assert res.exit_code == 0, res.output
    cwd = recorder[0]["cwd"]
    assert cwd == (tmp_path / "data" / "lab").resolve()
    assert source.resolve() not in [cwd, *cwd.parents]
    assert "working copy" in res.stderr and str(cwd) in res.stderr
    assert _snapshot(source) == before                       # the fake Jupyter saved...
    saved = _snapshot(cwd)
    assert set(saved) == set(before)
    assert all(b"saved output" in data for data in saved.values())   # ...into the copy
    assert recorder[0]["env"]["LOOTLAB_DATA"] == str((tmp_path / "data").resolve())


def test_a_saved_copy_is_kept_and_a_newer_committed_notebook_replaces_it_aside(tmp_path):
    src, dst = tmp_path / "nb", tmp_path / "lab"
    src.mkdir()
    (src / "a.ipynb").write_text("v1")
    assert lab_cli.sync_working_copy(src, dst) == (["a.ipynb"], [])
    (dst / "a.ipynb").write_text("my edits")
    os.utime(dst / "a.ipynb", (2e9, 2e9))                   # saved after the copy
    assert lab_cli.sync_working_copy(src, dst) == ([], [])
    assert (dst / "a.ipynb").read_text() == "my edits"
    (src / "a.ipynb").write_text("v2")
    os.utime(src / "a.ipynb", (2.1e9, 2.1e9))               # the checkout moved on
    assert lab_cli.sync_working_copy(src, dst) == (["a.ipynb"], ["a.ipynb"])
    assert (dst / "a.ipynb").read_text() == "v2"
    (aside,) = (dst / "replaced").iterdir()
    assert aside.read_text() == "my edits"
