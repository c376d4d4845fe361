"""Which lootlab modules a source file imports, read from its syntax tree (no import done).

What counts is what can run: an import inside a function counts (it runs when the function
does) unless ``top_level_only``; an ``if TYPE_CHECKING:`` block never counts (it never
runs).  A name taken from a package whose ``__init__`` loads names lazily (a module-level
``_LAZY = {name: module}`` table, as ``lootlab/__init__.py`` has) counts as an import of the
module that defines it, since reading it imports that module.
"""

from __future__ import annotations

import ast
import importlib.machinery
from functools import cache
from pathlib import Path

import lootlab

PACKAGE = Path(lootlab.__file__).parent


def module_name(path: Path) -> str:
    """``lootlab/remote/http.py`` -> ``lootlab.remote.http`` (a package is its ``__init__``)."""
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _is_module(name: str) -> bool:
    """A Python module, a package, or a compiled extension (``lootlab._kernels``)."""
    where = PACKAGE.parent.joinpath(*name.split("."))
    if where.with_suffix(".py").is_file() or (where / "__init__.py").is_file():
        return True
    return where.parent.is_dir() and any(
        (where.parent / (where.name + suffix)).is_file()
        for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def _is_package(name: str) -> bool:
    return (PACKAGE.parent.joinpath(*name.split(".")) / "__init__.py").is_file()


@cache
def lazy_names(package: str) -> dict[str, str]:
    """``package``'s lazy attributes (name -> module it imports): its ``_LAZY`` table and
    its ``_SUBMODULES`` (each the submodule of that name); {} when it has neither."""
    init = PACKAGE.parent.joinpath(*package.split(".")) / "__init__.py"
    if not init.is_file():
        return {}
    found: dict[str, str] = {}
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        names = {t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)}
        if "_LAZY" in names:
            found.update(ast.literal_eval(node.value))
        if "_SUBMODULES" in names:
            found.update({s: f"{package}.{s}" for s in ast.literal_eval(node.value)})
    return found


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(tree: ast.Module, top_level_only: bool) -> list[ast.stmt]:
    """The import statements that can run: all of them, or (``top_level_only``) those
    outside functions, which run when the module is imported."""
    found: list[ast.stmt] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if not (top_level_only and in_function):
                found.append(node)
            return
        children = node.orelse if _is_type_checking(node) else ast.iter_child_nodes(node)
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                  ast.Lambda))
        for child in children:
            visit(child, inside)

    visit(tree, False)
    return found


def _from_targets(node: ast.ImportFrom, base: str, me: str) -> set[str]:
    """What ``from X import a, b`` imports: each submodule named, each lazily loaded name's
    module, and ``X`` itself for a name ``X`` defines (not when ``X`` is a package this
    module lives in: its ``__init__`` has run already, before this module)."""
    if node.level:
        parts = base.split(".")
        parent = ".".join(parts[:len(parts) - node.level + 1])
        target = f"{parent}.{node.module}" if node.module else parent
    else:
        target = node.module or ""
    lazy = lazy_names(target) if _is_package(target) else {}
    found: set[str] = set()
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        if _is_module(sub):
            found.add(sub)
        elif alias.name in lazy:
            found.add(lazy[alias.name])
        elif not (_is_package(target) and me.startswith(target + ".")):
            found.add(target)
    return found


def imported(path: Path, *, top_level_only: bool) -> set[str]:
    """Absolute names of the lootlab modules ``path`` imports: ``from . import x`` counts as
    the submodule ``x`` when it is one.  ``top_level_only`` skips imports inside functions
    (what runs when the module is imported), otherwise every import statement counts."""
    return imports_in(path.read_text(encoding="utf-8"), module_name(path),
                      package=path.name == "__init__.py", top_level_only=top_level_only)


def imports_in(source: str, module: str, *, package: bool = False,
               top_level_only: bool = False) -> set[str]:
    """``imported`` for ``source`` as the text of ``module`` (a package's ``__init__`` when
    ``package``)."""
    base = module if package else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in _statements(ast.parse(source), top_level_only):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        else:
            found |= _from_targets(node, base, module)
    return {m for m in found if m == "lootlab" or m.startswith("lootlab.")} - {module}


def lazy_imports(path: Path) -> set[str]:
    """The modules a package's ``__init__`` loads on first access of a lazy attribute, so
    a graph can count them as that package's imports."""
    if path.name != "__init__.py":
        return set()
    return set(lazy_names(module_name(path)).values())
