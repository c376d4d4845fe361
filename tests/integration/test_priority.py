"""The senders' scheduling: raised where allowed (real-time, else the highest nice level),
put back after an inline run, never under a CPU limit, said in the result; a real-time
sender that runs flat out drops to normal weight before the kernel's throttling would
stall it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from _loadgen import QUERIES, Noop

from lootlab import loadgen
from lootlab.loadgen import priority
from lootlab.loadgen.clock import Clock

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def _policy() -> int:
    return os.sched_getscheduler(threading.get_native_id())


@pytest.mark.skipif(not ROOT, reason="raising a thread's priority needs root")
def test_root_gets_real_time_and_gives_it_back():
    before = _policy()
    raised = priority.raise_priority("auto")
    try:
        assert raised.policy == f"SCHED_FIFO {priority.REALTIME_PRIORITY}"
        assert _policy() == os.SCHED_FIFO
        started = []
        t = threading.Thread(target=lambda: started.append(_policy()))
        t.start()
        t.join()
        assert started == [os.SCHED_FIFO]          # threads started meanwhile inherit it
    finally:
        priority.restore(raised)
    assert _policy() == before


@pytest.mark.skipif(not (ROOT and shutil.which("setpriv")),
                    reason="needs root and setpriv to drop the right to raise priority")
def test_without_privilege_it_says_what_was_refused():
    """A process without CAP_SYS_NICE (dropped from its bounding set) gets neither policy,
    and the text says both refusals."""
    code = ("from lootlab.loadgen import priority;"
            "r = priority.raise_priority('auto'); print(r.text)")
    out = subprocess.run(["setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice",
                          sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("normal (real-time scheduling refused")
    assert "nice level refused" in out.stdout


def test_normal_changes_nothing_and_bad_modes_are_refused():
    assert priority.raise_priority("normal").policy == "normal"
    with pytest.raises(loadgen.LoadgenError, match="priority must be one of"):
        loadgen.run(Noop, loadgen.constant(100, 0.1), warmup=0, workload=QUERIES,
                    priority="urgent")


@pytest.mark.skipif(not ROOT, reason="raising a thread's priority needs root")
def test_an_inline_run_says_how_its_senders_ran_and_restores_the_caller():
    before = _policy()
    res = loadgen.run(Noop, loadgen.constant(500, 0.3), warmup=0, workload=QUERIES)
    assert _policy() == before
    assert res.scheduling.startswith(("SCHED_FIFO", "nice -20"))
    assert res.summary()["scheduling"] == res.scheduling
    assert "senders: " + res.scheduling in res.describe()
    plain = loadgen.run(Noop, loadgen.constant(500, 0.3), warmup=0, workload=QUERIES,
                        priority="normal")
    assert plain.scheduling == "normal"


def test_a_real_time_sender_running_flat_out_drops_to_normal_weight():
    """A sender that is always late never sleeps: past 80 % of a core over a window it is
    demoted (once), before real-time throttling could stall it for 50 ms."""
    calls = []
    clock = Clock(1, None, realtime=True, demote=lambda: calls.append(1))
    deadline = time.perf_counter_ns() + 2_000_000_000
    while not clock.demoted and time.perf_counter_ns() < deadline:
        clock.behind()
    assert clock.demoted == 1 and calls == [1]
    for _ in range(1000):
        clock.behind()
    assert calls == [1]


def test_a_real_time_clock_never_sends_early_and_learns_its_margin():
    clock = Clock(1, None, realtime=True)
    rng = np.random.default_rng(0)
    late = []
    due = time.perf_counter_ns()
    for gap in rng.integers(20_000, 400_000, 300):
        due += int(gap)
        clock.wait_until(due)
        late.append(time.perf_counter_ns() - due)
    assert min(late) >= 0
    assert 3_000 <= clock.margin_ns <= clock.spin_ns
