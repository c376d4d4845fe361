"""The pure parts of memory per node: parsing /proc and cgroup text, and summing processes
into per-node rows, each against a brute-force oracle written out longhand."""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.experiments.node_memory_sums import (
    ROLLUP_FIELDS,
    ROW_COLUMNS,
    cgroup_charges,
    mapping_totals,
    parse_memory_stat,
    rollup_sample,
    summarize,
)

_KB = st.integers(min_value=0, max_value=10**8)
_EXTRA = ("Referenced", "Anonymous", "LazyFree", "Swap", "SwapPss", "Locked", "Pss_Dirty")


@settings(max_examples=60, deadline=None)
@given(st.fixed_dictionaries({f: _KB for f in ROLLUP_FIELDS + _EXTRA}), st.randoms())
def test_rollup_sample_reads_every_field_in_bytes(values, rnd):
    lines = [f"{name}: {kb:>12} kB" for name, kb in values.items()]
    rnd.shuffle(lines)
    text = "55f7-7ffc ---p 00000000 00:00 0      [rollup]\n" + "\n".join(lines) + "\n"
    got = rollup_sample(text)
    for name in ROLLUP_FIELDS:
        assert got[name] == values[name] * 1024
    assert got["Uss"] == (values["Private_Clean"] + values["Private_Dirty"]) * 1024
    assert got["Shared"] == (values["Shared_Clean"] + values["Shared_Dirty"]) * 1024
    assert not set(got) & set(_EXTRA)


def test_rollup_sample_missing_fields_are_zero():
    got = rollup_sample("Rss: 8 kB\nPss: 4 kB\n")
    assert got["Rss"] == 8192 and got["Pss"] == 4096 and got["Uss"] == 0


def _smaps(maps: list[tuple[str, dict[str, int]]]) -> str:
    out = []
    for i, (name, f) in enumerate(maps):
        out.append(f"{0x1000 * i:x}-{0x1000 * (i + 1):x} r--s 00000000 fd:00 {i + 1:<8} {name}"
                   .rstrip())
        out += [f"{k}: {v} kB" for k, v in f.items()]
        out.append("VmFlags: rd sh mr mw me ms sd")
    return "\n".join(out) + "\n"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["/d/a.idx", "/d/a.idx (deleted)", "/d/b.idx",
                                           "/lib/x.so", "", "[heap]"]),
                          st.fixed_dictionaries({"Size": _KB, "Rss": _KB, "Pss": _KB,
                                                 "Shared_Clean": _KB})), max_size=12))
def test_mapping_totals_sums_the_named_files_only(maps):
    got = mapping_totals(_smaps(maps), ["/d/a.idx", "/d/b.idx"])
    for field in ("Size", "Rss", "Pss"):
        want = 0
        for name, f in maps:
            if name.replace(" (deleted)", "") in ("/d/a.idx", "/d/b.idx"):
                want += f[field] * 1024
        assert got[field] == want


def test_memory_stat_and_charges_both_versions():
    v1 = parse_memory_stat("cache 4096\nrss 8192\nmapped_file 4096\ntotal_cache 9\n")
    assert cgroup_charges(v1, 20000, 1) == {"usage_bytes": 20000, "cache_bytes": 4096,
                                            "rss_bytes": 8192, "mapped_file_bytes": 4096}
    v2 = parse_memory_stat("anon 100\nfile 300\nfile_mapped 200\nweird line\n")
    assert cgroup_charges(v2, 500, 2) == {"usage_bytes": 500, "cache_bytes": 300,
                                          "rss_bytes": 100, "mapped_file_bytes": 200}


def _processes(rnd: random.Random) -> pd.DataFrame:
    rows = []
    for kind in ("mmap", "remote-client"):
        for phase in ("steady", "swap-peak"):
            for n in (1, 3):
                for pid in range(n):
                    f = {k: rnd.randrange(0, 1 << 30) for k in ROLLUP_FIELDS}
                    f["Uss"] = f["Private_Clean"] + f["Private_Dirty"]
                    f["Shared"] = f["Shared_Clean"] + f["Shared_Dirty"]
                    size = 0 if kind != "mmap" else 1 << 20
                    rows.append({"kind": kind, "phase": phase, "n": n, "index_records": 10,
                                 "index_bytes": 1 << 20, "pid": 1000 + pid, **f,
                                 "index_size": size, "index_rss": rnd.randrange(0, size + 1),
                                 "index_pss": rnd.randrange(0, 1 << 20)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", range(5))
def test_summarize_matches_a_longhand_sum(seed):
    procs = _processes(random.Random(seed))
    rows = summarize(procs)
    assert list(rows.columns) == list(ROW_COLUMNS)
    assert len(rows) == 8
    for _, row in rows.iterrows():
        mine = [p for p in procs.to_dict("records")
                if (p["kind"], p["phase"], p["n"]) == (row["kind"], row["phase"], row["n"])]
        assert row["processes_count"] == len(mine) == row["n"]
        assert row["node_bytes"] == sum(p["Pss"] for p in mine)
        assert row["node_uss_bytes"] == sum(p["Uss"] for p in mine)
        assert row["node_rss_bytes"] == sum(p["Rss"] for p in mine)
        assert row["pss_max_bytes"] == max(p["Pss"] for p in mine)
        assert row["uss_mean_bytes"] == pytest.approx(sum(p["Uss"] for p in mine) / len(mine))
        assert row["rss_max_bytes"] == max(p["Rss"] for p in mine)
        assert row["index_pss_sum_bytes"] == sum(p["index_pss"] for p in mine)
        shares = [p["index_rss"] / p["index_size"] for p in mine if p["index_size"]]
        if shares:
            assert row["index_resident_share"] == pytest.approx(sum(shares) / len(shares))
        else:
            assert math.isnan(row["index_resident_share"])


def test_summarize_of_nothing_is_an_empty_frame_with_the_columns():
    rows = summarize(pd.DataFrame())
    assert rows.empty and list(rows.columns) == list(ROW_COLUMNS)
