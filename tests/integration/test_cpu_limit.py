"""CPU limits like a container's: a cgroup quota really limits a process and
counts its throttling, a CPU-limited load run records the conditions and the counters and
blames the limit for the lag it caused, no cgroup is left behind (even after SIGKILL), and a
machine without writable cgroups says so instead of running unlimited in silence."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _loadgen import QUERIES, noop_factory
from click.testing import CliRunner

from lootlab import loadgen
from lootlab.cli import main
from lootlab.conditions import cgroup
from lootlab.conditions.errors import ConditionsError
from lootlab.experiments.comparison import load_run
from lootlab.loadgen import limits
from lootlab.loadgen.results import LoadResult

WHY = cgroup.cgroup_unavailable()
needs_cgroups = pytest.mark.skipif(WHY is not None, reason=f"cgroups not writable: {WHY}")

BUSY = """
import sys, time
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()                      # released once it is in its cgroup
cpu0, t0 = time.process_time(), time.monotonic()
while time.monotonic() - t0 < float(sys.argv[1]):
    pass
print(f"{(time.process_time() - cpu0) / (time.monotonic() - t0):.4f}")
"""


def _ours() -> set[str]:
    """This process's lootlab cgroups that exist now."""
    where, _ = cgroup._locate()
    if where is None:
        return set()
    return {p.name for p in where.parent.glob(f"lootlab-{os.getpid()}-*")}


def _busy_child(seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", BUSY, str(seconds)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def _release(p: subprocess.Popen) -> None:
    p.stdin.write("go\n")
    p.stdin.flush()


@needs_cgroups
def test_a_busy_child_gets_about_its_quota_and_is_throttled_an_unlimited_one_is_not():
    """Two busy loops side by side: one in a 0.2-core group, one in a group of all the cores
    (no limit a single thread can reach).  The limited one gets ~0.2 core and is throttled;
    the other is never throttled and gets more CPU (~5x on a quiet machine).  Wide bounds:
    a busy shared machine can give either less than it asked, never the limited one much
    more."""
    with cgroup.cpu_cgroup(0.2) as small, cgroup.cpu_cgroup(float(os.cpu_count())) as big:
        a, b = _busy_child(1.5), _busy_child(1.5)
        small.add(a.pid)
        big.add(b.pid)
        assert small.pids() == [a.pid] and big.pids() == [b.pid]
        _release(a)
        _release(b)
        share_a = float(a.communicate(timeout=60)[0])
        share_b = float(b.communicate(timeout=60)[0])
        sa, sb = small.stats(), big.stats()
    assert 0.08 <= share_a <= 0.3, share_a
    assert sa["throttled_periods"] > 0 and sa["throttled_ms"] > 0, sa
    assert sa["periods"] >= sa["throttled_periods"] and 0 < sa["throttled_share"] <= 1
    assert sb["throttled_periods"] == 0 and sb["periods"] > 0, sb
    assert share_b > 1.2 * share_a, (share_a, share_b)
    assert not (small.path.exists() or big.path.exists())


@pytest.mark.parametrize("bad", [0, -1, 0.005, math.nan, math.inf, "many", True])
def test_bad_core_counts_are_refused_with_the_reason(bad):
    with pytest.raises(ConditionsError, match="cpu_limit"):
        cgroup.check_cores(bad)
    with pytest.raises(ConditionsError, match="cpu_limit"):     # before any workload is made
        loadgen.run("mmap", loadgen.constant(100, 0.1), workload=None, cpu_limit=bad)


@pytest.mark.parametrize("arg", ["nan", "0", "-2", "0.001", "lots"])
def test_bench_cli_bad_cpu_limit_is_one_line(arg, tmp_path):
    res = CliRunner().invoke(main, ["bench", "--cpu-limit", arg, "--duration", "1",
                                    "--out", str(tmp_path / "r")])
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) <= 3 and "Traceback" not in res.output, res.output
    assert "cpu" in res.output.lower() and not (tmp_path / "r").exists()


