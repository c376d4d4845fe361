"""The builder: row validation, later-row-wins de-duplication, atomic publish, the world."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

import lootlab
from lootlab.cli import main
from lootlab.records import FIELD_RANGES

import _mounts as mounts
import _oracle as oracle


def small(n=200, seed=3) -> pd.DataFrame:
    return lootlab.generate_world(n, seed=seed)


@pytest.mark.parametrize("field,value,why", [
    ("x", 2**25, "outside"), ("y", -2049, "outside"), ("z", -(2**25) - 1, "outside"),
    ("quantity", 70_000, "outside"), ("rarity", -1, "outside"), ("tick", 2**32, "outside"),
    ("value", np.nan, "not an integer"), ("item_id", 1.5, "not an integer"),
])
def test_bad_row_is_named_by_row_and_field(tmp_path, field, value, why):
    df = small().astype({field: "float64"} if isinstance(value, float) else {field: "int64"})
    df.loc[17, field] = value
    df.loc[42, field] = value
    with pytest.raises(lootlab.InvalidRecordsError, match=rf"row 17, field '{field}': .*{why}") as e:
        lootlab.build_index(df, tmp_path / "x.idx")
    assert e.value.row == 17 and e.value.field == field and e.value.bad_rows == 2
    assert not (tmp_path / "x.idx").exists()


def test_missing_column_and_wrong_type_are_named(tmp_path):
    with pytest.raises(lootlab.InvalidRecordsError, match="missing column.*tick"):
        lootlab.build_index(small().drop(columns=["tick"]), tmp_path / "x.idx")
    df = small().astype({"flags": "object"})
    df.loc[3, "flags"] = "shiny"
    with pytest.raises(lootlab.InvalidRecordsError, match="row 3, field 'flags'"):
        lootlab.build_index(df, tmp_path / "x.idx")


def test_field_ranges_accept_their_extremes(tmp_path):
    rows = {name: [lo, hi] for name, (lo, hi) in FIELD_RANGES.items()}
    df = pd.DataFrame(rows)[lootlab.FIELDS]
    rep = lootlab.build_index(df, tmp_path / "x.idx")
    assert rep.records == 2


def test_later_row_wins_and_duplicates_are_counted(tmp_path):
    df = small(300)
    dup = df.sample(40, random_state=1).assign(item_id=999_999)
    both = pd.concat([df, dup], ignore_index=True)
    rep = lootlab.build_index(both, tmp_path / "x.idx")
    assert (rep.records, rep.input_rows, rep.duplicates_replaced) == (300, 340, 40)
    with lootlab.open_index(tmp_path / "x.idx") as idx:
        for x, y, z in dup[["x", "y", "z"]].itertuples(index=False):
            assert idx.get(int(x), int(y), int(z)).item_id == 999_999


def test_structured_array_input_gives_the_same_index(tmp_path):
    df = small(150)
    arr = df.to_records(index=False)
    a = lootlab.build_index(df, tmp_path / "a.idx", generation=1)
    b = lootlab.build_index(np.asarray(arr), tmp_path / "b.idx", generation=1)
    assert a.crc32 == b.crc32


def test_publish_is_atomic_and_generations_increase(tmp_path):
    path = tmp_path / "loot.idx"
    reps = [lootlab.build_index(small(100, seed=s), path) for s in range(3)]
    assert [r.generation for r in reps] == [1, 2, 3]
    assert sorted(os.listdir(tmp_path)) == ["loot.idx"]          # no temp files left behind
    reader = lootlab.open_index(path, refresh_interval=None)
    inode = os.stat(path).st_ino
    lootlab.build_index(small(100, seed=9), path)
    assert os.stat(path).st_ino != inode                          # a new file, never rewritten
    assert reader.generation == 3 and reader.refresh().header.generation == 4


def test_build_creates_missing_parent_directories(tmp_path):
    """One rule for every output (``world --out`` already did this): create the parents."""
    path = tmp_path / "new" / "deeper" / "x.idx"
    rep = lootlab.build_index(small(10), path)
    assert rep.records == 10 and lootlab.open_index(path, verify=True).generation == 1


def test_build_under_a_file_is_a_clear_publish_error(tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    with pytest.raises(lootlab.PublishError, match=r"afile") as info:
        lootlab.build_index(small(10), tmp_path / "afile" / "x.idx")
    assert "cannot publish index" in str(info.value)


@pytest.mark.parametrize("generation", [-1, 2**64, True, 1.5, "3"])
def test_out_of_range_generation_is_a_lootlab_error(tmp_path, generation):
    with pytest.raises(lootlab.LootlabError, match="generation must be an integer in"):
        lootlab.build_index(small(10), tmp_path / "x.idx", generation=generation)
    assert not (tmp_path / "x.idx").exists()


def test_the_largest_generation_is_accepted_and_the_next_refused(tmp_path):
    path = tmp_path / "x.idx"
    assert lootlab.build_index(small(10), path, generation=2**64 - 1).generation == 2**64 - 1
    assert lootlab.open_index(path).generation == 2**64 - 1
    with pytest.raises(lootlab.LootlabError, match="last one"):
        lootlab.build_index(small(10), path)


@pytest.mark.parametrize("option,value,message", [
    ("cell_shift", 27, "cell shift"), ("cell_shift", -1, "cell shift"),
    ("source_version", "e" * 127, "at most 126"), ("lineage", 0, "lineage"),
])
def test_other_out_of_range_build_options_are_lootlab_errors(tmp_path, option, value, message):
    with pytest.raises(lootlab.LootlabError, match=message):
        lootlab.build_index(small(10), tmp_path / "x.idx", **{option: value})


def test_cli_build_with_a_generation_beyond_u64_is_one_line(tmp_path):
    world = tmp_path / "w.csv"
    small(20).to_csv(world, index=False)
    out = run_cli("build", world, tmp_path / "x.idx", "--generation", 2**64)
    assert out.exit_code == 1, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.strip().count("\n") == 0, out.stderr
    assert "generation" in out.stderr


def test_build_report_repr_reads_well(tmp_path):
    rep = lootlab.build_index(small(10), tmp_path / "x.idx")
    text = repr(rep)
    assert f"crc32={rep.crc32:#010x}" in text
    seconds = text.split("seconds=")[1].split(",")[0]
    assert seconds == f"{rep.seconds:.3f}"


def test_read_only_filesystem_is_one_publish_error(tmp_path):
    """The failed write's cleanup (unlink) fails with EROFS too and used to replace the
    error with a bare OSError; now one PublishError with the path and the OS reason."""
    out = tmp_path / "ro"
    out.mkdir()
    with mounts.read_only(out), \
            pytest.raises(lootlab.PublishError, match="Read-only file system") as info:
        lootlab.build_index(small(10), out / "x.idx")
    assert str(out / "x.idx") in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
    assert os.listdir(out) == []


def test_an_outdated_default_index_is_rebuilt(tmp_path, monkeypatch):
    """A default index left by an older lootlab (format version 1) is rebuilt on first use;
    a user's own old file gives the "rebuild" error instead."""
    import struct
    import zlib

    from lootlab import fileformat as ff
    from lootlab.paths import ensure_default_index
    from lootlab.tables import write_table
    monkeypatch.setenv("LOOTLAB_DATA", str(tmp_path))
    write_table(small(300), tmp_path / "world.parquet")
    index = tmp_path / "loot.idx"
    lootlab.build_index(small(300), index)
    data = bytearray(index.read_bytes())
    struct.pack_into("<H", data, 8, 1)
    struct.pack_into("<I", data, 20, 0)
    struct.pack_into("<I", data, 20, zlib.crc32(bytes(data[:ff.HEADER_SIZE])))
    index.write_bytes(bytes(data))
    mine = tmp_path / "mine.idx"
    mine.write_bytes(bytes(data))
    with pytest.raises(lootlab.InvalidIndexError, match="format version 1; .*rebuild"):
        lootlab.open_index(mine)
    assert ensure_default_index() == index
    with lootlab.open_index(index, verify=True) as idx:
        assert idx.header.version == ff.FORMAT_VERSION and len(idx) == 300


