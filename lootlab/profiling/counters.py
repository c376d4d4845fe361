"""System counters per operation: what a variant's client costs the kernel, op by op.

``counters(variant)`` runs the workload process (through ``perfgate``, so only the measured
loop counts) under ``perf stat`` with software events: context switches, CPU migrations,
minor and major page faults, task-clock and system calls (the ``raw_syscalls:sys_enter``
tracepoint).  The process's own ``getrusage`` around the same loop splits context switches
into voluntary (the thread blocked: waiting on a socket, a futex, a pipe) and involuntary
(preempted).  Every count covers all threads of the client process (gRPC's too), not the
loopback server, and is divided by the workload's operation count.

Where perf is absent or not permitted (``perf_unavailable()``) the figures come from
``getrusage`` alone (``source == "rusage"``): context switches and page faults, no
migrations and no system calls.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ._run import ProfilerError, parse_summary
from .perf import gated_argv, perf_unavailable, run_under_perf
from .perfgate import OUT_ENV
from .stages import Stages, stage

EVENTS = {"context-switches": "context_switches", "cpu-migrations": "cpu_migrations",
          "minor-faults": "minor_faults", "major-faults": "major_faults",
          "task-clock": "task_clock_ms", "raw_syscalls:sys_enter": "syscalls"}
RUSAGE = {"ru_nvcsw": "voluntary_switches", "ru_nivcsw": "involuntary_switches",
          "ru_minflt": "minor_faults", "ru_majflt": "major_faults"}
PER_OP = ("context_switches", "voluntary_switches", "involuntary_switches", "cpu_migrations",
          "minor_faults", "major_faults", "syscalls", "task_clock_ms")


def parse_stat(text: str) -> dict[str, float]:
    """``perf stat -x,`` output -> {lootlab name: count}; an event perf could not count
    (``<not supported>``, ``<not counted>``) is left out."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) < 3 or line.startswith("#"):
            continue
        value, _unit, event = parts[0], parts[1], parts[2]
        name = EVENTS.get(event.split(":u")[0] if event not in EVENTS else event)
        if name is None:
            continue
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


@dataclass
class Counters:
    """One variant's counts over its measured loop, and the same per operation."""

    variant: str
    ops: int
    seconds: float
    source: str                           # "perf stat" or "rusage"
    counts: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict, repr=False)

    def per_op(self) -> dict[str, float]:
        """Each count divided by the ops (NaN for what the source cannot count)."""
        n = max(self.ops, 1)
        return {k: self.counts[k] / n if k in self.counts else math.nan for k in PER_OP}

    def row(self) -> dict[str, Any]:
        per = self.per_op()
        return {"variant": self.variant, "ops": self.ops,
                "ops_per_s": self.ops / self.seconds if self.seconds > 0 else math.nan,
                **{f"{k}_per_op": v for k, v in per.items()}, "source": self.source}


def _rusage_counts(path: Path) -> dict[str, float]:
    if not path.exists():
        raise ProfilerError("the workload wrote no rusage figures (was its loop reached?)")
    raw = json.loads(path.read_text())
    return {name: float(raw[key]) for key, name in RUSAGE.items() if key in raw}


def counters(variant: str = "mmap", *, duration: float | None = 3.0, queries: int | None = None,
             query_rate: float | None = None, index: str | Path | None = None,
             source: str = "auto", workdir: str | Path | None = None, network: Any = None,
             progress: Stages | None = None) -> Counters:
    """Software counters of ``variant``'s workload over its measured loop, per op.

    ``duration`` seconds (or ``queries`` ops, when given); ``source`` ``"auto"`` (perf when
    ``perf_unavailable()`` is None, else rusage), ``"perf"`` (raise where perf cannot run)
    or ``"rusage"``; ``network``, a ``lootlab.Network``, puts a remote variant behind the
    delaying proxy."""
    if source not in ("auto", "perf", "rusage"):
        raise ProfilerError(f"source must be 'auto', 'perf' or 'rusage', got {source!r}")
    if queries is not None:
        duration = None
    elif duration is None or not (math.isfinite(duration) and duration > 0):
        raise ProfilerError(f"duration must be a positive number of seconds, got {duration!r}")
    use_perf = source == "perf" or (source == "auto" and perf_unavailable() is None)
    argv = gated_argv(variant, duration=duration, queries=queries, rate=query_rate, index=index,
                      network=network)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="lootlab-counters-") as tmp:
        d = Path(tmp)
        gate_out, stat_out = d / "rusage.json", d / "stat.csv"
        env = {OUT_ENV: str(gate_out)}
        span = f"{duration:g} s" if duration else f"{queries} ops"
        with stage(progress, f"{'perf stat' if use_perf else 'rusage'}: counting the {variant} "
                             f"workload for {span}", (duration or 5) + 4):
            if use_perf:
                proc = run_under_perf(["stat", "-x,", "-o", str(stat_out),
                                       "-e", ",".join(EVENTS)], argv, env=env, directory=d,
                                      what=f"perf stat on the {variant} workload",
                                      timeout=(duration or 60) * 10 + 120)
                summary = parse_summary(proc.stdout)
                counts = parse_stat(stat_out.read_text())
            else:
                proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                                      timeout=(duration or 60) * 10 + 120,
                                      stdin=subprocess.DEVNULL, env=dict(os.environ, **env))
                if proc.returncode != 0:
                    tail = " | ".join(proc.stderr.strip().splitlines()[-4:])
                    raise ProfilerError(f"the {variant} workload failed (exit "
                                        f"{proc.returncode}): {tail or 'no output'}")
                summary = parse_summary(proc.stdout)
                counts = {}
            rusage = _rusage_counts(gate_out)
    if use_perf:   # perf's faults and switches are the same span; rusage splits the switches
        counts.update({k: v for k, v in rusage.items() if k not in counts})
    else:
        counts = rusage
        counts["context_switches"] = rusage.get("voluntary_switches", 0.0) + \
            rusage.get("involuntary_switches", 0.0)
    return Counters(variant, int(summary.get("ops", 0)), float(summary.get("seconds", 0.0)),
                    "perf stat" if use_perf else "rusage", counts, summary)


def counters_table(results: Iterable[Counters]) -> pd.DataFrame:
    """One row per variant: ops, ops/s, each counter per op, and the source."""
    return pd.DataFrame([c.row() for c in results])


def counters_of(variants: Iterable[str], **options: Any) -> pd.DataFrame:
    """``counters(v, **options)`` for each variant, as ``counters_table``."""
    return counters_table(counters(v, **options) for v in variants)


def process_counts(argv: list[str], *, pass_fds: Iterable[int] = (), timeout: float = 120,
                   stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen:
    """Start ``argv`` under ``perf stat`` (whole process, from exec to exit) with the same
    events; returns the ``Popen`` (``perf stat``'s output is its stderr).  For tests and
    ad-hoc measurements of processes that are not the workload."""
    from .perf import require_perf
    return subprocess.Popen([require_perf(), "stat", "-x,", "-e", ",".join(EVENTS), "--",
                             *argv], pass_fds=tuple(pass_fds), stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def describe(row: Mapping[str, Any]) -> str:
    """One sentence about a ``counters_table`` row."""
    return (f"{row['variant']}: {row['context_switches_per_op']:.2f} context switches per op "
            f"({row['voluntary_switches_per_op']:.2f} voluntary), "
            f"{row['minor_faults_per_op']:.3f} minor faults per op ({row['source']})")
