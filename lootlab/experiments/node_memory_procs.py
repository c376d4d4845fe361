"""The memory-per-node experiment's processes: a pool of ``node_memory_worker`` children
driven over pipes, and the reading of their memory from ``/proc`` while they sit idle.

Reading N processes one after the other is "the same moment" because they are idle between
commands (blocked on a pipe): their mappings and pages do not change while they are read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

from .node_memory_sums import mapping_totals, rollup_sample


class WorkerError(RuntimeError):
    """A worker failed a command, died, or did not answer in time."""


def read_process(pid: int, index_paths: Iterable[str] = ()) -> dict[str, int]:
    """One process's ``smaps_rollup`` fields (+ Uss, Shared) and its index mappings' Size,
    Rss and Pss as ``index_size``/``index_rss``/``index_pss`` (bytes)."""
    sample = rollup_sample(Path(f"/proc/{pid}/smaps_rollup").read_text())
    paths = [str(Path(p).resolve()) for p in index_paths]
    m = mapping_totals(Path(f"/proc/{pid}/smaps").read_text(), paths) if paths else {}
    sample["index_size"] = m.get("Size", 0)
    sample["index_rss"] = m.get("Rss", 0)
    sample["index_pss"] = m.get("Pss", 0)
    return sample


class Worker:
    """One ``node_memory_worker`` child; ``send`` then ``reply``, or ``call`` for both."""

    def __init__(self, timeout: float = 120.0, cwd: str | Path | None = None,
                 module: str = "lootlab.experiments.node_memory_worker"):
        self.timeout = timeout
        self.started = time.perf_counter()
        self.ready: dict[str, Any] = {}
        self._err = tempfile.TemporaryFile("w+")  # noqa: SIM115  (a pipe nobody read could fill)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
            text=True, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.pid = self.proc.pid
        self._ready = False

    def wait_ready(self) -> None:
        if not self._ready:
            self.ready = self._read("start")
            self.ready["ready_s"] = time.perf_counter() - self.started
            self._ready = True

    def send(self, cmd: str, **args: Any) -> None:
        self.wait_ready()
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerError(f"worker {self.pid} is gone ({cmd}): {self._stderr()}") from exc

    def reply(self, cmd: str) -> dict[str, Any]:
        msg = self._read(cmd)
        if not msg.get("ok"):
            raise WorkerError(f"worker {self.pid} failed {cmd}: {msg.get('error')}")
        return msg

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        self.send(cmd, **args)
        return self.reply(cmd)

    def _read(self, what: str) -> dict[str, Any]:
        import selectors

        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(self.timeout):
                raise WorkerError(f"worker {self.pid} did not answer {what} within "
                                  f"{self.timeout:g} s")
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(f"worker {self.pid} exited during {what}: {self._stderr()}")
        return json.loads(line)

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        self._err.seek(0)
        return self._err.read().strip()[-400:] or f"exit code {self.proc.returncode}"

    def close(self) -> None:
        p = self.proc
        try:
            if p.stdin and not p.stdin.closed:
                p.stdin.write('{"cmd": "exit"}\n')
                p.stdin.close()
        except OSError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if p.stdout:
            p.stdout.close()
        self._err.close()


class Pool:
    """N workers; ``grow`` to N, ``broadcast`` a command to all at once, ``measure`` them."""

    def __init__(self, timeout: float = 120.0):
        self.timeout = timeout
        self.workers: list[Worker] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def grow(self, n: int, cmd: str | None = None, **args: Any) -> list[dict[str, Any]]:
        """Start workers until there are ``n``; the new ones run ``cmd`` (in parallel)."""
        new = [Worker(self.timeout) for _ in range(max(0, n - len(self.workers)))]
        self.workers += new
        for w in new:
            w.wait_ready()
        if cmd is None:
            return []
        return self._all(new, cmd, args)

    def broadcast(self, cmd: str, **args: Any) -> list[dict[str, Any]]:
        return self._all(self.workers, cmd, args)

    def _all(self, workers: list[Worker], cmd: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        for i, w in enumerate(workers):
            w.send(cmd, **{k: (v(i) if callable(v) else v) for k, v in args.items()})
        return [w.reply(cmd) for w in workers]

    def measure(self, index_paths: Iterable[str] = ()) -> list[dict[str, int]]:
        """Every worker's memory now (they are idle), with its pid."""
        paths = list(index_paths)
        return [{"pid": pid, **read_process(pid, paths)} for pid in self.pids]

    def close(self) -> None:
        for w in self.workers:
            w.close()
        self.workers = []


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` until true or raise ``WorkerError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise WorkerError(f"timed out waiting for {what}")
        time.sleep(0.02)


__all__ = ["Pool", "Worker", "WorkerError", "read_process", "wait_for"]