def test_world_is_deterministic_clustered_and_unique():
    a, b = lootlab.generate_world(5000, seed=4), lootlab.generate_world(5000, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(lootlab.generate_world(5000, seed=5))
    assert list(a.columns) == lootlab.FIELDS and len(a) == 5000
    assert not a.duplicated(["x", "y", "z"]).any()
    # clustered: the densest 1 % of 256x256 columns hold far more than 1 % of the loot
    cells = (a["x"] // 256).astype(str) + ":" + (a["z"] // 256).astype(str)
    counts = cells.value_counts()
    assert counts.head(max(1, len(counts) // 100)).sum() > 0.2 * len(a)
    # y mostly near the surface
    assert ((a["y"] > 40) & (a["y"] < 100)).mean() > 0.6


def run_cli(*args) -> Result:
    """``lootlab ARGS`` run in this process (click's runner): the exit code and what the user
    reads on stdout and stderr.  An exception the CLI let through would be a traceback on a
    user's screen, so it fails here."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


def test_cli_world_build_query_as_a_new_user(tmp_path):
    world, index = tmp_path / "w.parquet", tmp_path / "w.idx"
    out = run_cli("world", "--records", 2000, "--seed", 1, "--out", world)
    assert out.exit_code == 0, out.stderr
    out = run_cli("build", world, index)
    assert out.exit_code == 0 and "2,000 records" in out.stdout, out.stderr
    df = oracle.dedupe(pd.read_parquet(world))
    x, y, z = (int(v) for v in df.iloc[5][["x", "y", "z"]])
    out = run_cli("query", index, "near", x, y, z, 64)
    assert out.exit_code == 0
    n = len(oracle.near(df, x, y, z, 64))
    assert f"{n:,} record{'' if n == 1 else 's'} from" in out.stdout
    out = run_cli("query", index, "knn", x, y, z, 3)
    assert out.exit_code == 0 and out.stdout.count("\n") == 5   # summary, header, 3 rows
    out = run_cli("query", index, "box", -5, 0, -5, 5, 100, 5)
    assert out.exit_code == 0


def test_cli_errors_are_one_line_and_nonzero(tmp_path):
    bad = tmp_path / "bad.csv"
    df = small(20)
    df.loc[4, "y"] = 9999
    df.to_csv(bad, index=False)
    out = run_cli("build", bad, tmp_path / "x.idx")
    assert out.exit_code == 1 and "row 4, field 'y'" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("build", tmp_path / "missing.parquet", tmp_path / "x.idx")
    assert out.exit_code == 1 and "no such file" in out.stderr
    out = run_cli("query", tmp_path / "x.idx", "near", 1, 2, 3)
    assert out.exit_code == 2 and "near takes 4 integers" in out.stderr


def test_readers_never_swap_back_to_an_older_generation(tmp_path):
    path = tmp_path / "loot.idx"
    lootlab.build_index(small(50, seed=1), path, generation=5)
    reader = lootlab.open_index(path, refresh_interval=None)
    lootlab.build_index(small(60, seed=2), path, generation=3)
    assert reader.refresh().header.generation == 5 and len(reader) == 50
    assert "older" in str(reader.last_swap_error)     # same lineage: refused
    lootlab.build_index(small(70, seed=3), path, generation=6)
    assert reader.refresh().header.generation == 6 and len(reader) == 70
    assert lootlab.open_index(path).generation == 6
