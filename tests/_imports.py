"""Which lootlab modules a source file imports, read from its syntax tree (no import done)."""

from __future__ import annotations

import ast
from pathlib import Path

import lootlab

PACKAGE = Path(lootlab.__file__).parent


def module_name(path: Path) -> str:
    """``lootlab/remote/http.py`` -> ``lootlab.remote.http`` (a package is its ``__init__``)."""
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _is_module(name: str) -> bool:
    where = PACKAGE.parent.joinpath(*name.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def imported(path: Path, *, top_level_only: bool) -> set[str]:
    """Absolute names of what ``path`` imports from lootlab: ``from . import x`` counts as the
    submodule ``x`` when it is one.  ``top_level_only`` skips imports inside functions
    (what runs when the module is imported), otherwise every import statement counts."""
    me = module_name(path)
    base = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if top_level_only:
        nodes = [s for node in tree.body
                 for s in (node.body if isinstance(node, ast.Try) else [node])]
    else:
        nodes = list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                parent = ".".join(parts[:len(parts) - node.level + 1])
                target = f"{parent}.{node.module}" if node.module else parent
            else:
                target = node.module or ""
            subs = {f"{target}.{a.name}" for a in node.names}
            modules = {m for m in subs if _is_module(m)}
            # ``from pkg import sub`` imports the submodule; ``from pkg import name`` the package
            found |= modules if len(modules) == len(subs) else modules | {target}
    return {m for m in found if m.startswith("lootlab")} - {me}
