"""One grammar on the command line: a variant is ``--variant/-v NAME`` (repeated where a
command takes several), a report's size is ``--size``.  The older spellings (``profile perf
mmap``, ``profile diff A B``, ``serve --backend``, ``report --profile``, ``make PROFILE=``)
still run, saying once on stderr what to type instead, and the docs show only the new ones.

The library function behind each command is replaced by a recorder that stops the command
when reached: these tests check what reaches the library, in this process."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

import lootlab
from lootlab.cli import main
from lootlab.cli.report import SIZES

ROOT = Path(__file__).resolve().parents[2]
NOTICE = re.compile(r"^lootlab: `(?P<old>[^`]+)` is deprecated; use `(?P<new>[^`]+)`$")


class Reached(Exception):
    """Raised by a recorder: the command got as far as the library call."""


@contextmanager
def recording(target: str) -> Iterator[list[tuple[tuple, dict]]]:
    """Replace the function at dotted path ``target`` (module, then name: the CLI imports
    it from there when it runs); collect the calls that reach it."""
    module, name = target.rsplit(".", 1)
    calls: list[tuple[tuple, dict]] = []

    def record(*args: Any, **kwargs: Any) -> None:
        calls.append((args, kwargs))
        raise Reached(target)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(importlib.import_module(module), name, record)
        yield calls


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="lootlab")


def reach(target: str, *args: Any) -> tuple[tuple, dict, list[str]]:
    """``lootlab ARGS`` up to the call of ``target``: its arguments and the stderr lines."""
    with recording(target) as calls:
        res = invoke(*args)
    assert isinstance(res.exception, Reached), (res.exit_code, res.output, res.exception)
    ((call_args, call_kwargs),) = calls
    return call_args, call_kwargs, res.stderr.splitlines()


def notices(lines: list[str]) -> list[re.Match]:
    return [m for m in map(NOTICE.match, lines) if m]


# ------------------------------------------------------------------ variants of `profile`
# (subcommand, library function it calls, the variants in that call, how many it takes)
PROFILE_COMMANDS = [
    ("perf", "lootlab.profiling.perf_flamegraph", lambda a, kw: (a[0],), (1, 1)),
    ("counters", "lootlab.profiling.counters_of", lambda a, kw: tuple(a[0]), (1, 4)),
    ("diff", "lootlab.profiling.compare", lambda a, kw: tuple(a[:2]), (2, 2)),
]
NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,11}", fullmatch=True)


@pytest.mark.parametrize("sub,target,variants_of,count", PROFILE_COMMANDS,
                         ids=[c[0] for c in PROFILE_COMMANDS])
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_old_and_new_variant_spellings_reach_the_library_alike(sub, target, variants_of, count,
                                                               data, tmp_path_factory):
    names = data.draw(st.lists(NAMES, min_size=count[0], max_size=count[1]), label="names")
    flag = data.draw(st.sampled_from(["--variant", "-v"]), label="flag")
    out = [] if sub == "counters" else ["--out", tmp_path_factory.mktemp("out")]
    new = ["profile", sub, *(w for n in names for w in (flag, n)), *out]
    old = ["profile", sub, *names, *out]

    args, kwargs, err = reach(target, *new)
    assert variants_of(args, kwargs) == tuple(names)
    assert notices(err) == [], err

    old_args, old_kwargs, old_err = reach(target, *old)
    assert variants_of(old_args, old_kwargs) == tuple(names)
    assert {k for k in old_kwargs if k != "progress"} == {k for k in kwargs if k != "progress"}
    (notice,) = notices(old_err)
    assert shlex.split(notice["old"]) == ["profile", sub, *names]
    # the replacement it suggests is a command that reaches the same call, with no notice
    again_args, again_kwargs, again_err = reach(target, *shlex.split(notice["new"]), *out)
    assert variants_of(again_args, again_kwargs) == tuple(names) and notices(again_err) == []


def test_the_notice_for_profile_perf_reads_as_documented(tmp_path):
    *_, err = reach("lootlab.profiling.perf_flamegraph", "profile", "perf", "mmap",
                    "--out", tmp_path)
    assert err[0] == ("lootlab: `profile perf mmap` is deprecated; "
                      "use `profile perf --variant mmap`")


@pytest.mark.parametrize("sub", ["flame", "memory", "replicas", "gc", "perf"])
def test_single_variant_profiles_default_to_mmap(sub, tmp_path):
    target = {"flame": "lootlab.profiling.flamegraph", "memory": "lootlab.profiling.memory",
              "replicas": "lootlab.profiling.replicas.replicas", "gc": "lootlab.profiling.gc_pauses",
              "perf": "lootlab.profiling.perf_flamegraph"}[sub]
    args, _, err = reach(target, "profile", sub, "--out", tmp_path)
    assert args[0] == "mmap" and notices(err) == []
    args, _, _ = reach(target, "profile", sub, "-v", "grpc-plain", "--out", tmp_path)
    assert args[0] == "grpc-plain"


@pytest.mark.parametrize("args,message", [
    (["profile", "perf", "mmap", "--variant", "grpc-plain"], "not both"),
    (["profile", "counters"], "at least one --variant"),
    (["profile", "counters", "mmap", "-v", "grpc-plain"], "one way"),
    (["profile", "diff", "-v", "mmap"], "exactly 2 --variant options (got 1)"),
    (["profile", "diff", "-v", "a", "-v", "b", "-v", "c"], "exactly 2 --variant options (got 3)"),
    (["profile", "diff", "a", "b", "c"], "exactly 2 --variant options (got 3)"),
    (["report", "--profile", "quick", "--size", "full"], "old name of --size"),
    (["serve", "--http", "0", "--backend", "mmap", "--variant", "grpc-plain"],
     "old name of --variant"),
])
def test_ambiguous_or_wrong_counts_are_usage_errors(args, message):
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr.strip().splitlines()[-1], res.stderr
    assert notices(res.stderr.splitlines()) == []          # refused before any notice


# ------------------------------------------------------------------ serve and report
@pytest.mark.parametrize("variant", list(lootlab.VARIANTS))
def test_serve_takes_the_variant_as_variant_and_still_as_backend(variant):
    target = "lootlab.remote.service.run_http"
    _, kwargs, err = reach(target, "serve", "--http", "0", "-v", variant)
    assert kwargs["backend"] == variant and notices(err) == []
    _, old_kwargs, old_err = reach(target, "serve", "--http", "0", "--backend", variant)
    assert old_kwargs["backend"] == variant
    (notice,) = notices(old_err)
    assert (notice["old"], notice["new"]) == (f"serve --backend {variant}",
                                              f"serve --variant {variant}")
    _, default, _ = reach(target, "serve", "--http", "0")
    assert default["backend"] == "mmap"


@pytest.mark.parametrize("size", SIZES)
def test_report_takes_a_size_and_still_a_profile(size, tmp_path):
    target = "lootlab.report.run_report"
    args, _, err = reach(target, "report", "--size", size, "--out", tmp_path)
    assert args[0] == size and notices(err) == []
    old_args, _, old_err = reach(target, "report", "--profile", size, "--out", tmp_path)
    assert old_args[0] == size
    (notice,) = notices(old_err)
    assert (notice["old"], notice["new"]) == (f"report --profile {size}", f"report --size {size}")


def test_a_bare_report_is_the_standard_size(tmp_path):
    args, _, err = reach("lootlab.report.run_report", "report", "--out", tmp_path)
    assert args[0] == "standard" and notices(err) == []


# ------------------------------------------------------------------ what --help shows
VARIANT_COMMANDS = [["bench"], ["serve"], *(["profile", sub] for sub in
                    ("flame", "memory", "replicas", "gc", "perf", "counters", "diff"))]


@pytest.mark.parametrize("words", VARIANT_COMMANDS, ids=" ".join)
def test_help_shows_only_the_variant_option(words):
    res = invoke(*words, "--help")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == f"Usage: lootlab {' '.join(words)} [OPTIONS]"
    assert "-v, --variant NAME" in res.output
    assert "--backend" not in res.output


def test_report_help_shows_size_not_profile():
    res = invoke("report", "--help")
    assert "--size [quick|standard|full]" in res.output and "--profile" not in res.output


# ------------------------------------------------------------------ the docs and the Makefile
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OLD_SPELLINGS = {
    "a positional variant": re.compile(
        r"lootlab profile (?:perf|counters|diff) +(?:[A-Z]+\b|"
        + "|".join(map(re.escape, lootlab.VARIANTS)) + ")"),
    "serve --backend": re.compile(r"--backend\b"),
    "report --profile": re.compile(r"report --profile\b"),
    "make PROFILE=": re.compile(r"\bPROFILE="),
    "the old benchmark name": re.compile(r"benchmarks\.profile\b|benchmarks [a-z ]*\bprofile\b"),
}


def test_the_pattern_finds_the_old_spellings():
    """The scan below can fail: each pattern matches the spelling it is for."""
    for text in ("lootlab profile perf grpc-tls-pooled", "lootlab profile diff A B",
                 "lootlab serve --http 8080 --backend mmap", "lootlab report --profile quick",
                 "make report PROFILE=full", "python -m lootlab.benchmarks.profile",
                 "python -m lootlab.benchmarks index variants loadgen profile"):
        assert any(p.search(text) for p in OLD_SPELLINGS.values()), text
    assert not any(p.search("lootlab profile perf --variant mmap; lootlab profile diff -v a "
                            "-v b; make report SIZE=full") for p in OLD_SPELLINGS.values())


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_docs_show_only_the_new_spellings(doc):
    found = [f"{doc.name}:{n}: {what}: {line.strip()}"
             for n, line in enumerate(doc.read_text().splitlines(), 1)
             for what, pattern in OLD_SPELLINGS.items() if pattern.search(line)]
    assert found == []


def _make_size(tmp_path: Path, *assignments: str, variable: str = "SIZE") -> tuple[str, str]:
    """The value the Makefile settles on for ``variable`` (the report size by default) for
    ``make ASSIGNMENTS``, and make's stderr (read through an extra target, so no recipe of
    the Makefile runs)."""
    probe = tmp_path / "probe.mk"
    probe.write_text(f"print-it:\n\t@echo $({variable})\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("SIZE", "PROFILE", "OUT", "REPLACE")}
    proc = subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "-f", str(probe),
                           "print-it", *assignments], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip(), proc.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_report_writes_beside_or_replaces_only_when_asked(tmp_path):
    """A quick smoke run after the main job must be able to write beside it or replace it
    from make too: the report refuses to replace a larger one without --replace."""
    args = lambda *a: _make_size(tmp_path, *a, variable="REPORT_ARGS")[0].split()  # noqa: E731
    assert args() == ["--size", "standard", "--out", "reports"]
    assert args("SIZE=quick", "OUT=quick-reports") == ["--size", "quick", "--out",
                                                       "quick-reports"]
    assert args("SIZE=quick", "REPLACE=1")[-1] == "--replace"
    assert "lootlab report $(REPORT_ARGS)" in (ROOT / "Makefile").read_text()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_report_takes_size_and_still_profile(tmp_path):
    assert _make_size(tmp_path)[0] == "standard"
    for size in SIZES:
        assert _make_size(tmp_path, f"SIZE={size}")[0] == size
        assert _make_size(tmp_path, f"PROFILE={size}")[0] == size
    assert _make_size(tmp_path, "SIZE=full", "PROFILE=quick")[0] == "full"
    makefile = (ROOT / "Makefile").read_text()
    assert "--size $(SIZE)" in makefile
