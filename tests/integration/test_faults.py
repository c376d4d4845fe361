"""Faults the rebuild worker must survive, each for real: S3 down/slow/failing, bad and
corrupt sources, SIGKILL mid-build (subprocesses), disk full, file too large, permission
denied.  In every case the published index stays a valid old or new generation."""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest

import lootlab
import _mounts as mounts
from _rebuild import PYTHON, SCRIPT, canon, index_rows, loopback_s3, s3, small_world  # noqa: F401
from lootlab.rebuild import Rebuilder
from lootlab.tables import write_table


def fingerprint(path) -> tuple:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def temp_files(path) -> list[str]:
    return sorted(p.name for p in path.parent.glob(f".{path.name}.tmp-*"))


# -- S3 faults against a running worker --------------------------------------------------------

@pytest.mark.parametrize("fault", ["unreachable", "slow", "error"])
def test_s3_outage_keeps_last_generation_retries_with_backoff_and_recovers(tmp_path, s3, fault):
    world = small_world(1200)
    key = f"outage-{fault}/world.parquet"
    s3.put_table(world, "loot", key)
    path = tmp_path / "loot.idx"
    if fault == "unreachable":   # a server of its own, stopped to make the endpoint refuse
        from lootlab.s3local import LoopbackS3
        own = LoopbackS3().start()
        own.put_table(world, "loot", key)
        source = own.source("loot", key, connect_timeout=0.2, read_timeout=0.2, max_attempts=1)
    else:
        own = None
        source = s3.source("loot", key, connect_timeout=0.2, read_timeout=0.2, max_attempts=1)
        s3.switch.slow_seconds = 1.0
    worker = Rebuilder(source, path, interval=0.1, backoff=0.05, max_backoff=0.4)
    assert worker.run_once().outcome == "built"
    reader = lootlab.open_index(path, refresh_interval=0)
    before = fingerprint(path)
    with worker:
        worker.wait(lambda s: s.cycles >= 2)
        if own is not None:
            own.stop()
        else:
            s3.fault = fault
        failing = worker.wait(lambda s: s.consecutive_failures >= 3, timeout=30)
        # readers keep serving the last good generation
        x, y, z = (int(v) for v in world.iloc[0][["x", "y", "z"]])
        assert reader.get(x, y, z) is not None and reader.generation == 1
        assert failing.generation == 1 and failing.last_error
        assert {"unreachable": "connect", "slow": "timeout", "error": "503"}[fault] \
            in failing.last_error.lower()
        # backoff: the wait grows while failures last (bounded by max_backoff)
        assert worker.next_delay() >= 0.05 * 2 ** 2 * 0.9
        time.sleep(0.3)
        stale = worker.status
        assert stale.staleness >= 0.3 and stale.consecutive_failures >= 3
        assert fingerprint(path) == before
        if own is None:                              # the outage ends: it catches up
            s3.fault = None
            s3.put_table(world.head(300), "loot", key)
            ok = worker.wait(lambda s: s.generation == 2, timeout=30)
            assert ok.consecutive_failures == 0 and ok.last_success > stale.last_success
    if own is None:
        assert reader.generation == 2 and len(reader) == 300


def test_corrupt_in_transit_and_truncated_object_leave_the_index_untouched(tmp_path, s3):
    world = small_world(900)
    s3.put_table(world, "loot", "corrupt/world.parquet")
    path = tmp_path / "loot.idx"
    worker = Rebuilder(s3.source("loot", "corrupt/world.parquet", max_attempts=1), path)
    worker.run_once()
    before = fingerprint(path)
    s3.put_table(world.head(100), "loot", "corrupt/world.parquet")
    s3.fault = "corrupt"
    res = worker.run_once()
    assert res.outcome == "failed" and "checksum" in res.error.lower()
    s3.fault = None
    buf = io.BytesIO()
    world.head(100).to_parquet(buf)
    s3.put_bytes(buf.getvalue()[:-64], "loot", "corrupt/world.parquet")
    res = worker.run_once()
    assert res.outcome == "failed" and "CorruptSourceError" in res.error
    assert "corrupt/world.parquet" in res.error
    assert fingerprint(path) == before and temp_files(path) == []
    assert canon(index_rows(path)) == canon(world)


def test_bad_rows_fail_the_cycle_naming_the_row(tmp_path):
    world = small_world(700)
    src = tmp_path / "world.csv"
    write_table(world, src)
    path = tmp_path / "loot.idx"
    worker = Rebuilder(src, path)
    worker.run_once()
    before = fingerprint(path)
    text = src.read_text().splitlines()
    fields = text[43].split(",")
    fields[1] = "5000"                      # y out of range, in data row 42
    text[43] = ",".join(fields)
    src.write_text("\n".join(text) + "\n")
    res = worker.run_once()
    assert res.outcome == "failed"
    assert "row 42, field 'y'" in res.error and "world.csv" in res.error
    assert fingerprint(path) == before and temp_files(path) == []
    src.write_text("x,y,z\n1,2\n")          # missing columns
    assert "missing column" in worker.run_once().error
    assert fingerprint(path) == before


