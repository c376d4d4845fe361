"""The rebuild worker: cycles, the update channel, the thread, status, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lootlab
from _rebuild import canon, index_rows, loopback_s3, s3, small_world  # noqa: F401
from lootlab.errors import InvalidRecordsError
from lootlab.rebuild import Rebuilder
from lootlab.tempfiles import clean_temp_files
from lootlab.updates import UpdateQueueFull, merge_updates, normalize_updates
from lootlab.records import FIELDS
from lootlab.tables import write_table


@pytest.fixture
def world():
    return small_world(1500, seed=3)


@pytest.fixture
def src(tmp_path, world):
    path = tmp_path / "src" / "world.parquet"
    write_table(world, path)
    return path


def spawn(x, y, z, **meta):
    row = {"x": x, "y": y, "z": z, "item_id": 9, "value": 1, "quantity": 1, "rarity": 0,
           "flags": 0, "tick": 0}
    row.update(meta)
    return row


def test_first_cycle_builds_then_unchanged_cycles_do_not(tmp_path, src, world):
    idx_path = tmp_path / "out" / "loot.idx"        # directory created on first publish
    rb = Rebuilder(src, idx_path, interval=60)
    first = rb.run_once()
    assert first.outcome == "built" and first.generation == 1 and first.records == len(world)
    assert canon(index_rows(idx_path)) == canon(world)
    ident = os.stat(idx_path)
    second = rb.run_once()
    assert second.outcome == "unchanged" and second.generation == 1
    after = os.stat(idx_path)
    assert (after.st_ino, after.st_mtime_ns) == (ident.st_ino, ident.st_mtime_ns)
    with lootlab.open_index(idx_path) as idx:
        assert idx.source_version == first.source_version == rb.status.source_version


def test_a_new_worker_on_an_up_to_date_index_does_not_rebuild(tmp_path, src):
    idx_path = tmp_path / "loot.idx"
    assert Rebuilder(src, idx_path).run_once().outcome == "built"
    again = Rebuilder(src, idx_path)
    assert again.run_once().outcome == "unchanged"
    assert again.status.generation == 1


def test_source_change_builds_next_generation(tmp_path, src, world):
    idx_path = tmp_path / "loot.idx"
    rb = Rebuilder(src, idx_path)
    rb.run_once()
    write_table(world.head(100), src)
    res = rb.run_once()
    assert res.outcome == "built" and res.generation == 2
    assert canon(index_rows(idx_path)) == canon(world.head(100))


def test_updates_spawn_change_remove_later_wins(tmp_path, src, world):
    idx_path = tmp_path / "loot.idx"
    rb = Rebuilder(src, idx_path)
    rb.run_once()
    a, b = world.iloc[0], world.iloc[1]
    rb.apply([spawn(5, 5, 5, value=1), spawn(5, 5, 5, value=2)])           # later wins
    rb.apply(pd.DataFrame([{**spawn(int(a.x), int(a.y), int(a.z)), "removed": True}]))
    rb.apply([spawn(int(b.x), int(b.y), int(b.z), value=77)])
    rb.apply([{"x": 6, "y": 6, "z": 6, "removed": True}])                   # removing nothing
    assert rb.pending_updates == 5
    res = rb.run_once()
    assert res.outcome == "built" and res.updates_applied == 5 and rb.pending_updates == 0
    with lootlab.open_index(idx_path) as idx:
        assert idx.get(5, 5, 5).value == 2
        assert idx.get(int(a.x), int(a.y), int(a.z)) is None
        assert idx.get(int(b.x), int(b.y), int(b.z)).value == 77
        assert idx.get(6, 6, 6) is None
        assert len(idx) == len(world)       # +1 spawned, -1 removed


def test_updates_stay_on_top_of_a_new_source_version(tmp_path, src, world):
    idx_path = tmp_path / "loot.idx"
    rb = Rebuilder(src, idx_path)
    rb.apply([spawn(5, 5, 5, value=3)])
    rb.run_once()
    write_table(world.head(10), src)
    assert rb.run_once().outcome == "built"
    with lootlab.open_index(idx_path) as idx:
        assert idx.get(5, 5, 5).value == 3 and len(idx) == 11


def test_bad_updates_are_refused_at_apply(tmp_path, src):
    rb = Rebuilder(src, tmp_path / "loot.idx")
    with pytest.raises(InvalidRecordsError, match="row 1, field 'y'"):
        rb.apply([spawn(1, 1, 1), spawn(1, 5000, 1)])
    with pytest.raises(InvalidRecordsError, match="missing column"):
        rb.apply([{"x": 1, "y": 1, "z": 1, "value": 3}])
    assert rb.pending_updates == 0
    assert rb.apply([]) == 0


def test_full_channel_blocks_or_refuses_never_drops(tmp_path, src):
    idx_path = tmp_path / "loot.idx"
    rb = Rebuilder(src, idx_path, max_pending=2)
    rb.apply([spawn(1, 1, 1)])
    rb.apply([spawn(2, 2, 2)])
    with pytest.raises(UpdateQueueFull, match="not queued"):
        rb.apply([spawn(3, 3, 3)], block=False)
    t0 = time.monotonic()
    with pytest.raises(UpdateQueueFull):
        rb.apply([spawn(3, 3, 3)], timeout=0.2)
    assert time.monotonic() - t0 >= 0.2
    rb.run_once()                                    # drains the channel
    rb.apply([spawn(3, 3, 3)], block=False)          # room again
    rb.run_once()
    with lootlab.open_index(idx_path) as idx:
        assert all(idx.get(i, i, i) is not None for i in (1, 2, 3))


def test_blocked_apply_proceeds_once_a_cycle_drains(tmp_path, src):
    rb = Rebuilder(src, tmp_path / "loot.idx", interval=0.05, max_pending=1)
    rb.apply([spawn(1, 1, 1)])
    with rb:
        rb.apply([spawn(2, 2, 2)], timeout=10)       # waits for the worker to take one
        rb.wait(lambda s: s.pending_updates == 0 and s.builds >= 1)
    with lootlab.open_index(tmp_path / "loot.idx") as idx:
        idx.refresh()
        assert idx.get(1, 1, 1) is not None and idx.get(2, 2, 2) is not None


def test_updates_taken_survive_a_failed_cycle(tmp_path, src, world):
    idx_path = tmp_path / "loot.idx"
    rb = Rebuilder(src, idx_path)
    rb.run_once()
    bad = world.astype({"rarity": "int64"})
    bad.loc[7, "rarity"] = 999
    write_table(bad, src)                            # the next cycle must fail
    rb.apply([spawn(4, 4, 4, value=44)])
    res = rb.run_once()
    assert res.outcome == "failed"
    assert "row 7, field 'rarity'" in res.error and str(src) in res.error
    assert rb.pending_updates == 1 and rb.status.consecutive_failures == 1
    write_table(world, src)
    assert rb.run_once().outcome == "built"
    with lootlab.open_index(idx_path) as idx:
        assert idx.get(4, 4, 4).value == 44


updates_strategy = st.lists(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 3),
                       st.integers(0, 1000), st.booleans()), min_size=1, max_size=6),
    min_size=1, max_size=5)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=updates_strategy, cycles_between=st.lists(st.booleans(), min_size=5, max_size=5))
def test_update_merge_matches_a_dict_model(tmp_path_factory, batches, cycles_between):
    """Random spawn/change/remove batches, with cycles at random points, end in exactly
    the state a dict keyed by position says (source rows, then updates in order)."""
    d = tmp_path_factory.mktemp("model")
    base = pd.DataFrame([spawn(x, y, z, value=v) for x in range(0, 4, 2) for y in range(2)
                         for z in range(0, 4, 2) for v in [x + y + z]])
    write_table(base, d / "src.parquet")
    rb = Rebuilder(d / "src.parquet", d / "loot.idx")
    model = {(r.x, r.y, r.z): r.value for r in base.itertuples()}
    for batch, cycle in zip(batches, cycles_between):
        rows = [{**spawn(x, y, z, value=v), "removed": gone} for x, y, z, v, gone in batch]
        rb.apply(rows)
        for x, y, z, v, gone in batch:
            if gone:
                model.pop((x, y, z), None)
            else:
                model[(x, y, z)] = v
        if cycle:
            assert rb.run_once().outcome in ("built", "unchanged")
    rb.run_once()
    got = index_rows(d / "loot.idx")
    assert {(r.x, r.y, r.z): r.value for r in got.itertuples()} == model


def test_merge_updates_is_pure(world):
    upd = normalize_updates([spawn(1, 1, 1)])
    merged, consolidated = merge_updates(world, [upd])
    assert len(merged) == len(world) + 1 and len(consolidated) == 1
    assert list(merged.columns) == FIELDS
    assert len(world) == 1500                         # input untouched


def test_thread_start_stop_status_and_trigger(tmp_path, src, world):
    idx_path = tmp_path / "loot.idx"
    seen = []
    with Rebuilder(src, idx_path, interval=30, on_cycle=seen.append) as rb:
        st1 = rb.wait(lambda s: s.builds == 1)
        assert st1.running and st1.generation == 1 and st1.last_error is None
        assert st1.staleness < 30 and st1.build_seconds is not None
        assert 0 < rb.wait(lambda s: s.next_attempt_in is not None).next_attempt_in <= 30
        rb.apply([spawn(9, 9, 9)])
        rb.trigger()                                   # no waiting out the 30 s interval
        rb.wait(lambda s: s.builds == 2)
    assert not rb.running and not rb.status.running
    assert [r.outcome for r in seen] == ["built", "built"]
    d = rb.status.as_dict()
    assert d["generation"] == 2 and d["staleness"] >= 0


def test_backoff_doubles_up_to_the_cap(tmp_path):
    rb = Rebuilder(tmp_path / "missing.parquet", tmp_path / "loot.idx", interval=60,
                   backoff=1, max_backoff=8)
    assert rb.next_delay() == 60
    delays = []
    for _ in range(6):
        assert rb.run_once().outcome == "failed"
        delays.append(rb.next_delay())
    assert all(0.9 * e <= x <= 1.1 * e for x, e in zip(delays, [1, 2, 4, 8, 8, 8]))
    st_ = rb.status
    assert st_.failures == 6 and st_.consecutive_failures == 6 and "missing.parquet" in st_.last_error
    assert st_.staleness == float("inf")


def test_temp_files_of_dead_builds_are_cleaned_at_start(tmp_path, src):
    idx_path = tmp_path / "loot.idx"
    idx_path.parent.mkdir(exist_ok=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f".loot.idx.tmp-{dead}-abcd1234"
        busy = tmp_path / f".loot.idx.tmp-{live.pid}-abcd1234"
        other = tmp_path / ".other.idx.tmp-1-x"
        for p in (stale, busy, other):
            p.write_bytes(b"half an index")
        rb = Rebuilder(src, idx_path)
        assert rb.removed_temp_files == [stale]
        assert not stale.exists() and busy.exists() and other.exists()
    finally:
        live.kill()
        live.wait()
    assert clean_temp_files(idx_path) == [busy]        # its writer is gone now


def test_cli_rebuild_local_dir_once_and_loop(tmp_path, world):
    from lootlab.cli import main

    (tmp_path / "src").mkdir()
    write_table(world, tmp_path / "src" / "a.parquet")
    runner = CliRunner()
    idx = tmp_path / "out" / "loot.idx"
    res = runner.invoke(main, ["rebuild", "--source", str(tmp_path / "src"), "--index", str(idx),
                               "--once"])
    assert res.exit_code == 0, res.output
    assert "built generation 1" in res.output and f"{len(world):,} records" in res.output
    res = runner.invoke(main, ["rebuild", "--source", str(tmp_path / "src"), "--index", str(idx),
                               "--interval", "0.1", "--duration", "0.35"])
    assert res.exit_code == 0, res.output
    assert "unchanged (generation 1" in res.output
    res = runner.invoke(main, ["rebuild", "--source", str(tmp_path / "nope"), "--index", str(idx),
                               "--once"])
    assert res.exit_code == 1
    assert "nope: no such file" in res.output and "Traceback" not in res.output


def test_cli_rebuild_against_s3_as_a_new_user(tmp_path, s3, world):
    """A subprocess, credentials and endpoint from the usual AWS variables / --endpoint-url."""
    s3.put_table(world, "loot", "cli/world.parquet")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "lootlab-local",
           "AWS_SECRET_ACCESS_KEY": "lootlab-local", "LOOTLAB_DATA": str(tmp_path / "data")}
    idx = tmp_path / "loot.idx"
    cmd = [str(Path(sys.executable).with_name("lootlab")), "rebuild", "--source", "s3://loot/cli/world.parquet",
           "--endpoint-url", s3.endpoint_url, "--index", str(idx)]
    out = subprocess.run(cmd + ["--once"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "built generation 1" in out.stdout
    with lootlab.open_index(idx) as index:
        assert len(index) == len(world) and index.source_version
    bad = subprocess.run(cmd[:-4] + ["--source", "s3://loot/cli/missing.parquet", "--endpoint-url",
                                     s3.endpoint_url, "--index", str(idx), "--once"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "NoSuchKey" in bad.stderr and "Traceback" not in bad.stderr


def test_a_failing_on_cycle_callback_does_not_stop_the_worker(tmp_path, src):
    def boom(result):
        raise RuntimeError("callback broke")

    with Rebuilder(src, tmp_path / "loot.idx", interval=0.02, on_cycle=boom) as rb:
        st_ = rb.wait(lambda s: s.cycles >= 3)
    assert st_.builds == 1 and st_.failures == 0
    assert isinstance(rb.callback_error, RuntimeError)


def test_cli_rebuild_with_embedded_defaults(tmp_path, monkeypatch):
    """No options: the default world and index are created on first use, then kept."""
    from lootlab.cli import main
    from lootlab.paths import default_index_path

    monkeypatch.setenv("LOOTLAB_DATA", str(tmp_path / "data"))
    res = CliRunner().invoke(main, ["rebuild", "--once"])
    assert res.exit_code == 0, res.output
    # the index made on first use carries no source version: the worker stamps one
    assert "built generation 2: 350,000 records" in res.output
    res = CliRunner().invoke(main, ["rebuild", "--once"])
    assert res.exit_code == 0 and "unchanged (generation 2" in res.output, res.output
    assert default_index_path().exists()


def test_s3local_main_serves_until_stopped(tmp_path, world):
    """``python -m lootlab.s3local --put TABLE s3://...`` as the docs tell a person to run it."""
    import signal

    write_table(world, tmp_path / "w.parquet")
    proc = subprocess.Popen([sys.executable, "-m", "lootlab.s3local", "--put",
                             str(tmp_path / "w.parquet"), "s3://loot/w.parquet"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("uploaded")
        endpoint = proc.stdout.readline().split()[3].rstrip(";")
        from lootlab.sources import S3Source
        got = S3Source("loot", "w.parquet", endpoint, aws_access_key_id="lootlab-local",
                       aws_secret_access_key="lootlab-local").fetch()
        assert canon(got.table) == canon(world)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
