"""The progress bar: a daemon thread that ticks a tqdm bar in seconds while a run goes.

It only reads the wall clock, never the senders' data, so it cannot change what they
measure (beyond a wake-up every 0.25 s); ``stop`` ends it when the run does.  Where stderr
is no terminal (a log, a pipe, CI) a redrawn bar would leave ``\\r`` frames in the file, so
there it writes a whole line every ``LINE_EVERY`` seconds instead: how far, and how long left.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

#: Seconds between the plain lines written where stderr is no terminal.
LINE_EVERY = 10.0


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):    # no isatty, or closed
        return False


def _lines(total_s: float, stop: threading.Event, stream: TextIO) -> None:
    t = time.monotonic()
    while not stop.wait(LINE_EVERY):
        done = min(total_s, time.monotonic() - t)
        stream.write(f"load: {done:.0f} s of {total_s:.0f} s, about "
                     f"{max(0.0, total_s - done):.0f} s left\n")
        stream.flush()


def _progress_thread(total_s: float, enabled: bool, stop: threading.Event,
                     stream: TextIO | None = None) -> threading.Thread | None:
    if not enabled:
        return None
    stream = stream or sys.stderr
    if not _is_terminal(stream):
        th = threading.Thread(target=_lines, args=(total_s, stop, stream), daemon=True,
                              name="loadgen-progress")
        th.start()
        return th
    from tqdm import tqdm

    def loop() -> None:
        with tqdm(total=round(total_s, 1), unit="s", desc="load", leave=False, file=stream,
                  bar_format="{desc}: {bar} {n:.1f}/{total:.1f} s") as bar:
            t = time.monotonic()
            while not stop.wait(0.25):
                bar.n = round(min(total_s, time.monotonic() - t), 1)
                bar.refresh()
    th = threading.Thread(target=loop, daemon=True, name="loadgen-progress")
    th.start()
    return th