# -- SIGKILL -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_sigkill_at_random_points_never_breaks_the_published_index(tmp_path):
    world = small_world(20000, seed=5)
    write_table(world, tmp_path / "src.parquet")
    path = tmp_path / "loot.idx"
    lootlab.build_index(world, path)
    def positions_of(frame):
        return sorted(map(tuple, frame[["x", "y", "z", "item_id"]].to_numpy(np.int64).tolist()))

    positions = positions_of(world)
    rng = random.Random(1234)
    leftovers_seen = killed_with_temp = 0
    last_generation = 1
    for _ in range(20):
        leftover = temp_files(path)
        child = subprocess.Popen([PYTHON, SCRIPT, "churn-worker", str(tmp_path)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            line = child.stdout.readline().strip()
            assert line.startswith("ready"), line
            removed = json.loads(line[len("ready "):])
            assert removed == leftover                        # cleaned at the next start
            leftovers_seen += bool(removed)
            time.sleep(rng.uniform(0.02, 0.4))
            child.send_signal(signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
        assert child.returncode == -signal.SIGKILL
        killed_with_temp += bool(temp_files(path))
        # the published path always opens as a valid (checksummed) index
        with lootlab.open_index(path, verify=True, refresh_interval=None) as idx:
            assert idx.generation >= last_generation
            last_generation = idx.generation
        rows = index_rows(path)
        assert positions_of(rows) == positions         # only `value` changes by update
    assert last_generation > 1                                # builds did get published
    assert killed_with_temp == leftovers_seen or killed_with_temp == leftovers_seen + 1


def test_sigkill_inside_fsync_leaves_a_temp_file_that_the_next_start_cleans(tmp_path):
    world = small_world(3000)
    write_table(world, tmp_path / "src.parquet")
    path = tmp_path / "loot.idx"
    lootlab.build_index(world, path)
    before = fingerprint(path)
    child = subprocess.Popen([PYTHON, SCRIPT, "hang-in-fsync", str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "in-fsync"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    left = temp_files(path)
    assert len(left) == 1 and (tmp_path / left[0]).stat().st_size > 0
    assert fingerprint(path) == before
    worker = Rebuilder(tmp_path / "src.parquet", path)
    assert [p.name for p in worker.removed_temp_files] == left and temp_files(path) == []
    with lootlab.open_index(path, verify=True):
        pass


# -- the disk refuses the write ----------------------------------------------------------------

@pytest.fixture
def tiny_tmpfs(tmp_path):
    with mounts.tiny_tmpfs(tmp_path / "tiny") as mnt:
        yield mnt


def test_disk_full_fails_clearly_and_keeps_the_old_index(tmp_path, tiny_tmpfs):
    world = small_world(20000)
    src = tmp_path / "src.parquet"
    write_table(world.head(1000), src)
    path = tiny_tmpfs / "loot.idx"
    worker = Rebuilder(src, path)
    assert worker.run_once().outcome == "built"
    before = fingerprint(path)
    write_table(world, src)                          # ~650 KB index: does not fit
    res = worker.run_once()
    assert res.outcome == "failed"
    assert "No space left on device" in res.error and "untouched" in res.error
    assert fingerprint(path) == before and temp_files(path) == []
    assert len(lootlab.open_index(path, verify=True)) == 1000


def _cycle_in_child(directory, fsize_limit=0, preexec=None) -> dict:
    out = subprocess.run([PYTHON, SCRIPT, "one-cycle", str(directory), str(fsize_limit)],
                         capture_output=True, text=True, timeout=120, preexec_fn=preexec)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_file_too_large_rlimit_fsize_in_a_subprocess(tmp_path):
    world = small_world(20000)
    write_table(world.head(500), tmp_path / "src.parquet")
    path = tmp_path / "loot.idx"
    assert _cycle_in_child(tmp_path)["outcome"] == "built"
    before = fingerprint(path)
    write_table(world, tmp_path / "src.parquet")
    res = _cycle_in_child(tmp_path, fsize_limit=100_000)     # the new index is ~650 KB
    assert res["outcome"] == "failed" and "File too large" in res["error"]
    assert fingerprint(path) == before and temp_files(path) == []


def _drop_dac_override() -> None:
    """Runs in the child before exec: root without CAP_DAC_OVERRIDE obeys mode bits."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):                        # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_permission_denied_fails_clearly_and_keeps_the_old_index(tmp_path):
    world = small_world(800)
    write_table(world, tmp_path / "src.parquet")
    out = tmp_path / "out"
    out.mkdir()
    path = out / "loot.idx"
    lootlab.build_index(world.head(100), path)
    (tmp_path / "src.parquet").rename(out / "src.parquet")
    before = fingerprint(path)
    out.chmod(0o555)                          # no one may create files in out/
    try:
        preexec = _drop_dac_override if os.geteuid() == 0 else None
        res = _cycle_in_child(out, preexec=preexec)
    finally:
        out.chmod(0o755)
    assert res["outcome"] == "failed" and "Permission denied" in res["error"], res
    assert fingerprint(path) == before and temp_files(path) == []


def test_read_only_filesystem_fails_clearly(tmp_path):
    world = small_world(800)
    out = tmp_path / "out"
    out.mkdir()
    write_table(world, out / "src.parquet")
    path = out / "loot.idx"
    lootlab.build_index(world.head(100), path)
    before = fingerprint(path)
    with mounts.read_only(out):
        res = Rebuilder(out / "src.parquet", path).run_once()
    assert res.outcome == "failed" and "Read-only file system" in res.error
    assert fingerprint(path) == before
