"""Ending a child process, once: wait for it to finish by itself, then ask, then insist.

Experiments and the load generator start worker processes and must never leave one behind,
also after an error; each had written this sequence again.
"""

from __future__ import annotations

from typing import Any


def end_process(proc: Any, *, grace: float = 5.0, stop_now: bool = False) -> None:
    """Reap ``proc`` (a ``multiprocessing`` process): wait up to ``grace`` seconds for it to
    exit (none with ``stop_now``, after a failure), then SIGTERM, then SIGKILL, 5 s each."""
    if stop_now and proc.is_alive():
        proc.terminate()
    proc.join(timeout=grace)
    for signal in (proc.terminate, proc.kill):
        if not proc.is_alive():
            return
        signal()
        proc.join(timeout=5)


__all__ = ["end_process"]
