"""Memory per node against a brute-force reading of /proc: the experiment's own processes
read by the test itself at the same moment, and processes of known private sizes sharing
one mapped index."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lootlab.build import build_index
from lootlab.experiments.node_memory import node_memory
from lootlab.experiments.node_memory_cgroup import memory_cgroup_unavailable
from lootlab.experiments.node_memory_procs import Pool
from lootlab.world import generate_world

PAGE = 4096
KIB = 1024
MIB = 1 << 20
# Pss of shared libraries moves when other processes on this (shared) machine start or
# stop mapping the same libraries; anonymous memory of an idle worker does not.
CHURN_PER_PROCESS = 512 * KIB


def _rollup_kb(pid: int, field: str) -> int:
    """The brute-force oracle: one field of /proc/PID/smaps_rollup, in bytes."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * KIB
    raise AssertionError(f"no {field} in smaps_rollup of {pid}")


def _smaps_sum(pid: int, field: str, path: str) -> int:
    """Sum of one field over the mappings of ``path`` in /proc/PID/smaps, longhand."""
    total, inside = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if parts and "-" in parts[0] and not parts[0].endswith(":"):
            inside = line.rstrip().endswith(path)
        elif inside and parts[0] == field + ":":
            total += int(parts[1]) * KIB
    return total


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("node-memory") / "loot.idx"
    build_index(generate_world(20_000, 1), path)
    return path


def test_known_private_sizes_and_one_shared_index_sum_to_the_node(index):
    size = index.stat().st_size
    pages = -(-size // PAGE) * PAGE
    with Pool(timeout=120) as pool:
        for n in (1, 3):
            pool.grow(n, "open", path=str(index), prefault="populate", queries_per_page=1)
            got = pool.measure([str(index)])
            # the index's pages are paid once on the node, however many readers map them:
            # PSS splits each page among them (each process's figure truncated to a KiB)
            assert sum(s["index_pss"] for s in got) == pytest.approx(pages, abs=n * KIB)
            assert all(s["index_rss"] == pages for s in got)
            for s in got:
                assert s["index_pss"] == _smaps_sum(s["pid"], "Pss", str(index))
        before = pool.measure([str(index)])
        pool.broadcast("alloc", mib=16)
        after = pool.measure([str(index)])
        grew = sum(a["Uss"] for a in after) - sum(b["Uss"] for b in before)
        # 3 x 16 MiB written, plus at most a few pages of allocator bookkeeping each
        assert grew == pytest.approx(3 * 16 * MIB, abs=3 * 64 * KIB)
        pss_grew = sum(a["Pss"] for a in after) - sum(b["Pss"] for b in before)
        assert pss_grew == pytest.approx(3 * 16 * MIB, abs=3 * CHURN_PER_PROCESS)
        for s in after:
            oracle = _rollup_kb(s["pid"], "Pss")
            assert s["Pss"] == pytest.approx(oracle, abs=CHURN_PER_PROCESS)
            assert s["Uss"] == pytest.approx(_rollup_kb(s["pid"], "Private_Clean")
                                             + _rollup_kb(s["pid"], "Private_Dirty"),
                                             abs=CHURN_PER_PROCESS)


def test_node_memory_rows_equal_the_oracle_read_at_the_same_moment(tmp_path):
    seen: dict[tuple[str, str, int], dict[str, int]] = {}

    def probe(kind: str, phase: str, n: int, pids: list[int]) -> None:
        seen[(kind, phase, n)] = {"Pss": sum(_rollup_kb(p, "Pss") for p in pids),
                                  "Rss": sum(_rollup_kb(p, "Rss") for p in pids),
                                  "count": len(pids)}

    run = node_memory(readers=(1, 2), index_records=(20_000,), remote_clients=(1,),
                      workdir=tmp_path, probe=probe, remote_queries=50)
    rows = run.rows
    want = {("mmap", "steady", 1), ("mmap", "swap-peak", 1), ("mmap", "steady", 2),
            ("mmap", "swap-peak", 2), ("remote-client", "steady", 1),
            ("remote-server", "steady", 1)}
    assert set(zip(rows["kind"], rows["phase"], rows["n"])) == want
    assert set(seen) == want
    for _, row in rows.iterrows():
        oracle = seen[(row["kind"], row["phase"], row["n"])]
        slack = oracle["count"] * CHURN_PER_PROCESS
        assert row["node_bytes"] == pytest.approx(oracle["Pss"], abs=slack)
        assert row["node_rss_bytes"] == pytest.approx(oracle["Rss"], abs=slack)
        assert row["uss_max_bytes"] <= row["rss_max_bytes"]
    mm = rows[rows["kind"] == "mmap"].set_index(["phase", "n"])
    size = float(mm["index_bytes"].iloc[0])
    for n in (1, 2):
        steady, peak = mm.loc[("steady", n)], mm.loc[("swap-peak", n)]
        # queried uniformly, a reader touches (nearly) every page of its generation ...
        assert steady["index_pss_sum_bytes"] == pytest.approx(size, rel=0.02)
        # ... and while a swap maps both generations, the node holds both
        assert peak["index_pss_sum_bytes"] == pytest.approx(2 * size, rel=0.02)
        assert peak["node_bytes"] > steady["node_bytes"]
    assert not list(tmp_path.iterdir()), "the experiment's temporary files were left"
    cg = run.cgroup.set_index("cache")
    if memory_cgroup_unavailable() is None:
        # the first process to read a page is charged for it, and keeps the charge
        assert cg.loc["cold", "cache_bytes"] >= 0.9 * size
        assert cg.loc["warm", "cache_bytes"] < 0.5 * cg.loc["cold", "cache_bytes"]
        assert cg.loc["cold", "rss_bytes"] > 0
    else:
        assert cg["usage_bytes"].map(math.isnan).all() and cg["reason"].str.len().gt(0).all()
    assert run.meta["loadavg_before"] and run.meta["loadavg_after"]
