"""Run directories keep what was measured in formats other tools read, and refuse what they
cannot vouch for with one line."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from _loadgen import QUERIES, ServiceClient, VirtualClock
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.experiments import rundir
from lootlab.experiments.rundir import RunDirError


def test_rows_data_and_stacks_come_back_as_stored(tmp_path):
    part = rundir.open_part(tmp_path / "run", "demo", params={"rate": 100})
    frame = pd.DataFrame({"variant": ["mmap", "grpc"], "p99_ms": [0.2, math.nan],
                          "valid": [True, False], "note": ["ok", None]})
    part.put_rows("latency", frame)
    part.put_data("server", {"words": "the C++ server", "rtt": math.nan})
    stacks = {("main", "near", "memcpy"): 7, ("main", "gc"): 2}
    part.put_stacks("py-spy: mmap", stacks, meta={"rate": 100})

    back = rundir.open_part(tmp_path / "run", "demo", replay=True)
    assert not back.measuring and back.params == {"rate": 100}
    got = back.rows("latency")
    assert list(got["variant"]) == ["mmap", "grpc"]
    assert got["p99_ms"].iloc[0] == 0.2 and math.isnan(got["p99_ms"].iloc[1])
    assert list(got["valid"]) == [True, False]
    assert back.data("server") == {"words": "the C++ server", "rtt": None}
    assert back.stacks("py-spy: mmap") == (stacks, {"rate": 100})


def test_stacks_are_stored_as_collapsed_text_and_speedscope_json(tmp_path):
    part = rundir.open_part(tmp_path / "run", "p")
    part.put_stacks("cpu", {("a", "b"): 3, ("a",): 1})
    base = tmp_path / "run" / "p" / "stacks" / "cpu"
    assert sorted(base.with_suffix(".collapsed").read_text().splitlines()) == ["a 1", "a;b 3"]
    doc = json.loads(base.with_suffix(".speedscope.json").read_text())
    assert doc["$schema"].endswith("file-format-schema.json")
    assert sorted(doc["profiles"][0]["weights"]) == [1, 3]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=False, width=32),
                          st.integers(-2**40, 2**40), st.text(max_size=8), st.booleans()),
                min_size=1, max_size=20))
def test_any_table_of_numbers_texts_and_flags_round_trips_through_parquet(tmp_path_factory,
                                                                           rows):
    where = tmp_path_factory.mktemp("run")
    frame = pd.DataFrame(rows, columns=["x", "n", "text", "flag"])
    rundir.open_part(where, "t").put_rows("rows", frame)
    back = rundir.open_part(where, "t", replay=True).rows("rows")
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


def test_load_results_round_trip_as_hdr_interval_logs(tmp_path):
    from lootlab import loadgen

    clock = VirtualClock()        # a load run in virtual time: no real second is waited
    res = loadgen.run(lambda: ServiceClient(clock, [40_000, 900_000]), loadgen.constant(200, 3),
                      warmup=0.0, label="noop", workload=QUERIES, clock=clock)
    part = rundir.open_part(tmp_path / "run", "latency")
    part.put_results("noop", [res, res])
    hlog = tmp_path / "run" / "latency" / "results" / "noop" / "trial-0" / "latency.hlog"
    lines = hlog.read_text().splitlines()        # HdrHistogram's interval log
    assert any(ln.startswith("#[Histogram log format version") for ln in lines)
    assert any(ln and ln[0].isdigit() for ln in lines), "no interval histogram in the log"
    back = rundir.open_part(tmp_path / "run", "latency", replay=True).results("noop")
    assert len(back) == 2
    assert back[0].requests == res.requests
    assert back[0].latency_us(99) == pytest.approx(res.latency_us(99))


def test_a_replayed_part_refuses_writes_and_names_what_it_lacks(tmp_path):
    rundir.open_part(tmp_path / "run", "p").put_data("a", 1)
    part = rundir.open_part(tmp_path / "run", "p", replay=True)
    with pytest.raises(RunDirError, match="replaying"):
        part.put_data("b", 2)
    with pytest.raises(RunDirError, match=r"no rows named 'x'.*stored: none"):
        part.rows("x")
    with pytest.raises(RunDirError, match=r"no data named 'b'.*stored: 'a'"):
        part.data("b")


def test_measuring_a_part_again_replaces_it_whole(tmp_path):
    rundir.open_part(tmp_path / "run", "p").put_data("old", 1)
    part = rundir.open_part(tmp_path / "run", "p")
    part.put_data("new", 2)
    again = rundir.open_part(tmp_path / "run", "p", replay=True)
    assert again.names("data") == ["new"]
    assert not (tmp_path / "run" / "p" / "data" / "old.json").exists()
    assert rundir.open_run(tmp_path / "run").parts == ["p"]


@pytest.mark.parametrize("what", ["missing", "file", "no manifest", "other schema", "bad json"])
def test_what_is_not_a_run_of_this_schema_is_one_line(tmp_path, what):
    path = tmp_path / "run"
    if what == "file":
        path.write_text("x")
    elif what == "no manifest":
        path.mkdir()
    elif what == "other schema":
        path.mkdir()
        (path / "manifest.json").write_text(json.dumps({"schema": "lootlab-run/1"}))
    elif what == "bad json":
        path.mkdir()
        (path / "manifest.json").write_text("{")
    with pytest.raises(RunDirError) as err:
        rundir.open_run(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    if what == "other schema":
        assert "'lootlab-run/1'" in message and rundir.schema() in message


def test_artifact_names_become_safe_distinct_file_names():
    names = ["one rate: mmap at 200/s", "one rate: mmap at 800/s", "../../etc/passwd", ""]
    slugs = [rundir.slug(n) for n in names]
    assert len(set(slugs)) == len(slugs)
    assert all("/" not in s and not s.startswith(".") and s for s in slugs)


def test_numpy_values_and_nan_are_stored_as_json(tmp_path):
    part = rundir.open_part(tmp_path / "run", "p")
    part.put_data("x", {"a": np.float64(1.5), "b": np.int64(3), "c": [np.nan, 2.0]})
    assert rundir.open_part(tmp_path / "run", "p", replay=True).data("x") == \
        {"a": 1.5, "b": 3, "c": [None, 2.0]}


def test_a_reports_folder_given_for_its_run_names_the_run(tmp_path):
    rundir.create(tmp_path / "reports" / "run", what="a report")
    with pytest.raises(RunDirError, match=r"a report's folder, not a run directory: its run is "
                                          r".*reports/run"):
        rundir.open_run(tmp_path / "reports")


def test_a_run_opened_by_a_relative_path_is_held_by_its_absolute_one(tmp_path, monkeypatch):
    # `lootlab report --from reports/run` replays each notebook in another directory, so
    # the path the notebooks are handed must not depend on the shell's directory
    rundir.create(tmp_path / "reports" / "run", what="a report")
    monkeypatch.chdir(tmp_path)
    run = rundir.open_run("reports/run")
    assert run.path.is_absolute() and run.path == tmp_path / "reports" / "run"
