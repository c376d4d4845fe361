"""Progress of a profiling run, stage by stage, on stderr.

A profile runs fresh processes for tens of seconds (py-spy, memray, the workload); saying
nothing for that long looks like a hang.  ``Stages`` prints one whole line when a stage
starts and one when it ends (with its time), which reads well in a log or CI output; on a
terminal a tqdm bar also ticks the seconds in between (``disable=None``: tqdm itself turns
the bar off when stderr is not a TTY, so a log never gets ``\\r`` updates).  Runners take
``progress=None`` (silent: the library and notebooks stay quiet) or a ``Stages``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import IO


class Stages:
    """Numbered stage lines (``prog: [2/3] text ...``) and, on a TTY, a bar per stage."""

    def __init__(self, prog: str, total: int, *, file: IO[str] | None = None,
                 bar: bool | None = None) -> None:
        self.prog, self.total, self.done = prog, max(int(total), 1), 0
        self.file = file
        self.bar = bar      # None: a tqdm bar only if the stream is a terminal

    def _print(self, text: str) -> None:
        out = self.file or sys.stderr
        print(f"{self.prog}: {text}", file=out, flush=True)

    @contextmanager
    def stage(self, text: str, seconds: float | None = None) -> Iterator[None]:
        """Announce ``text``; ``seconds`` is the expected time, for the bar's length."""
        self.done += 1
        tag = f"[{min(self.done, self.total)}/{self.total}]"
        self._print(f"{tag} {text} ...")
        stop = threading.Event()
        ticker = self._ticker(text, seconds, stop)
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self._finish(stop, ticker)
            self._print(f"{tag} {text}: failed after {time.monotonic() - start:.1f} s")
            raise
        self._finish(stop, ticker)
        self._print(f"{tag} {text}: done in {time.monotonic() - start:.1f} s")

    @staticmethod
    def _finish(stop: threading.Event, ticker: threading.Thread | None) -> None:
        stop.set()
        if ticker is not None:
            ticker.join()

    def _ticker(self, text: str, seconds: float | None,
                stop: threading.Event) -> threading.Thread | None:
        out = self.file or sys.stderr
        if self.bar is False or (self.bar is None and not getattr(out, "isatty", lambda: False)()):
            return None
        from tqdm import tqdm

        total = round(seconds, 1) if seconds else None
        fmt = ("  {bar:30} {n:.0f}/{total:.0f} s" if total else "  {n:.0f} s elapsed")

        def loop() -> None:
            with tqdm(total=total, file=out, leave=False, disable=None if self.bar is None
                      else not self.bar, bar_format=fmt, dynamic_ncols=True) as bar:
                t0 = time.monotonic()
                while not stop.wait(0.25):
                    elapsed = time.monotonic() - t0
                    if total and elapsed > bar.total:
                        bar.total = round(elapsed, 1)
                    bar.n = round(elapsed, 1)
                    bar.refresh()
        th = threading.Thread(target=loop, daemon=True, name="profile-progress")
        th.start()
        return th


def stage(progress: Stages | None, text: str, seconds: float | None = None) -> AbstractContextManager:
    """``progress.stage(...)``, or nothing when there is no progress to report."""
    return progress.stage(text, seconds) if progress is not None else nullcontext()
