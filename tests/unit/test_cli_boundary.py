"""The CLI is the top of the stack: no library module imports ``lootlab.cli`` (at the top
or inside a function), so the library and its ``python -m`` entry points work without it.
What they share with it (one-line errors, exit codes) lives in ``lootlab.console``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lootlab"
ALLOWED = {"lootlab.cli", "lootlab.__main__"}     # the CLI itself and `python -m lootlab`


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module ``source`` imports anywhere (functions included), relative imports
    resolved against ``module``; ``from X import y`` counts as X and X.y."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def imports_cli(names: set[str]) -> bool:
    return any(n == "lootlab.cli" or n.startswith("lootlab.cli.") for n in names)


def test_the_check_sees_every_way_of_importing_the_cli():
    """So the test below can fail: relative, absolute and function-level imports count."""
    for source, module in [("from .cli._util import handle_errors", "lootlab.workload"),
                           ("from ..cli import main", "lootlab.benchmarks.startup"),
                           ("def f():\n    from ...cli._util import x", "lootlab.a.b.c"),
                           ("import lootlab.cli.report", "lootlab.report.pipeline"),
                           ("from lootlab import cli", "lootlab.experiments.story")]:
        assert imports_cli(imports_of(source, module)), source
    assert imports_cli(imports_of("from . import report", "lootlab.cli", is_package=True))
    assert not imports_cli(imports_of("from ..console import handle_errors",
                                      "lootlab.benchmarks.startup"))
    assert not imports_cli(imports_of("from .clients import connect", "lootlab.experiments.story"))


LIBRARY = sorted(p for p in PACKAGE.rglob("*.py")
                 if module_name(p).split(".")[:2] != ["lootlab", "cli"]
                 and module_name(p) not in ALLOWED)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_library_module_imports_the_cli(path):
    names = imports_of(path.read_text(), module_name(path), path.name == "__init__.py")
    assert not imports_cli(names), sorted(n for n in names if imports_cli({n}))
