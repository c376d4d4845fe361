"""What a person reads from the CLI reads well: an empty answer points
to loot, a failed rebuild is said once and never as "generation None"."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

import lootlab
from lootlab.cli import main
from lootlab.tables import write_table


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-msg") / "loot.idx"
    lootlab.build_index(lootlab.generate_world(5_000, seed=3), path)
    return path


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("query", [["get", 120, 64, -40], ["box", 0, 0, 0, 10, 10, 10],
                                   ["near", -9000, -2000, 9000, 3]])
def test_an_empty_answer_suggests_a_query_that_finds_loot(index, query):
    res = run("query", index, *query)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("0 records")
    hint = re.search(r"try `lootlab query (\S+) near (-?\d+) (-?\d+) (-?\d+) (\d+)`", res.stdout)
    assert hint, res.stdout
    follow = run("query", index, "near", *hint.groups()[1:])
    assert follow.exit_code == 0 and not follow.stdout.startswith("0 record"), follow.stdout
    with lootlab.open_index(index) as idx:    # and it is the nearest record to the query
        x, y, z = (int(v) for v in hint.groups()[1:4])
        centre = query[1:4] if query[0] != "box" else [5, 5, 5]
        nearest = idx.knn(*centre, 1)[0]
        assert (x, y, z) == (nearest["x"], nearest["y"], nearest["z"])


def test_an_answer_with_rows_has_no_hint(index):
    with lootlab.open_index(index) as idx:
        r = idx.knn(0, 0, 0, 1)[0]
    res = run("query", index, "get", int(r["x"]), int(r["y"]), int(r["z"]))
    assert res.stdout.startswith("1 record ") and "hint" not in res.stdout


@pytest.fixture
def bad_source(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("x,y\n1,2\n")
    return src


def test_a_failed_rebuild_once_is_one_error_line(tmp_path, bad_source):
    res = run("rebuild", "--source", bad_source, "--index", tmp_path / "loot.idx", "--once")
    assert res.exit_code == 1
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lootlab: error: rebuild of "), res.stderr
    assert "missing column(s): z" in lines[0] and "RebuildError:" not in lines[0]
    assert "None" not in res.stderr


def test_a_failing_rebuild_loop_never_says_generation_none(tmp_path, bad_source):
    res = run("rebuild", "--source", bad_source, "--index", tmp_path / "loot.idx",
              "--interval", "0.05", "--duration", "0.5")
    assert res.exit_code == 0, res.output
    assert "FAILED (1 in a row; no index published by this worker yet)" in res.stdout
    assert "None" not in res.output
    assert "no index published" in res.stderr.splitlines()[-1]


def test_a_failing_rebuild_loop_names_the_generation_it_keeps(tmp_path, bad_source):
    good = tmp_path / "good.parquet"
    write_table(lootlab.generate_world(300, seed=1), good)
    lootlab.build_index(good, tmp_path / "loot.idx")
    res = run("rebuild", "--source", bad_source, "--index", tmp_path / "loot.idx",
              "--interval", "0.05", "--duration", "0.5")
    assert "serving generation 1" in res.stdout, res.output
    assert "None" not in res.output