# ------------------------------------------------------------------- a limited load run
@needs_cgroups
def test_a_cpu_limited_mmap_run_is_throttled_and_its_verdict_blames_the_limit(tmp_path):
    """mmap at 15,000/s wants ~0.4 core (its C kernels take ~10 us a query, the sender's
    sleeps a few more); at 0.25 core its worker is throttled in most periods and the queue
    behind the stalls grows: the verdict names the limit, not the generator, and calls the
    run saturated (what a replica over its quota does: a queue, not a latency)."""
    from lootlab.targets import client_factory
    res = loadgen.run(client_factory("mmap"), loadgen.constant(15_000, 1.5), warmup=0.3,
                      cpu_limit=0.25)
    t = res.throttle
    assert t is not None and t["throttled_periods"] > 0 and t["throttled_ms"] > 0, t
    assert res.health.saturated and not res.health.valid, res.health
    assert 10 <= t["periods"] <= 40        # 1.5 s of 100 ms periods (warm-up not counted)
    c = res.conditions
    assert c["cpu_limit"] == 0.25 and c["cpu_limit_applied"] is True
    assert c["cpu_limit_note"] is None and c["rtt_ms"] is None
    assert set(c) == set(limits.CONDITION_KEYS)
    assert res.health.bottleneck == "cpu-limit", res.health
    assert "CPU limit: throttled" in str(res.health)
    assert "the generator itself sent late" not in str(res.health), res.health
    assert res.generator_cpu <= 0.25 * 1.3, res.generator_cpu   # held to its quota
    assert "CPU limit 0.25 cores: throttled" in res.describe()
    assert not _ours()
    # kept through save/load and into the tables
    back = LoadResult.load(res.save(tmp_path / "r"))
    assert back.conditions == c and back.throttle == t
    assert back.health.bottleneck == "cpu-limit"
    frame = back.to_frame()
    assert (frame.cpu_limit == 0.25).all() and (frame.throttled_periods ==
                                                t["throttled_periods"]).all()
    assert frame.rtt_ms.isna().all()
    s = back.summary()
    assert s["throttled_ms"] == pytest.approx(t["throttled_ms"]) and s["cpu_limit"] == 0.25


def test_conditions_round_trip_and_pool_when_unset_and_set(tmp_path):
    """A run without conditions records nulls (NaN in the tables); a result saved before
    conditions existed loads with them null; pooled trials sum the throttle counters."""
    res = loadgen.run(noop_factory, loadgen.constant(500, 0.4), workload=QUERIES, warmup=0)
    assert res.conditions == dict.fromkeys(limits.CONDITION_KEYS) and res.throttle is None
    frame = res.to_frame()
    assert frame[["rtt_ms", "cpu_limit", "throttled_periods", "throttled_ms"]].isna().all().all()
    where = res.save(tmp_path / "a")
    doc = json.loads((where / "summary.json").read_text())
    doc.pop("conditions"), doc.pop("throttle")          # as saved before conditions existed
    (where / "summary.json").write_text(json.dumps(doc))
    old = LoadResult.load(where)
    assert old.conditions == res.conditions and old.throttle is None
    from lootlab.loadgen.pooling import pooled, pooled_conditions
    a, b = LoadResult.load(where), LoadResult.load(where)
    a.throttle = cgroup.counters(20, 5, 100.0)
    b.throttle = cgroup.counters(10, 5, 50.0)
    a.conditions = b.conditions = {**a.conditions, "cpu_limit": 0.5, "cpu_limit_applied": True}
    conds, throttle = pooled_conditions([a, b])
    assert throttle == cgroup.counters(30, 10, 150.0) and conds["cpu_limit"] == 0.5
    row = pooled([a, b])
    assert row["throttled_periods"] == 10 and row["throttled_ms"] == 150 and \
        row["cpu_limit"] == 0.5


def test_where_cgroups_cannot_be_written_the_run_goes_on_unlimited_and_says_so(monkeypatch):
    monkeypatch.setattr(cgroup, "cgroup_unavailable", lambda: "not root (test)")
    with pytest.warns(limits.CpuLimitWarning, match="not applied, ran unlimited: not root"):
        res = loadgen.run(noop_factory, loadgen.constant(300, 0.3), workload=QUERIES,
                          warmup=0, cpu_limit=0.5)
    c = res.conditions
    assert c["cpu_limit"] == 0.5 and c["cpu_limit_applied"] is False
    assert "not root (test)" in c["cpu_limit_note"] and res.throttle is None
    assert "NOT applied" in res.describe()


# ----------------------------------------------------------------------------- cleanup
class SelfKiller:
    """A client that records the cgroup its first request ran in, then SIGKILLs its own
    process at the 20th."""

    def __init__(self, where: str):
        self.where, self.calls = where, 0

    def near(self, x, y, z, r):
        self.calls += 1
        if self.calls == 1:     # the schedule's first request: already inside the limit
            Path(self.where).write_text(Path("/proc/self/cgroup").read_text())
        if self.calls == 20:
            os.kill(os.getpid(), signal.SIGKILL)


