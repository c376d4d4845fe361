"""The README's Python example runs as a saved script, its tour's queries find loot, and its
set-up names every Debian package that ``make`` installs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import lootlab

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(), re.S | re.M)


def test_readme_python_example_runs_as_a_script(tmp_path):
    (code,) = [b for b in _blocks("python") if "loadgen.run" in b]
    script = tmp_path / "example.py"
    script.write_text(code)
    # a fresh directory: no data/ yet, as for someone outside the checkout
    env = {**os.environ, "LOOTLAB_DATA": str(tmp_path / "lootlab-data")}
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the README example hung; stderr:\n{exc.stderr}")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("LootRecord(x=12511, y=62, z=-5202,"), proc.stdout
    assert "455" in lines, proc.stdout           # the remote answer has the local count
    assert (tmp_path / "data" / "loot.idx").is_file()


def _tour_queries() -> list[list[str]]:
    (tour,) = [b for b in _blocks("bash") if "lootlab query" in b]
    return [shlex.split(line.split("#")[0])[3:] for line in tour.splitlines()
            if line.startswith("lootlab query")]


@pytest.fixture(scope="module")
def default_index(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("readme") / "loot.idx"
    lootlab.build_index(lootlab.generate_world(350_000, seed=0), path)
    return path


def test_tour_queries_find_loot_in_the_default_world(default_index):
    queries = _tour_queries()
    assert [q[0] for q in queries] == ["near", "get", "box"]
    with lootlab.open_index(default_index) as idx:
        for kind, *args in queries:
            numbers = [int(a) for a in args]
            if kind == "near":
                assert len(idx.near(*numbers)) > 0, args
            elif kind == "box":
                assert len(idx.box(tuple(numbers[:3]), tuple(numbers[3:]))) > 0, args
            else:
                assert idx.get(*numbers) is not None, args
        # the counts the README quotes
        assert len(idx.near(12500, 64, -5200, 16)) == 455
        assert len(idx.box((12500, 60, -5210), (12510, 70, -5200))) == 77


def test_tour_curl_example_has_loot(default_index):
    (tour,) = [b for b in _blocks("bash") if "curl" in b]
    url = re.search(r"curl (?:-\w+ )*'([^']+)'", tour).group(1)
    params = dict(p.split("=") for p in url.split("?", 1)[1].split("&"))
    with lootlab.open_index(default_index) as idx:
        got = idx.near(*(int(params[k]) for k in "xyzr"))
    assert f'"count":{len(got)}' in tour and len(got) > 0


def _makefile_packages() -> set[str]:
    """The Debian packages ``make report``/``make test`` install: APT_PACKAGES (``command:package``
    where they differ) and CPP_APT_PACKAGES."""
    text = (README.parent / "Makefile").read_text()
    out: set[str] = set()
    for var in ("APT_PACKAGES", "CPP_APT_PACKAGES"):
        (words,) = re.findall(rf"^{var}\s*=(.*)$", text, re.M)
        out |= {w.split(":")[-1] for w in words.split()}
    return out


def test_readme_setup_names_every_debian_package_make_installs():
    setup = README.read_text().split("## Set-up", 1)[1].split("\n## ", 1)[0]
    (para,) = [p for p in setup.split("\n\n") if "Debian" in p and "apt-get" in p]
    named = set(re.findall(r"`([a-z0-9][a-z0-9+.-]+)`", para.split("these Debian", 1)[1]))
    assert named == _makefile_packages()
    assert "installing Debian packages" in para      # what make prints before it installs
    assert "installing Debian packages" in (README.parent / "Makefile").read_text()
