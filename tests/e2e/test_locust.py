"""Locust master + two workers (real subprocesses, 127.0.0.1, headless, bounded) against
a loopback gRPC server: both workers must have sent requests, none may fail."""

from __future__ import annotations

import json
import os
import socket
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lootlab

LOCUSTFILE = Path(lootlab.__file__).parent / "locustfile.py"
LOCUST = Path(sys.executable).parent / "locust"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The master runs until both workers have been seen sending (a condition), not for a fixed
# few seconds: on a busy machine a worker's first request came after a 4 s run had ended.
# This wrapper locustfile adds one master-side listener that writes the running
# per-worker counts of lootlab's locustfile to a progress file.
WRAPPER = """
import json, os
from locust import events
from lootlab.locustfile import *  # noqa: F401,F403 - the user classes under test
from lootlab.locustfile import _PER_WORKER

@events.worker_report.add_listener
def _progress(client_id, data, **_):
    path = os.environ["LOOTLAB_LOCUST_PROGRESS"]
    with open(path + ".tmp", "w") as f:
        json.dump(dict(_PER_WORKER), f)
    os.replace(path + ".tmp", path)
"""
DEADLINE_S = 150


def _progress(path: Path) -> dict[str, int]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


@pytest.mark.slow
@pytest.mark.timeout(DEADLINE_S + 60)
def test_master_and_two_workers_both_send(tmp_path):
    from lootlab.paths import ensure_default_index
    from lootlab.remote.loopback import LoopbackServer

    if not LOCUST.exists():
        pytest.skip(f"locust is not installed next to {sys.executable}")
    ensure_default_index()        # the workers' workload needs it: build it once, up front
    report, progress = tmp_path / "locust.json", tmp_path / "progress.json"
    wrapper = tmp_path / "locustfile_progress.py"
    wrapper.write_text(WRAPPER)
    port = _free_port()
    with LoopbackServer(tls=True) as srv:
        env = {**os.environ, "LOOTLAB_TARGET": srv.target, "LOOTLAB_CA": str(srv.ca),
               "LOOTLAB_LOCUST_RATE": "20", "LOOTLAB_LOCUST_QUERIES": "256",
               "LOOTLAB_LOCUST_REPORT": str(report), "LOOTLAB_LOCUST_PROGRESS": str(progress)}
        common = [str(LOCUST), "-f", str(wrapper), "--loglevel", "WARNING"]
        master = subprocess.Popen(
            common + ["--master", "--headless", "--expect-workers", "2",
                      "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                      "-u", "4", "-r", "4", "-t", f"{DEADLINE_S}s", "--only-summary",
                      "--stop-timeout", "2", "GrpcTlsPooledUser"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        workers = [subprocess.Popen(
            common + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                      "GrpcTlsPooledUser"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True) for _ in range(2)]
        try:
            deadline = time.monotonic() + DEADLINE_S
            seen = {}
            while time.monotonic() < deadline and master.poll() is None:
                seen = _progress(progress)
                if len(seen) == 2 and min(seen.values()) >= 20:
                    break
                time.sleep(0.2)   # polling interval of the condition, not a wait for it
            master.send_signal(signal.SIGTERM)      # a graceful stop: the report is written
            out, _ = master.communicate(timeout=60)
            for w in workers:
                w.communicate(timeout=60)
        finally:
            for p in [master, *workers]:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    assert report.is_file(), f"master wrote no report; its output:\n{out}"
    data = json.loads(report.read_text())
    assert len(data["per_worker"]) == 2, (data, seen)
    assert all(n >= 20 for n in data["per_worker"].values()), data
    assert data["failures"] == 0, out
    assert data["requests"] == sum(data["per_worker"].values())
