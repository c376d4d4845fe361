"""Launching the workload process (``python -m lootlab.workload``), alone or under a profiler."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import LootlabError


class ProfilerError(LootlabError):
    """A profiler or the workload under it failed, or the profiler is not installed."""


def tool(name: str) -> str:
    """The path of a console script installed beside this Python (py-spy, memray)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise ProfilerError(f"{name} is not installed: pip install {name} (into the Python "
                            f"that runs lootlab, {sys.executable})")
    return found


def workload_args(variant: str, *, queries: int | None = None, duration: float | None = None,
                  rate: float | None = None, index: str | os.PathLike[str] | None = None,
                  seed: int = 0, warmup: int | None = None, extra: Sequence[str] = (),
                  network: Any = None) -> list[str]:
    """``python -m lootlab.workload ...`` as an argv list.

    The variant is checked here, so a typo is named at once rather than as a profiler
    failure.  A remote variant on the default index is pointed at this process's embedded
    server (``lootlab.targets``), so every profiled run shares one server instead of each
    starting its own.  Under a non-null ``network`` (a ``lootlab.Network``, dict or RTT in
    ms) that server, or the ``--target`` in ``extra``, is reached through a delaying proxy
    this process owns (so it lives as long as the profiler's parent).
    """
    from ..remote.endpoint import Endpoint
    from ..targets import client_factory
    from ..variants import UnknownVariantError, get
    try:
        v = get(variant)
    except UnknownVariantError as exc:
        raise ProfilerError(str(exc)) from None
    extra = list(extra)
    argv = [sys.executable, "-m", "lootlab.workload", "--variant", variant, "--seed", str(seed)]
    if v.remote and "--target" in extra:
        at = extra.index("--target") + 1
        reached = client_factory(v, Endpoint(extra[at], tls=v.tls), network=network).endpoint
        extra[at] = reached.target
    elif v.remote and index is None:
        reached = client_factory(v, network=network).endpoint
        argv += ["--target", reached.target]
        if reached.ca:
            argv += ["--ca", reached.ca]
    elif v.remote and network is not None and not getattr(network, "is_null", False):
        raise ProfilerError("network= reaches the embedded server or a --target; a workload "
                            "on its own index starts its own server, which no proxy fronts")
    if queries is not None:
        argv += ["--queries", str(queries)]
    if duration is not None:
        argv += ["--duration", str(duration)]
    if rate is not None:
        argv += ["--rate", str(rate)]
    if index is not None:
        argv += ["--index", str(index)]
    if warmup is not None:
        argv += ["--warmup", str(warmup)]
    return argv + list(extra)


def parse_summary(stdout: str) -> dict[str, Any]:
    """The workload's JSON summary: the last stdout line that is a JSON object."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ProfilerError("the workload printed no JSON summary")


def run(argv: Sequence[str], *, what: str, timeout: float | None = 600) -> tuple[dict[str, Any], str]:
    """Run a command that ends in a workload; returns (summary, stderr). Raises with stderr."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-4:])
        raise ProfilerError(f"{what} failed (exit {proc.returncode}): {tail or 'no output'}")
    return parse_summary(proc.stdout), proc.stderr
