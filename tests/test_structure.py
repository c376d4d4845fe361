"""Modules stay small enough to read in one sitting: one job each, at most 400 lines.

``CHECKED`` lists the parts of ``lootlab/`` held to the limit (relative to the package; ""
is all of it).  Generated protobuf code is never counted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lootlab
from _imports import imported, module_name

MAX_LINES = 400
CHECKED = [""]          # the whole package
GENERATED = ("loot_pb2.py", "loot_pb2_grpc.py")
PACKAGE = Path(lootlab.__file__).parent


def _modules(part: str) -> list[Path]:
    path = PACKAGE / part
    if path.is_dir():
        return sorted(p for p in path.rglob("*.py") if p.name not in GENERATED)
    return [path.with_suffix(".py")]


@pytest.mark.parametrize("part", CHECKED)
def test_modules_are_at_most_400_lines(part: str) -> None:
    modules = _modules(part)
    assert modules, f"lootlab/{part}: nothing to check"
    too_long = {str(p.relative_to(PACKAGE.parent)): n for p in modules
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert too_long == {}, f"modules above {MAX_LINES} lines (split them by job): {too_long}"


def test_no_import_cycle_at_module_level():
    """An import cycle makes import order matter and hides layering mistakes (the remote
    layer importing the clients was one); function-local imports are the deliberate,
    lazy exceptions."""
    paths = {module_name(p): p for p in _modules("")}
    graph = {m: imported(p, top_level_only=True) & set(paths) for m, p in paths.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(graph[m]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == []


def test_no_code_or_test_cites_an_issue_number() -> None:
    """A reader of the code cannot look an issue up: comments and docstrings say the reason
    in words.  Every source file of the package and of the tests is checked."""
    import re

    cite = re.compile(r"\bissue\s*#?\d+", re.IGNORECASE)
    roots = [PACKAGE, Path(__file__).parent]
    found = {f"{p.relative_to(PACKAGE.parent)}:{i}": line.strip()
             for root in roots for p in sorted(root.rglob("*.py"))
             if p.name not in GENERATED and "node_modules" not in p.parts
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if cite.search(line)}
    assert found == {}, f"issue numbers cited (say the reason in words): {found}"
