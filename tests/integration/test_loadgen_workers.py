"""The parent of spawned load workers notices a dead or failed worker at every stage
(start, run, report) and says why, instead of waiting forever.

Each case runs a real script in a subprocess with a timeout, because the failure being
guarded against is a hang."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# Clients importable by the spawned workers (the script's directory is on their sys.path).
CLIENTS = '''
import os, signal

class Noop:
    def near(self, x, y, z, r):
        return ()

def noop():
    return Noop()

class KilledMidRun:
    """Dies of SIGKILL (as an OOM kill would) after 20 requests."""
    n = 0
    def near(self, x, y, z, r):
        self.n += 1
        if self.n == 20:
            os.kill(os.getpid(), signal.SIGKILL)

def killed_mid_run():
    return KilledMidRun()

class ExitsOnClose(Noop):
    def close(self):
        os._exit(4)

def exits_on_close():
    return ExitsOnClose()
'''

# 65,536 queries (2 MiB pickled): more than a pipe holds, which is what hung the parent
RUN = '''
import numpy as np
from lootlab import loadgen
import clients
queries = np.zeros((65_536, 4), np.int64)
try:
    loadgen.run(clients.{factory}, loadgen.constant(200, {duration}), processes=2,
                workload=queries, warmup=0)
except loadgen.LoadgenError as exc:
    raise SystemExit("LoadgenError: " + str(exc))
print("finished")
'''


def _run_script(tmp_path: Path, body: str, *, timeout: float) -> tuple[subprocess.CompletedProcess,
                                                                       float]:
    (tmp_path / "clients.py").write_text(CLIENTS)
    script = tmp_path / "script.py"
    script.write_text(body)
    env = {**os.environ, "LOOTLAB_DATA": str(tmp_path / "data")}
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the script hung (no answer in {timeout:g} s); stderr:\n{exc.stderr}")
    return proc, time.monotonic() - started


def _guarded(factory: str, duration: float) -> str:
    run = RUN.format(factory=factory, duration=duration)
    return 'if __name__ == "__main__":\n' + textwrap.indent(run, "    ")


def test_unguarded_script_fails_fast_and_names_the_main_guard(tmp_path):
    proc, _ = _run_script(tmp_path, RUN.format(factory="noop", duration=1), timeout=120)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("LoadgenError: load worker process loadgen-worker-")
    assert "before it started" in last
    assert 'if __name__ == "__main__":' in last
    assert "finished" not in proc.stdout


def test_guarded_script_runs(tmp_path):
    proc, _ = _run_script(tmp_path, _guarded("noop", 0.3), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "finished"


def test_worker_killed_during_the_run_is_reported_without_waiting_for_the_schedule(tmp_path):
    # the schedule is 300 s long; the parent must not wait for it (or a deadline past it)
    proc, seconds = _run_script(tmp_path, _guarded("killed_mid_run", 300), timeout=120)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "was killed by SIGKILL before it reported its measurements" in last, last
    assert seconds < 120


def test_worker_dying_before_its_report_is_named(tmp_path):
    proc, _ = _run_script(tmp_path, _guarded("exits_on_close", 0.3), timeout=100)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "exited with code 4 before it reported its measurements" in last, last
