"""The workload process the profilers attach to: real subprocesses, checked against the index."""
# ruff: noqa: F811  (pytest fixtures imported from _profiling)

from __future__ import annotations

import gc
import json
import subprocess
import sys

import numpy as np
from _profiling import data_env, small_index  # noqa: F401

import lootlab
from lootlab.overlay import overlay_queries
from lootlab.profiling import GcRecorder, GcStats, gc_pauses
from lootlab.workload import run


def _workload(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lootlab.workload", *args], capture_output=True, check=False,
                          text=True, timeout=120, **kw)


def test_workload_runs_the_overlay_queries(small_index, data_env):
    proc = _workload("--variant", "mmap", "--index", str(small_index), "--queries", "150",
                     "--warmup", "0", "--seed", "5", "--proc-stats")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    with lootlab.open_index(small_index) as idx:
        qs = overlay_queries(idx, 10_000, seed=5)[:150]
        expected = sum(len(idx.near(*map(int, q))) for q in qs)
    assert out["ops"] == 150
    assert out["records"] == expected > 0
    assert out["cpu_us_per_op"] > 0
    assert out["proc"]["RssAnon"] > 0 and out["proc"]["Pss_File"] > 0
    assert out["index_mapping"]["Size"] >= small_index.stat().st_size - 4096


def test_test_workloads_and_duration(data_env):
    spin = _workload("--spin", "--duration", "0.3")
    assert spin.returncode == 0, spin.stderr
    s = json.loads(spin.stdout)
    assert s["kind"] == "spin" and s["ops"] > 0 and 0.25 < s["seconds"] < 5
    alloc = run(alloc_per_op=7, queries=100)
    assert alloc.kind == "alloc" and alloc.ops == 100
    paced = run(alloc_per_op=1, queries=21, rate=200, warmup=0)   # due times 0, 5, ..., 100 ms
    assert paced.ops == 21 and paced.seconds >= 0.099 and paced.rate == 200


def test_hold_keeps_the_process_until_stdin_closes(small_index, data_env):
    p = subprocess.Popen([sys.executable, "-m", "lootlab.workload", "--index", str(small_index),
                          "--queries", "20", "--hold"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert json.loads(line)["ops"] == 20
        assert p.poll() is None                     # still alive, index still mapped
        from lootlab.profiling import mapping_of
        assert mapping_of(small_index, p.pid)["Size"] > 0
    finally:
        p.stdin.close()
        assert p.wait(timeout=30) == 0
        p.stdout.close()
        p.stderr.close()


def test_unknown_variant_is_one_line_error(small_index, data_env):
    proc = _workload("--variant", "no-such-variant", "--index", str(small_index), "--queries", "5")
    assert proc.returncode == 1
    assert "no-such-variant" in proc.stderr and "Traceback" not in proc.stderr


def test_gc_recorder_counts_a_forced_collection():
    class Cycle:
        pass
    with GcRecorder() as rec:
        for _ in range(100):
            a, b = Cycle(), Cycle()
            a.other, b.other = b, a
        del a, b
        gc.collect(2)
    full = [e for e in rec.events if e.generation == 2]
    assert len(full) >= 1
    assert all(e.pause_ns >= 0 for e in rec.events)
    assert sum(e.collected for e in full) >= 200       # the 100 cycles, 2 objects each
    stats = GcStats("x", ops=500, events=rec.events)
    assert stats.collections_per_kop()[2] == 2 * len(full)
    assert stats.summary()["pause_max_ms"] == max(e.pause_ns for e in rec.events) / 1e6


def test_gc_pauses_from_a_workload_process(small_index, data_env):
    stats = gc_pauses("mmap", queries=300, index=small_index)
    assert stats.ops == 300
    s = stats.summary()
    assert s["collections"] == len(stats.events)
    assert np.all(stats.pauses_ms >= 0)


def test_remote_variant_workload_gives_the_same_records(small_index, data_env):
    """A remote variant with --index gets its own loopback server for that index."""
    outs = {}
    for variant in ("mmap", "grpc-plain"):
        proc = _workload("--variant", variant, "--index", str(small_index), "--queries", "40")
        assert proc.returncode == 0, proc.stderr
        outs[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outs["grpc-plain"]["records"] == outs["mmap"]["records"] > 0
    assert outs["grpc-plain"]["ops"] == outs["mmap"]["ops"] == 40
