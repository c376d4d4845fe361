"""Hot swap under readers: LootIndex notices a newly published generation, never mixes
two in one answer, releases old mappings, and survives a publisher churning generations
while threads and separate processes query in tight loops."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import threading
import time
import weakref

import pytest

import lootlab
from _rebuild import PYTHON, SCRIPT, Checker, canon, gen_table, small_world
from lootlab.rebuild import Rebuilder
from lootlab.tables import write_table


def _maps_and_fds(directory) -> tuple[int, int]:
    d = str(directory)
    with open("/proc/self/maps") as f:
        maps = sum(1 for line in f if d in line)
    fds = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds += os.readlink(f"/proc/self/fd/{fd}").startswith(d)
        except OSError:
            pass
    return maps, fds


def test_reader_switches_on_refresh_and_automatically(tmp_path):
    base = small_world(800)
    path = tmp_path / "loot.idx"
    lootlab.build_index(gen_table(base, 1), path)
    manual = lootlab.open_index(path, refresh_interval=None)
    auto = lootlab.open_index(path, refresh_interval=0)
    lootlab.build_index(gen_table(base, 2), path)
    assert manual.generation == 1                         # never checks by itself
    assert auto.generation == 2                           # checks on every call
    manual.refresh()
    assert manual.generation == 2
    assert canon(manual.box((-10**6, -2048, -10**6), (10**6, 2047, 10**6))) == canon(gen_table(base, 2))


def test_a_held_snapshot_stays_readable_and_is_released_after(tmp_path):
    base = small_world(500)
    path = tmp_path / "loot.idx"
    lootlab.build_index(gen_table(base, 1), path)
    idx = lootlab.open_index(path, refresh_interval=None)
    old = idx._current()                   # what a running query holds
    ref = weakref.ref(old)
    lootlab.build_index(gen_table(base, 2), path)
    idx.refresh()
    assert idx.generation == 2 and old.header.generation == 1
    assert int(old.raw[:, 0].sum()) >= 0                 # still mapped, still readable
    assert ref() is not None
    del old
    gc.collect()
    assert ref() is None


def test_no_leaked_maps_or_fds_after_many_swaps(tmp_path):
    base = small_world(300)
    path = tmp_path / "loot.idx"
    lootlab.build_index(gen_table(base, 1), path)
    idx = lootlab.open_index(path, refresh_interval=0)
    assert _maps_and_fds(tmp_path) == (1, 1)       # one mapping (mmap keeps a dup'd fd)
    for g in range(2, 202):
        lootlab.build_index(gen_table(base, g), path)
        assert len(idx.near(0, 64, 0, 300)) >= 0
        assert idx.generation == g
    assert _maps_and_fds(tmp_path) == (1, 1)
    idx.close()
    gc.collect()
    assert _maps_and_fds(tmp_path) == (0, 0)


def test_an_invalid_file_at_the_path_is_not_swapped_in(tmp_path):
    base = small_world(300)
    path = tmp_path / "loot.idx"
    lootlab.build_index(gen_table(base, 1), path)
    idx = lootlab.open_index(path, refresh_interval=0)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not an index" * 100)
    os.replace(garbage, path)                              # someone published junk
    assert idx.generation == 1 and len(idx) == len(gen_table(base, 1))
    assert isinstance(idx.last_swap_error, lootlab.InvalidIndexError)
    lootlab.build_index(gen_table(base, 5), path, generation=5)
    assert idx.generation == 5 and idx.last_swap_error is None


@pytest.mark.slow
def test_readers_under_churn_threads_and_processes(tmp_path):
    """A worker publishes a new generation about every 50 ms for ~3 s while two threads and
    two processes query: no errors, every answer is one generation's brute-force answer,
    and no reader ever sees generations go backwards."""
    n = 2000
    base = small_world(n)
    src = tmp_path / "src.parquet"
    path = tmp_path / "loot.idx"
    write_table(gen_table(base, 1), src)
    worker = Rebuilder(src, path, interval=0.03)
    assert worker.run_once().outcome == "built"

    stop_file = tmp_path / "stop"
    procs = [subprocess.Popen([PYTHON, SCRIPT, "reader", str(path), str(n), str(seed),
                               str(stop_file), "60"], stdout=subprocess.PIPE, text=True)
             for seed in (11, 12)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        checkers = [Checker(path, base, seed) for seed in (21, 22)]
        done = threading.Event()

        def loop(c: Checker) -> None:
            while not done.is_set():
                c.step()
                time.sleep(0)

        threads = [threading.Thread(target=loop, args=(c,)) for c in checkers]
        for t in threads:
            t.start()
        worker.start()
        g, end = 1, time.monotonic() + 3.0
        while time.monotonic() < end:
            g += 1
            write_table(gen_table(base, g), src)           # the source changes every ~50 ms
            time.sleep(0.05)
        worker.trigger()
        final = worker.wait(lambda s: s.source_version != "" and s.builds >= 2, timeout=10)
        stop_file.touch()
        done.set()
        for t in threads:
            t.join(30)
        summaries = [json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1])
                     for p in procs]
    finally:
        worker.stop()
        stop_file.touch()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    summaries += [c.summary() for c in checkers]
    assert final.failures == 0, final.last_error
    assert worker.status.builds >= 5                       # it really churned
    for s in summaries:
        assert s["n_errors"] == 0, s["errors"]
        assert s["mismatches"] == 0 and s["mixed"] == 0 and s["backwards"] == 0, s
        assert s["queries"] > 0 and s["ticks_seen"] >= 2, s    # each reader saw swaps
    assert all(p.returncode == 0 for p in procs)


def test_truncating_a_mapped_file_kills_its_reader_with_sigbus(tmp_path):
    """The reason for "publish only new files": writing over a mapped file in place."""
    path = tmp_path / "loot.idx"
    lootlab.build_index(small_world(5000), path)
    reader = subprocess.Popen([PYTHON, SCRIPT, "sigbus", str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert reader.stdout.readline().strip() == "mapped"
        os.truncate(path, 0)                                # the forbidden act
        reader.wait(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    assert reader.returncode == -signal.SIGBUS
