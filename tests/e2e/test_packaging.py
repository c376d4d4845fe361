"""environment.yml mirrors pyproject.toml; .ci/run runs exactly the README's test command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(3).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        reqs += [r for r in extra if not r.startswith("lootlab")]
    return dict(_split(r) for r in reqs)


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    reqs: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            reqs += dep.get("pip", [])
        elif not dep.startswith(("python", "pip")) or dep.startswith("pip:"):
            reqs.append(dep)
    return dict(_split(r) for r in reqs)


def test_environment_yml_matches_pyproject():
    ours, conda = pyproject_requirements(), environment_requirements()
    assert sorted(set(ours) - set(conda)) == [], "in pyproject.toml but not environment.yml"
    assert sorted(set(conda) - set(ours)) == [], "in environment.yml but not pyproject.toml"
    assert {k: v for k, v in ours.items() if conda[k] != v} == {}, "version pins differ"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme
    assert re.search(r"^make test$", ci, re.M)


# --- package data: the report's templates and the flamegraph script ship in the wheel -------

PACKAGE_DATA_DIRS = ("report/templates", "profiling")  # where lootlab keeps non-Python files


def package_data_globs() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["lootlab"]


def test_package_data_globs_match_exactly_the_files_that_exist():
    pkg = ROOT / "lootlab"
    globs = package_data_globs()
    assert [g for g in globs if not list(pkg.glob(g))] == [], "a glob that matches no file"
    data = {p for d in PACKAGE_DATA_DIRS for p in (pkg / d).iterdir()
            if p.is_file() and p.suffix not in (".py", ".pyc", ".so")}
    covered = {p for g in globs for p in pkg.glob(g)}
    assert sorted(str(p.relative_to(pkg)) for p in data - covered) == [], "not in package-data"


def test_templates_are_found_through_importlib_resources():
    from importlib.resources import files

    templates = files("lootlab.report").joinpath("templates")
    for name in ("index.html.j2", "summary.html.j2", "export_offline.html.j2"):
        assert "{%" in templates.joinpath(name).read_text(encoding="utf-8"), name
    assert "function" in files("lootlab.profiling").joinpath("flamegraph.js").read_text()


def test_wheel_built_from_the_tree_contains_the_package_data(tmp_path):
    """Build from a copy (no build/ or egg-info in the checkout) and look inside the wheel."""
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "lootlab", src / "lootlab",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
    dist = tmp_path / "dist"
    build = ("import sys; from setuptools import build_meta as b; "
             "print(b.build_wheel(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", build, str(dist)], cwd=src, text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = dist / done.stdout.strip().splitlines()[-1]
    names = set(zipfile.ZipFile(wheel).namelist())
    pkg = ROOT / "lootlab"
    expected = {f"lootlab/{p.relative_to(pkg)}" for g in package_data_globs() for p in pkg.glob(g)}
    assert {"lootlab/report/templates/index.html.j2", "lootlab/profiling/flamegraph.js"} <= expected
    assert sorted(expected - names) == []
