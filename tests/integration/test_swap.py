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
from _rebuild import PYTHON, SCRIPT, Checker, brute_near, canon, gen_table, small_world
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
    # still mapped, still readable: the held snapshot holds exactly generation 1's rows
    held = lootlab.records.words_to_results(old.raw)
    assert canon(held) == canon(gen_table(base, 1))
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
        if g % 20 == 0:                                  # answers come from the new file
            expected = brute_near(gen_table(base, g), 0, 64, 0, 300)
            assert canon(idx.near(0, 64, 0, 300)) == canon(expected)
        else:
            idx.near(0, 64, 0, 300)
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


# -- lineage: a file built afresh is never refused as "older" -----------

def test_a_deleted_and_rebuilt_index_is_swapped_in_by_a_live_reader_thread(tmp_path):
    """Deleting the index and building it again with default settings restarts the
    generation at 1; it is a new lineage, so running readers switch to it."""
    base = small_world(600)
    path = tmp_path / "loot.idx"
    for g in (1, 2, 3):
        lootlab.build_index(gen_table(base, g), path)
    idx = lootlab.open_index(path, refresh_interval=0.01)
    first_lineage = getattr(idx, "lineage", None)
    seen: list[tuple[int, int, int]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            rows = idx.box((-10**6, -2048, -10**6), (10**6, 2047, 10**6))
            seen.append((idx.generation, len(rows), int(rows["tick"].max())))
            time.sleep(0.001)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        os.unlink(path)
        rep = lootlab.build_index(gen_table(base, 9), path)     # default settings
        assert rep.generation == 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not seen or seen[-1][2] != 9):
            time.sleep(0.01)
    finally:
        stop.set()
        reader.join(30)
    assert seen and seen[-1] == (1, len(gen_table(base, 9)), 9), seen[-3:]
    assert idx.lineage != first_lineage and idx.last_swap_error is None
    # and the new lineage continues as usual: an explicit older generation is refused
    lootlab.build_index(gen_table(base, 10), path)
    assert idx.refresh().header.generation == 2
    lootlab.build_index(gen_table(base, 11), path, generation=1)
    assert idx.refresh().header.generation == 2 and "older" in str(idx.last_swap_error)


READER = """
import sys, time
import lootlab
idx = lootlab.open_index(sys.argv[1], refresh_interval=0)
print("ready", idx.generation, getattr(idx, "lineage", 0), flush=True)
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    rows = idx.box((-10**6, -2048, -10**6), (10**6, 2047, 10**6))
    if len(rows) and int(rows["tick"].max()) == 9:
        print("swapped", idx.generation, getattr(idx, "lineage", 0), len(rows), flush=True)
        break
    time.sleep(0.005)
else:
    print("stale", idx.generation, repr(idx.last_swap_error), flush=True)
"""


def test_a_reader_process_swaps_to_a_rebuilt_index_of_a_new_lineage(tmp_path):
    base = small_world(600)
    path = tmp_path / "loot.idx"
    for g in (1, 2, 3, 4):
        lootlab.build_index(gen_table(base, g), path)
    proc = subprocess.Popen([PYTHON, "-c", READER, str(path), "90"], stdout=subprocess.PIPE,
                            text=True)
    try:
        ready = proc.stdout.readline().split()
        assert ready[:2] == ["ready", "4"], ready
        os.unlink(path)
        lootlab.build_index(gen_table(base, 9), path)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    words = out.split()
    assert words[:2] == ["swapped", "1"], out
    assert int(words[2]) == lootlab.open_index(path).lineage != int(ready[2])
    assert int(words[3]) == len(gen_table(base, 9))
