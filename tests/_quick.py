"""The quick report, measured in a child process while the other tests run (``conftest``).

A process, not a thread: exporting pages holds the GIL for seconds, and the tests running
meanwhile time things in this process."""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


def measure(out: str, conn: Connection) -> None:
    """Build the quick report into ``out``; send back (report, messages) or the error.

    Its output, and its kernels' and servers' (they inherit the descriptors), goes to
    ``out/measure.log``: written while other tests run, it would cut into their lines."""
    import os

    log = os.open(Path(out) / "measure.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    try:
        from lootlab.report import build_report

        messages: list[str] = []
        report = build_report("quick", Path(out), progress=messages.append)
        conn.send(("ok", report, messages))
    except BaseException as exc:  # noqa: BLE001 (sent to the parent, raised there)
        conn.send(("error", repr(exc), []))
    finally:
        conn.close()


class QuickReport:
    """A quick report being measured in a child process; ``result()`` waits for it."""

    def __init__(self, out: Path) -> None:
        self.out = out
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=measure, args=(str(out), child), name="quick-report",
                                 daemon=True)
        self._proc.start()
        child.close()
        self._got: tuple[str, Any, list[str]] | None = None

    def result(self, timeout: float) -> Any:
        """The ``Report`` (with ``messages``); raises if it failed or took longer."""
        if self._got is None:
            if not self._conn.poll(timeout):
                self._proc.kill()
                raise TimeoutError(f"the quick report did not finish within {timeout:g} s")
            self._got = self._conn.recv()
            self._proc.join(30)
        status, report, messages = self._got
        if status != "ok":
            raise RuntimeError(f"the quick report failed: {report} (its output: "
                               f"{self.out / 'measure.log'})")
        report.messages = messages
        return report
