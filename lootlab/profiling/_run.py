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
    server (through the registry's resolver), so every profiled run shares one server
    instead of each starting its own.  Under a non-null ``network`` (a ``lootlab.Network``,
    dict or RTT in ms) that server, or the ``--target`` in ``extra``, is reached through a
    delaying proxy this process owns (so it lives as long as the profiler's parent).
    """
    from ..conditions.network import Network
    from ..variants import Endpoint, UnknownVariantError, get, resolve
    try:
        v = get(variant)
    except UnknownVariantError as exc:
        raise ProfilerError(str(exc)) from None
    net = Network.coerce(network)
    delayed = v.remote and net is not None and not net.is_null
    extra = list(extra)
    if delayed and "--target" in extra:
        from ..conditions.proxies import through
        at = extra.index("--target") + 1
        extra[at] = through(Endpoint(extra[at], tls=v.tls), net).target
    elif delayed and index is not None:
        raise ProfilerError("network= reaches the embedded server or a --target; a workload "
                            "on its own index starts its own server, which no proxy fronts")
    argv = [sys.executable, "-m", "lootlab.workload", "--variant", variant, "--seed", str(seed)]
    if v.remote and index is None and "--target" not in extra:
        endpoint = resolve(v, network=net).endpoint
        if endpoint is not None:
            argv += ["--target", endpoint.target]
            if endpoint.ca:
                argv += ["--ca", endpoint.ca]
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
