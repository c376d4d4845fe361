"""A server in a child process that reports ready with one JSON line on stdout: reading
that line within a time limit, draining its stderr, stopping it, and ``ChildProcess``, the
lifecycle built on them.  Shared by ``LoopbackServer`` (the Python server), ``CppServer``
(the C++ one) and ``DelayProxy`` (the network-conditions proxy)."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import threading
import time
from typing import Any, Self

from ..errors import LootlabError, LootlabTimeout


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


class ChildProcess:
    """Start, stop, ``with`` and clean-up-when-collected for a child with a ready line.

    A subclass says what to run (``command()``, and ``child_env()`` / ``child_fds()`` when it
    needs them), names it (``what``, its error classes) and may hook ``after_start`` (runs
    once the child is ready; a failure there stops the child) and ``before_stop``.  ``info``
    is the child's ready line, parsed.
    """

    what = "child process"
    error: type[Exception] = LootlabError
    timed_out: type[Exception] = LootlabTimeout
    start_timeout = 60.0
    stop_timeout = 10.0
    proc: subprocess.Popen | None = None
    info: dict[str, Any] = {}        # replaced per instance by the ready line

    def command(self) -> list[str]:
        raise NotImplementedError

    def child_env(self) -> dict[str, str] | None:
        return None

    def child_fds(self) -> tuple[int, ...]:
        return ()

    def after_start(self) -> None:
        """Called once the child is ready."""

    def before_stop(self, timeout: float) -> None:
        """Called first by every ``stop``."""

    def start(self) -> Self:
        if self.proc is not None:
            return self
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=self.child_env(), close_fds=True,
                                     pass_fds=self.child_fds())
        try:
            self.info = wait_ready(self.proc, self.start_timeout, what=self.what,
                                   error=self.error, timed_out=self.timed_out)
            drain_stderr(self.proc, f"lootlab-{type(self).__name__}-stderr")
            self.after_start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM (the child's graceful stop), then kill if it lingers."""
        timeout = self.stop_timeout if timeout is None else timeout
        self.before_stop(timeout)
        proc, self.proc = self.proc, None
        if proc is not None:
            stop(proc, timeout)

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        try:                      # at interpreter exit anything may be gone
            self.stop(timeout=2)
        except Exception:  # noqa: BLE001
            pass

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


__all__ = ["ChildProcess", "drain_stderr", "stop", "wait_ready"]
