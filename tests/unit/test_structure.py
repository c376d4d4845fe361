"""The package's shape: small modules, no import cycles, layers that point one way.

Modules stay small enough to read in one sitting: one job each, at most 400 lines.
``CHECKED`` lists the parts of ``lootlab/`` held to the limit (relative to the package; ""
is all of it).  Generated protobuf code is never counted.

Imports are read from the source (``_imports``): an import inside a function counts (it
runs when the function does), an ``if TYPE_CHECKING:`` block does not (it never runs), and
a package's lazy attributes count as imports of the modules they load.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

import lootlab
from _imports import imported, imports_in, lazy_imports, module_name

MAX_LINES = 400
CHECKED = [""]          # the whole package
GENERATED = ("loot_pb2.py", "loot_pb2_grpc.py")
PACKAGE = Path(lootlab.__file__).parent

#: The layers, from the bottom up: a module imports only from its own layer and the ones
#: below it.  ``name.*`` is a package and everything in it, a plain name one module (the
#: more specific entry wins).  Every module must be in a layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core: the index file, its world, its sources and rebuilds, shared utilities", (
        "lootlab.errors", "lootlab.tempfiles", "lootlab.records", "lootlab.fileformat",
        "lootlab.queryargs", "lootlab.snapshot", "lootlab.lookups", "lootlab.index",
        "lootlab.tables", "lootlab.world", "lootlab.build", "lootlab.paths", "lootlab.overlay",
        "lootlab.sources", "lootlab.updates", "lootlab.rebuildstatus", "lootlab.rebuild",
        "lootlab.s3local", "lootlab.noise", "lootlab.console", "lootlab.processes")),
    ("sides: the remote service (servers, TLS, wire format) and the conditions (delaying "
     "proxies, cgroups), knowing nothing of variants, clients or experiments", (
        "lootlab.remote.*",
        "lootlab.conditions.*")),
    ("instrument: the load generator, generic (a client factory in, plain results out)", (
        "lootlab.loadgen.*",)),
    ("reach: the variant registry (plain data), the clients, and lootlab.targets, the one "
     "owner of reaching a variant (servers, proxies, client factories)", (
        "lootlab.variants", "lootlab.clients", "lootlab.targets")),
    ("serving a variant: the HTTP search endpoint over any variant's client, the modes of "
     "`lootlab serve`", (
        "lootlab.remote.http", "lootlab.remote.service")),
    ("profiling: the profilers and the workload process they run", (
        "lootlab.profiling.*", "lootlab.workload")),
    ("experiments: what is measured (grid, rows, verdicts; the story, sweeps, what-ifs, "
     "rebuild under load, comparisons of runs)", (
        "lootlab.experiments.*",)),
    ("plots: figures from measured data, never measuring", (
        "lootlab.plots.*",)),
    ("report: pages and notebooks' helpers", (
        "lootlab.report.*", "lootlab.notebook")),
    ("tools run by hand: benchmarks, the Locust file", (
        "lootlab.benchmarks.*", "lootlab.locustfile")),
    ("entry points: the CLI, `python -m lootlab`, the package's lazy names", (
        "lootlab.cli.*", "lootlab.__main__", "lootlab")),
]

#: What the load generator must not know: it drives any client factory, so the variants,
#: the clients, the servers, the index and its workload are its callers' business.
LOADGEN_MUST_NOT_IMPORT = ("lootlab.remote", "lootlab.index", "lootlab.overlay",
                           "lootlab.variants", "lootlab.clients", "lootlab.targets")


def _modules(part: str) -> list[Path]:
    path = PACKAGE / part
    if path.is_dir():
        return sorted(p for p in path.rglob("*.py") if p.name not in GENERATED)
    return [path.with_suffix(".py")]


@cache
def _graph() -> dict[str, frozenset[str]]:
    """module -> the lootlab modules it can import (functions' imports and lazy names too)."""
    paths = {module_name(p): p for p in _modules("")}
    return {m: frozenset((imported(p, top_level_only=False) | lazy_imports(p)) & set(paths))
            for m, p in paths.items()}


def _layer(module: str) -> int | None:
    """The index in ``LAYERS`` of ``module``'s most specific entry; None when it has none."""
    best: tuple[int, int] | None = None          # (specificity, layer)
    for i, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            if entry == module:
                score = 2 * len(entry) + 1
            elif entry.endswith(".*") and (module == entry[:-2]
                                           or module.startswith(entry[:-1])):
                score = 2 * len(entry)
            else:
                continue
            if best is None or score > best[0]:
                best = (score, i)
    return None if best is None else best[1]


@pytest.mark.parametrize("part", CHECKED)
def test_modules_are_at_most_400_lines(part: str) -> None:
    modules = _modules(part)
    assert modules, f"lootlab/{part}: nothing to check"
    too_long = {str(p.relative_to(PACKAGE.parent)): n for p in modules
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert too_long == {}, f"modules above {MAX_LINES} lines (split them by job): {too_long}"


def _cycles(graph: dict[str, frozenset[str]]) -> list[str]:
    """Every cycle a depth-first walk meets, as ``a -> b -> a``."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(graph.get(m, ())):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def _upward(graph: dict[str, frozenset[str]]) -> list[str]:
    """Every import of a module in a layer above the importer's, with both layers named."""
    def name(module: str) -> str:
        return LAYERS[_layer(module)][0].split(":")[0]

    return sorted(f"{m} -> {dep} ({name(dep)} is above {name(m)})"
                  for m, deps in graph.items() for dep in deps
                  if _layer(m) is not None and _layer(dep) is not None
                  and _layer(dep) > _layer(m))


def test_no_import_cycle():
    """An import cycle makes import order matter and hides layering mistakes (the servers
    calling back into the variant resolver was one).  Imports inside functions count: a
    cycle through them is as real, it only shows up later."""
    assert _cycles(_graph()) == []


def test_every_module_is_in_a_layer():
    assert sorted(m for m in _graph() if _layer(m) is None) == [], \
        "add these modules to LAYERS in tests/unit/test_structure.py"


def test_every_layer_entry_names_a_module_that_exists():
    """A stale entry would hide where a module went: the table says what is there."""
    graph = _graph()
    stale = [entry for _, entries in LAYERS for entry in entries
             if entry.removesuffix(".*") not in graph]
    assert stale == []


def test_no_module_imports_from_a_layer_above_its_own():
    """The layers point one way: a module never imports (not even inside a function) from a
    layer above its own, so each layer can be read, tested and replaced without the ones
    built on it."""
    assert _upward(_graph()) == []


def test_the_checks_see_a_cycle_and_an_upward_import():
    """The checks above can fail: on a graph with a cycle through a function's import, and
    with an index that imports the load generator."""
    index, runner, server = "lootlab.index", "lootlab.loadgen.runner", "lootlab.remote.server"
    sources = {index: "def lazy():\n    from .loadgen import runner\n",
               runner: "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                       "    from ..remote import server\nfrom ..index import LootIndex\n",
               server: "import lootlab.loadgen.runner\n"}
    graph = {m: frozenset(imports_in(src, m)) for m, src in sources.items()}
    assert graph == {index: {runner}, runner: {index}, server: {runner}}
    assert _cycles(graph) == [f"{index} -> {runner} -> {index}"]
    assert _upward(graph) == [f"{index} -> {runner} (instrument is above core)",
                              f"{server} -> {runner} (instrument is above sides)"]
    assert imports_in(sources[index], index, top_level_only=True) == set()


def test_lazy_names_count_as_imports_of_the_modules_that_define_them():
    """``from lootlab import connect`` imports the module behind the lazy name; a name the
    package defines itself imports nothing new from inside it (its ``__init__`` ran first)."""
    assert imports_in("from lootlab import connect, Network\n", "lootlab.experiments.story") == {
        lootlab._LAZY["connect"], lootlab._LAZY["Network"]}
    assert imports_in("from .. import __version__\n", "lootlab.loadgen.runenv") == set()
    assert imports_in("from ..conditions import Network\n", "lootlab.loadgen.limits") == {
        "lootlab.conditions.network"}
    assert lazy_imports(PACKAGE / "__init__.py") >= {lootlab._LAZY["connect"],
                                                      "lootlab.loadgen"}


def test_the_load_generator_knows_nothing_of_variants_servers_or_the_index():
    """loadgen drives any zero-argument client factory: what it needs beyond clients (a
    network route, the server's counters, a default workload) the factory offers."""
    found = sorted(f"{m} -> {dep}" for m, deps in _graph().items()
                   if m == "lootlab.loadgen" or m.startswith("lootlab.loadgen.")
                   for dep in deps
                   if any(dep == bad or dep.startswith(bad + ".")
                          for bad in LOADGEN_MUST_NOT_IMPORT))
    assert found == []


def test_only_the_cli_imports_the_cli():
    """Library modules never import ``lootlab.cli``: a library function must work (and fail
    with an exception, not an exit) without the command line around it."""
    found = sorted(f"{m} -> {dep}" for m, deps in _graph().items() for dep in deps
                   if (dep == "lootlab.cli" or dep.startswith("lootlab.cli."))
                   and not (m == "lootlab.cli" or m.startswith("lootlab.cli.")
                            or m == "lootlab.__main__"))
    assert found == []


def test_no_code_or_test_cites_an_issue_number() -> None:
    """A reader of the code cannot look an issue up: comments and docstrings say the reason
    in words.  Every source file of the package and of the tests is checked."""
    import re

    cite = re.compile(r"\bissue\s*#?\d+", re.IGNORECASE)
    roots = [PACKAGE, Path(__file__).parents[1]]
    found = {f"{p.relative_to(PACKAGE.parent)}:{i}": line.strip()
             for root in roots for p in sorted(root.rglob("*.py"))
             if p.name not in GENERATED and "node_modules" not in p.parts
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if cite.search(line)}
    assert found == {}, f"issue numbers cited (say the reason in words): {found}"


def test_every_test_file_is_in_one_of_the_three_folders() -> None:
    """``testpaths`` collects ``tests/unit``, ``tests/integration`` and ``tests/e2e`` only:
    a test file anywhere else under ``tests/`` would never run."""
    import tomllib

    tests = Path(__file__).parents[1]
    config = tomllib.loads((tests.parent / "pyproject.toml").read_text(encoding="utf-8"))
    folders = config["tool"]["pytest"]["ini_options"]["testpaths"]
    assert folders == ["tests/unit", "tests/integration", "tests/e2e"]
    stray = sorted(str(p.relative_to(tests)) for p in tests.rglob("test_*.py")
                   if "node_modules" not in p.parts
                   and f"tests/{p.relative_to(tests).parts[0]}" not in folders)
    assert stray == [], f"test files outside {folders}: {stray}"
