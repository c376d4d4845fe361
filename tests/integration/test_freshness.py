"""The freshness experiment for real: a rebuild worker, reader processes and the remote
service, measured against a delay known in advance.

The source holds every new table ``DELAY`` seconds before the worker gets it, so no
reader can serve a change sooner than ``DELAY`` after it was made, and every reader
should serve it within ``DELAY`` + one interval + a build + a refresh: the bound below
leaves generous slack for a busy 2-core machine.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from lootlab.experiments.freshness import freshness

DELAY = 1.5          # seconds the source holds each new table
INTERVAL = 1.0       # the worker's poll interval
SLACK = 6.0          # build, refresh, polls and a busy machine's scheduling, generously


@pytest.fixture(scope="module")
def delayed(tmp_path_factory):
    work = tmp_path_factory.mktemp("freshness-delay")
    run = freshness(interval=INTERVAL, changes=3, source="local", readers=2, records=20_000,
                    remote=True, source_delay=DELAY, workdir=work)
    return run, work


def test_staleness_is_at_least_the_injected_delay_and_at_most_one_interval_more(delayed):
    run, _ = delayed
    rows = run.rows
    assert rows["seen"].all(), rows[~rows["seen"]]
    assert run.meta["changes_timed_out"] == 0
    stale = rows["staleness_s"].to_numpy()
    assert (stale >= DELAY).all(), rows[["change", "reader", "staleness_s"]]
    assert (stale <= DELAY + INTERVAL + SLACK).all(), rows[["change", "reader", "staleness_s"]]
    # the delay shows where it was put: in the fetch of the poll that found each change
    assert (rows["fetch_s"] >= DELAY).all()
    parts = rows[["upload_s", "poll_wait_s", "fetch_s", "build_publish_s", "refresh_s"]]
    assert np.allclose(parts.sum(axis=1), rows["staleness_s"])


def test_every_reader_and_the_remote_service_serve_each_change(delayed):
    run, _ = delayed
    rows = run.rows
    assert sorted(rows["kind"].unique()) == ["every_reader", "reader", "remote"]
    for change, g in rows.groupby("change"):
        readers = g[g["kind"] == "reader"]
        every = g[g["kind"] == "every_reader"]
        assert len(readers) == 2 and len(every) == 1 and (g["kind"] == "remote").sum() == 1
        assert every["seen_at"].iloc[0] == readers["seen_at"].max()
        # each change arrives in a generation of its own, one after another
        assert g["generation"].nunique() == 1
    gens = rows.groupby("change")["generation"].first().tolist()
    assert gens == sorted(gens) and len(set(gens)) == len(gens)
    # nothing is served before the worker published it (a reader may map the new file
    # between the rename and the worker's stamp just after: a few ms at most)
    assert (rows["refresh_s"] > -0.5).all()


def _own_children() -> list[mp.process.BaseProcess]:
    """This process's live children, less the session's background quick report (the test
    session starts it; it is not the experiment's)."""
    return [p for p in mp.active_children() if p.name != "quick-report"]


def test_the_run_leaves_no_process_or_file_behind(delayed):
    _, work = delayed
    assert _own_children() == []
    assert list(work.iterdir()) == []


def test_s3_through_the_loopback_server(tmp_path):
    run = freshness(interval=INTERVAL, changes=2, source="s3", readers=1, records=20_000,
                    remote=False, workdir=tmp_path)
    rows = run.rows
    assert run.meta["changes_timed_out"] == 0 and rows["seen"].all()
    assert set(rows["kind"]) == {"reader", "every_reader"}
    assert (rows["upload_s"] > 0).all()          # an S3 PUT, acknowledged
    assert (rows["poll_wait_s"] > -0.5).all()
    assert (rows["staleness_s"] <= INTERVAL + SLACK).all()
    built = run.cycles[run.cycles["outcome"] == "built"]
    assert sorted(i for c in built["new_changes"] for i in c) == [0, 1]
    assert run.meta["worker"]["failures"] == 0


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_an_interrupt_mid_run_stops_every_process_and_server(tmp_path):
    def interrupt(message: str) -> None:
        if message.startswith("change 1/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        freshness(interval=INTERVAL, changes=3, source="local", readers=2, records=5_000,
                  remote=True, workdir=tmp_path, progress=interrupt)
    assert _own_children() == []
    assert _processes_mentioning(str(tmp_path)) == []     # the server's --index was in it
    assert list(tmp_path.iterdir()) == []
