"""A server in a child process that reports ready with one JSON line on stdout: reading
that line within a time limit, draining its stderr, stopping it.  Shared by
``LoopbackServer`` (the Python server) and ``CppServer`` (the C++ one)."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import threading
import time
from typing import Any


def wait_ready(proc: subprocess.Popen, timeout: float, *, what: str,
               error: type[Exception], timed_out: type[Exception]) -> dict[str, Any]:
    """The child's ready line (JSON), read without blocking past ``timeout`` seconds.
    ``timed_out`` when it says nothing in time, ``error`` (with its last stderr line) when
    it exits first; ``what`` names the server in both messages."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    try:
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise timed_out(f"{what} did not report ready within {timeout:.0f} s")
            if not sel.select(timeout=left):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                proc.wait(timeout=5)
                err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                last = err.splitlines()[-1] if err else "(no output)"
                raise error(f"{what} exited with code {proc.returncode} before it was "
                            f"ready: {last}")
            line += chunk
    finally:
        sel.close()
    return json.loads(line.decode())


def drain_stderr(proc: subprocess.Popen, name: str) -> None:
    """Read the child's stderr in a daemon thread, so a chatty child never blocks on a
    full pipe."""
    def drain() -> None:
        if proc.stderr is None:
            return
        try:
            for _ in iter(lambda: proc.stderr.read(65536), b""):
                pass
        except (OSError, ValueError):
            pass
    threading.Thread(target=drain, daemon=True, name=name).start()


def stop(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM (the server's graceful stop), then kill if it lingers; close its pipes."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass


__all__ = ["drain_stderr", "stop", "wait_ready"]
