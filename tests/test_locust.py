"""Locust master + two workers (real subprocesses, 127.0.0.1, headless, bounded) against
a loopback gRPC server: both workers must have sent requests, none may fail."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import lootlab

LOCUSTFILE = Path(lootlab.__file__).parent / "locustfile.py"
LOCUST = Path(sys.executable).parent / "locust"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_master_and_two_workers_both_send(tmp_path):
    from lootlab.remote.loopback import LoopbackServer

    if not LOCUST.exists():
        pytest.skip(f"locust is not installed next to {sys.executable}")
    report = tmp_path / "locust.json"
    port = _free_port()
    with LoopbackServer(tls=True) as srv:
        env = {**os.environ, "LOOTLAB_TARGET": srv.target, "LOOTLAB_CA": str(srv.ca),
               "LOOTLAB_LOCUST_RATE": "20", "LOOTLAB_LOCUST_QUERIES": "256",
               "LOOTLAB_LOCUST_REPORT": str(report)}
        common = [str(LOCUST), "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
        master = subprocess.Popen(
            common + ["--master", "--headless", "--expect-workers", "2",
                      "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                      "-u", "4", "-r", "4", "-t", "4s", "--only-summary",
                      "--stop-timeout", "2", "GrpcTlsPooledUser"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        workers = [subprocess.Popen(
            common + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                      "GrpcTlsPooledUser"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True) for _ in range(2)]
        try:
            out, _ = master.communicate(timeout=120)
            for w in workers:
                w.communicate(timeout=30)
        finally:
            for p in [master, *workers]:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    assert report.is_file(), f"master wrote no report; its output:\n{out}"
    data = json.loads(report.read_text())
    assert len(data["per_worker"]) == 2, data
    assert all(n > 0 for n in data["per_worker"].values()), data
    assert data["failures"] == 0, out
    assert data["requests"] == sum(data["per_worker"].values())
    assert data["requests"] >= 40        # 4 users x 20/s x 4 s = 320 offered; wide margin
