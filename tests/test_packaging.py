"""environment.yml mirrors pyproject.toml; .ci/run runs exactly the README's test command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


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
