"""Real filesystem faults for tests: a read-only bind mount and a tiny tmpfs (as root).

Root writes through ``chmod``, so a read-only directory has to be a read-only mount; a full
disk is a tmpfs too small for the write.  Each skips the test when it cannot mount.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextmanager
def read_only(directory: Path) -> Iterator[Path]:
    """``directory`` (which exists) made read-only by a bind mount over itself, for the block."""
    if os.geteuid() != 0 or not _mount("--bind", str(directory), str(directory)):
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        assert _mount("-o", "remount,bind,ro", str(directory))
        yield directory
    finally:
        _umount(directory)


@contextmanager
def tiny_tmpfs(directory: Path, size: str = "192k") -> Iterator[Path]:
    """A ``size`` tmpfs mounted on ``directory`` (created): a real "No space left on device"."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                       str(directory)):
        pytest.skip("cannot mount a tmpfs here (needs root); ENOSPC is not simulated otherwise")
    try:
        yield directory
    finally:
        _umount(directory)
