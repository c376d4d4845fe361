"""Modules stay small enough to read in one sitting: one job each, at most 400 lines.

``CHECKED`` lists the parts of ``lootlab/`` held to the limit (relative to the package; ""
is all of it).  Generated protobuf code is never counted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lootlab

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


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """lootlab modules imported when ``path`` is imported (module level, not in functions)."""
    import ast
    me = _module_name(path)
    base = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found: set[str] = set()
    body = ast.parse(path.read_text(encoding="utf-8")).body
    stmts = [s for node in body for s in (node.body if isinstance(node, ast.Try) else [node])]
    for node in stmts:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                parent = ".".join(parts[:len(parts) - node.level + 1])
                target = f"{parent}.{node.module}" if node.module else parent
            else:
                target = node.module or ""
            subs = {f"{target}.{a.name}" for a in node.names} & modules
            found |= subs if len(subs) == len(node.names) else subs | {target}
    return (found & modules) - {me}


def test_no_import_cycle_at_module_level():
    """An import cycle makes import order matter and hides layering mistakes (the remote
    layer importing the clients was one); function-local imports are the deliberate,
    lazy exceptions."""
    paths = {_module_name(p): p for p in _modules("")}
    graph = {m: _top_level_imports(p, set(paths)) for m, p in paths.items()}
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
