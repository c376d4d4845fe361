"""The progress bar: a daemon thread that ticks a tqdm bar in seconds while a run goes.

It only reads the wall clock, never the senders' data, so it cannot change what they
measure (beyond a wake-up every 0.25 s); ``stop`` ends it when the run does.
"""

from __future__ import annotations

import threading
import time


def _progress_thread(total_s: float, enabled: bool,
                     stop: threading.Event) -> threading.Thread | None:
    if not enabled:
        return None
    from tqdm import tqdm

    def loop() -> None:
        with tqdm(total=round(total_s, 1), unit="s", desc="load", leave=False,
                  bar_format="{desc}: {bar} {n:.1f}/{total:.1f} s") as bar:
            t = time.monotonic()
            while not stop.wait(0.25):
                bar.n = round(min(total_s, time.monotonic() - t), 1)
                bar.refresh()
    th = threading.Thread(target=loop, daemon=True, name="loadgen-progress")
    th.start()
    return th