def self_killer(where: str) -> SelfKiller:
    return SelfKiller(where)


@needs_cgroups
def test_no_cgroup_is_left_when_the_worker_is_sigkilled(tmp_path):
    import functools
    where = tmp_path / "cgroup.txt"
    with pytest.raises(loadgen.LoadgenError, match="SIGKILL"):
        loadgen.run(functools.partial(self_killer, str(where)), loadgen.constant(200, 2),
                    workload=QUERIES, warmup=0, cpu_limit=0.5)
    assert f"lootlab-{os.getpid()}-" in where.read_text()   # request 1 ran inside the limit
    assert not _ours()


OWNER = """
import subprocess, sys, time
from lootlab.conditions.cgroup import CpuCgroup
g = CpuCgroup(0.5)
child = subprocess.Popen(["sleep", "60"])
g.add(child.pid)
print(g.path, child.pid, flush=True)
time.sleep(60)
"""


@needs_cgroups
def test_a_sigkilled_owners_cgroup_is_removed_by_the_next_one():
    """The owner of a group (with a process still in it) is SIGKILLed: its group stays until
    the next group is made, which moves the process out and removes it."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    path, pid = owner.stdout.readline().split()
    path, pid = Path(path), int(pid)
    try:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
        assert path.is_dir() and int((path / "cgroup.procs").read_text()) == pid
        with cgroup.cpu_cgroup(1.0) as fresh:
            assert not path.exists()
            assert fresh.path.is_dir()
        assert not fresh.path.exists()
        os.kill(pid, 0)                                  # still alive, moved out
        assert "lootlab-" not in Path(f"/proc/{pid}/cgroup").read_text()
    finally:
        os.kill(pid, signal.SIGKILL)
        if path.exists():
            cgroup._remove(path, path.parent)


def test_a_network_with_a_plain_factory_is_refused():
    with pytest.raises(loadgen.LoadgenError, match="needs a factory that can be re-routed"):
        loadgen.run(noop_factory, loadgen.constant(100, 0.1), workload=QUERIES,
                    network={"rtt_ms": 5})


def test_the_benchmark_rows_compare_each_remote_variant_with_mmap():
    """``benchmarks.cpulimit.rows`` from measured data: counts, the ratio to mmap (a lower
    bound against 1 period when mmap was never throttled), no ratio when neither was."""
    from lootlab.benchmarks import cpulimit

    def v(n, periods=20):
        return {"throttle": cgroup.counters(periods, n, n * 50.0), "applied": True,
                "note": None, "p99_ms": 1.0, "achieved": 100.0, "cpu": 0.2,
                "bottleneck": ["none"]}
    m = {"variants": {"mmap": v(2), "grpc-tls-pooled": v(10), "grpc-tls-packed": v(0)},
         "cpu_limit": 0.25, "rate": 100.0, "trials": 1, "duration": 1.0, "concurrency": 4,
         "load": (1.0, 1.0, 1.0)}
    rows = {r["measure"]: r for r in cpulimit.rows(measured=m)}
    assert rows["grpc-tls-pooled throttled / mmap's"]["value"] == 5.0
    assert rows["grpc-tls-packed throttled periods at 0.25 core"]["verdict"] == "MISS"
    m["variants"]["mmap"] = v(0)
    rows = {r["measure"]: r for r in cpulimit.rows(measured=m)}
    assert rows["grpc-tls-pooled throttled / mmap's"]["value"] == 10.0
    assert "at least" in rows["grpc-tls-pooled throttled / mmap's"]["note"]
    assert math.isnan(rows["grpc-tls-packed throttled / mmap's"]["value"])
    assert "grpc-tls-pooled" in cpulimit.render(list(rows.values()), m)
    m["variants"]["mmap"] = {**v(0), "applied": False, "note": "not root"}
    (only,) = cpulimit.rows(measured=m)
    assert "not measured: not root" in only["note"]


@needs_cgroups
def test_bench_cli_runs_under_a_cpu_limit_and_prints_its_throttling(tmp_path):
    res = CliRunner().invoke(main, ["bench", "--variant", "mmap", "--rate", "300",
                                    "--duration", "0.5", "--warmup", "0.2", "--cpu-limit",
                                    "0.5", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "conditions: CPU limit 0.5 cores: throttled " in res.output
    [back] = load_run(tmp_path / "r").results["mmap"]
    assert back.conditions["cpu_limit"] == 0.5 and back.throttle is not None
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["params"]["cpu_limit"] == 0.5
    assert not _ours()
