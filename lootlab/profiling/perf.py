"""Kernel-inclusive flame graphs with ``perf record``: the same workload process as
``flamegraph()``, seen from below (native and kernel frames), where py-spy sees it from above
(Python and native frames, never the kernel).

``perf record -e cpu-clock -F HZ --call-graph dwarf --delay=-1 --control fifo:...`` runs the
workload through ``lootlab.profiling.perfgate``, which switches perf's events on only inside
the measured loop (perf cannot see Python names to cut the profile afterwards).  Samples are
folded by ``perfscript`` into the stacks ``FlameProfile`` holds, so the frame table, the
buckets and the interactive SVG work unchanged; kernel frames are ``name [k]``, drawn in blue.

Why ``--call-graph dwarf``: CPython 3.11, numpy and lootlab's C kernel are built without frame
pointers, so ``-g`` (frame pointers) yields 2-4 frames of garbage per sample; DWARF unwinding
(an 8 KB copy of the user stack per sample, unwound afterwards) gives whole stacks, at about
8 KB of perf data per sample and no measurable slowdown of the workload at the default rate.
Kernel frames come from the kernel's own unwinder either way.  ``software cpu-clock`` because
this machine exposes no hardware counters; it samples CPU time only (a sleeping thread is not
sampled), so waiting shows as the kernel work around it, not as wait time.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._run import ProfilerError, parse_summary, workload_args
from .categorize import COPY_FUNCTION, COPY_PARTS, copy_parts
from .flame import PerfProfile
from .perfgate import CTL_ENV
from .perfscript import parse_script
from .stages import Stages, stage

PERF_ENV = "LOOTLAB_PERF"           # the perf binary to use (default: perf on PATH)
DEFAULT_HZ = 499                    # samples per second per CPU (odd: no lockstep with timers)
STARTUP_S = 4.0
SCRIPT_FIELDS = "comm,tid,ip,sym,dso"


def perf_binary() -> str:
    return os.environ.get(PERF_ENV) or "perf"


@functools.cache
def _probe(binary: str) -> str | None:
    path = shutil.which(binary)
    if path is None:
        return (f"perf is not installed ({binary!r} not found): apt-get install linux-perf "
                f"(Debian), linux-tools-$(uname -r) (Ubuntu)")
    try:
        proc = subprocess.run([path, "stat", "-x,", "-e", "cpu-clock", "--", "true"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"perf cannot run ({path}): {exc}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        paranoid = _read("/proc/sys/kernel/perf_event_paranoid")
        return (f"perf is not permitted here ({path} exit {proc.returncode}: {last.strip()}; "
                f"kernel.perf_event_paranoid={paranoid}: run as root or lower it)")
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "?"


def perf_unavailable() -> str | None:
    """``None`` when perf can count and sample this user's processes, else one line saying why
    (no binary, or not permitted by ``kernel.perf_event_paranoid``).  ``LOOTLAB_PERF`` names
    another binary.  Probed once per binary (a ``perf stat`` of ``true``)."""
    return _probe(perf_binary())


def require_perf() -> str:
    """The perf binary's path, or ``ProfilerError`` with ``perf_unavailable()``'s line."""
    why = perf_unavailable()
    if why:
        raise ProfilerError(why)
    return shutil.which(perf_binary()) or perf_binary()


def gated_argv(variant: str, **workload: object) -> list[str]:
    """``workload_args(...)`` run through ``perfgate`` instead of ``lootlab.workload``."""
    argv = workload_args(variant, **workload)   # type: ignore[arg-type]
    i = argv.index("lootlab.workload")
    return argv[:i] + ["lootlab.profiling.perfgate"] + argv[i + 1:]


def fifos(directory: Path) -> tuple[Path, Path]:
    ctl, ack = directory / "perf-ctl.fifo", directory / "perf-ack.fifo"
    for f in (ctl, ack):
        os.mkfifo(f)
    return ctl, ack


def run_under_perf(perf_args: list[str], argv: list[str], *, what: str, timeout: float,
                   env: dict[str, str] | None = None, gated: bool = True,
                   directory: Path) -> subprocess.CompletedProcess:
    """``perf <perf_args> [--delay=-1 --control ...] -- argv``; raises with perf's stderr."""
    full = [require_perf(), *perf_args]
    child_env = dict(os.environ, **(env or {}))
    if gated:
        ctl, ack = fifos(directory)
        full += ["--delay=-1", f"--control=fifo:{ctl},{ack}"]
        child_env[CTL_ENV] = f"{ctl},{ack}"
    proc = subprocess.run(full + ["--", *argv], capture_output=True, text=True, timeout=timeout,
                          check=False, stdin=subprocess.DEVNULL, env=child_env)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-4:])
        raise ProfilerError(f"{what} failed (exit {proc.returncode}): {tail or 'no output'}")
    return proc


def record(argv: list[str], *, frequency: int = DEFAULT_HZ, call_graph: str = "dwarf",
           gated: bool = True, timeout: float = 600, inline: bool = False,
           workdir: str | Path | None = None, what: str = "perf record",
           env: dict[str, str] | None = None) -> tuple[dict[tuple[str, ...], int], str]:
    """Sample ``argv`` (and its threads and children) with ``perf record -e cpu-clock``;
    returns (folded stacks, the command's stdout).  ``gated``: events start off and the
    child switches them on through ``perfgate``'s FIFO (its argv must run perfgate).
    ``env``: variables added to the child's environment."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix="lootlab-perf-") as tmp:
        data = Path(tmp) / "perf.data"
        args = ["record", "-q", "-e", "cpu-clock", "-F", str(int(frequency)),
                f"--call-graph={call_graph}", "-o", str(data)]
        proc = run_under_perf(args, argv, what=what, timeout=timeout, gated=gated,
                              directory=Path(tmp), env=env)
        script = [require_perf(), "script", "-i", str(data), "-F", SCRIPT_FIELDS]
        if not inline:
            script.append("--no-inline")
        out = subprocess.run(script, capture_output=True, text=True, timeout=timeout,
                             check=False)
        if out.returncode != 0:
            raise ProfilerError(f"perf script failed: {out.stderr.strip()[-300:]}")
        return parse_script(out.stdout), proc.stdout


def kernels_env(kernels: str | None) -> dict[str, str]:
    """The workload's environment for the C kernel build ``kernels`` (``None``: inherited).
    Raises ``ProfilerError`` for an unknown or unbuilt build, before any process starts."""
    if kernels is None:
        return {}
    import importlib.util

    from ..index import KERNEL_BUILDS, KERNELS_ENV
    if kernels not in KERNEL_BUILDS:
        raise ProfilerError(f"kernels must be one of {', '.join(KERNEL_BUILDS)}, "
                            f"got {kernels!r}")
    module = f"lootlab.{KERNEL_BUILDS[kernels]}"
    if importlib.util.find_spec(module) is None:
        raise ProfilerError(f"kernels={kernels!r}: {module} is not built; run "
                            f"`python setup.py build_ext --inplace` (or pip install -e .)")
    return {KERNELS_ENV: kernels}


def perf_flamegraph(variant: str = "mmap", *, duration: float = 5.0, frequency: int = DEFAULT_HZ,
                    call_graph: str = "dwarf", query_rate: float | None = None,
                    index: str | Path | None = None, spin: bool = False, inline: bool = False,
                    kernels: str | None = None, workdir: str | Path | None = None,
                    network: Any = None, progress: Stages | None = None) -> PerfProfile:
    """Sample ``variant``'s overlay workload with perf for ``duration`` seconds (the
    measured loop only, every thread, kernel included).  ``frequency`` is samples per second;
    ``call_graph`` ``"dwarf"`` (default; see the module doc) or ``"fp"``; ``inline=True``
    adds inlined functions (``perf script`` is then several times slower).  ``kernels``
    picks the C kernel build the workload loads (``"copycall"``: the copy of each hit is a
    frame of its own, ``lootlab_copy_record``; ``None``: as ``LOOTLAB_KERNELS`` says here).
    ``network`` (a ``lootlab.Network``) puts a remote variant behind the delaying proxy.
    Raises ``ProfilerError`` with ``perf_unavailable()``'s line where perf cannot run."""
    if not (math.isfinite(duration) and duration > 0):
        raise ProfilerError(f"duration must be a positive number of seconds, got {duration!r}")
    if not frequency >= 1:
        raise ProfilerError(f"frequency must be at least 1 sample per second, got {frequency!r}")
    if call_graph.split(",")[0] not in ("dwarf", "fp"):
        raise ProfilerError(f"call_graph must be 'dwarf' or 'fp', got {call_graph!r}")
    env = kernels_env(kernels)
    require_perf()
    argv = gated_argv(variant, duration=duration, rate=query_rate, index=index,
                      extra=["--spin"] if spin else [], network=network)
    name = "spin" if spin else variant
    with stage(progress, f"perf: sampling the {name} workload for {duration:g} s (plus its "
                         f"start-up)", duration + STARTUP_S):
        stacks, stdout = record(argv, frequency=frequency, call_graph=call_graph,
                                timeout=duration * 10 + 120, inline=inline, workdir=workdir,
                                what=f"perf on the {name} workload", env=env)
    if not stacks:
        raise ProfilerError(f"perf collected no samples from the {name} workload; "
                            f"try a longer duration")
    options = {"profiler": "perf", "event": "cpu-clock", "frequency": int(frequency),
               "call_graph": call_graph, "duration": duration,
               "kernels": kernels or os.environ.get("LOOTLAB_KERNELS") or "default"}
    return PerfProfile(name, stacks, options, parse_summary(stdout))


# -- the memcpy question: the copy of record bytes, measured ----------------------------------

BUILDS = ("default", "copycall")


@dataclass
class CopyShare:
    """Which share of a workload's CPU is the C kernel's copy of record bytes, from perf
    profiles of the copy-call build (the copy is ``lootlab_copy_record``, a frame of its own)
    and of the default build (the copy inlined), run alternately in one call.  ``parts`` and
    ``default_parts`` are shares of the measured loop's samples per ``COPY_PARTS`` entry."""

    variant: str
    parts: dict[str, float]
    default_parts: dict[str, float]
    samples: dict[str, int]                 # build -> perf samples in the measured loops
    ops: dict[str, int]                     # build -> ops over all rounds
    records: dict[str, int]                 # build -> records returned (= hits copied)
    ops_per_s: dict[str, float]             # build -> median over the perf rounds
    interleaved: dict[str, float]           # call_cost(): near µs per op of both builds
    options: dict[str, object]
    profiles: dict[str, PerfProfile]        # build -> its first round's profile

    @property
    def copy(self) -> float:
        """The copy of record bytes: the copy function's share of the copy-call build's CPU."""
        return self.parts["record copy"]

    @property
    def c_kernel(self) -> float:
        """All of lootlab's C kernel (the copy included), copy-call build."""
        return self.parts["record copy"] + self.parts["C kernel, rest"]

    @property
    def call_overhead(self) -> float:
        """The call's cost: copy-call over default ops/s, minus 1 (negative: slower), from
        ``call_cost``'s interleaved blocks (the perf runs' ``ops_per_s`` are noisier)."""
        i = self.interleaved
        return i["default_us_per_op"] / i["copycall_us_per_op"] - 1

    def cpu_us_per_op(self, build: str, part: str | None = None) -> float:
        """CPU µs per op of the sampled threads (all parts, or one), from samples / rate."""
        share = 1.0 if part is None else (self.parts if build == "copycall"
                                          else self.default_parts)[part]
        seconds = self.samples[build] / float(self.options["frequency"])  # type: ignore[arg-type]
        return share * seconds * 1e6 / max(self.ops[build], 1)

    @property
    def ns_per_record(self) -> float:
        """CPU time of the copy per record copied (copy-call build)."""
        per_op = self.cpu_us_per_op("copycall", "record copy") * max(self.ops["copycall"], 1)
        return per_op * 1e3 / max(self.records["copycall"], 1)

    @property
    def default_bound(self) -> float:
        """An upper bound of the copy's share in the default build: the copy-call build's copy
        time per op over the default build's CPU per op (inlined, the stores overlap with the
        search around them, and there is no call)."""
        return self.cpu_us_per_op("copycall", "record copy") / self.cpu_us_per_op("default")

    def table(self) -> list[dict[str, object]]:
        """One row per part: its share of each build's CPU."""
        return [{"part": p, "copycall": self.parts[p], "default": self.default_parts[p]}
                for p in COPY_PARTS]


def interleaved_near(index: str, queries: int, blocks: int) -> dict[str, float]:
    """In this process: ``blocks`` blocks of the same ``queries`` overlay ``near`` queries per
    build, the builds alternating (ABBA...), each on an index object of its own; the median
    µs per op of each.  Swaps ``lootlab.index``'s kernels global: run it in a child."""
    import importlib
    import time

    from .. import index as im
    from ..overlay import overlay_queries
    mods = {b: importlib.import_module(f"lootlab.{im.KERNEL_BUILDS[b]}") for b in BUILDS}
    idx = {b: im.open_index(index) for b in BUILDS}
    qs = overlay_queries(idx["default"], queries).tolist()
    times: dict[str, list[float]] = {b: [] for b in BUILDS}
    saved, hits = im._kernels, 0
    try:
        for i in range(blocks):
            for b in BUILDS if i % 2 else BUILDS[::-1]:
                im._kernels, near, t = mods[b], idx[b].near, time.perf_counter()
                hits = sum(len(near(x, y, z, r)) for x, y, z, r in qs)
                times[b].append(time.perf_counter() - t)
    finally:
        im._kernels = saved
    return {**{f"{b}_us_per_op": statistics.median(times[b]) * 1e6 / len(qs) for b in BUILDS},
            "records_per_op": hits / len(qs), "queries": queries, "blocks": blocks}


def call_cost(index: str | Path | None = None, *, queries: int = 2000,
              blocks: int = 20) -> dict[str, float]:
    """``interleaved_near`` in a fresh process (default index unless ``index``): both builds
    timed on the same queries in the same run, so their ratio is the call's cost."""
    from ..paths import ensure_default_index
    kernels_env("copycall")
    code = ("import json, sys; from lootlab.profiling.perf import interleaved_near; "
            "print(json.dumps(interleaved_near(*json.loads(sys.argv[1]))))")
    args = json.dumps([str(index or ensure_default_index()), int(queries), int(blocks)])
    proc = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True,
                          timeout=600, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise ProfilerError(f"timing the two kernel builds failed: {proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def copy_share_measured(variant: str = "mmap", *, duration: float = 3.0, rounds: int = 1,
                        frequency: int = DEFAULT_HZ, call_graph: str = "dwarf",
                        baseline: PerfProfile | None = None, blocks: int = 20,
                        workdir: str | Path | None = None,
                        progress: Stages | None = None) -> CopyShare:
    """Profile ``variant``'s workload with perf under both C kernel builds, alternating
    (default, copycall) ``rounds`` times for ``duration`` seconds each, and split the samples
    into ``COPY_PARTS``.  ``baseline``: an existing default-build perf profile of the same
    variant used as the (only) default round, so a notebook that has one runs just the
    copy-call build.  The call's cost is timed apart (``call_cost``, ``blocks`` each)."""
    if not (isinstance(rounds, int) and rounds >= 1):
        raise ProfilerError(f"rounds must be a whole number >= 1, got {rounds!r}")
    runs: dict[str, list[PerfProfile]] = {b: [] for b in BUILDS}
    if baseline is not None:
        runs["default"].append(baseline)
    for _ in range(rounds):
        for build in BUILDS:
            if build == "default" and baseline is not None:
                continue
            runs[build].append(perf_flamegraph(
                variant, duration=duration, frequency=frequency, call_graph=call_graph,
                kernels=build, workdir=workdir, progress=progress))
    if not any(f.startswith(COPY_FUNCTION + " ") for p in runs["copycall"] for s in p.stacks
               for f in s) and any(p.summary.get("records") for p in runs["copycall"]):
        raise ProfilerError(f"the {variant} workload copied records but perf saw no "
                            f"{COPY_FUNCTION} frame: did it load lootlab._kernels_copycall? "
                            f"(LOOTLAB_NO_KERNELS set?)")

    def merged(build: str) -> dict[tuple[str, ...], int]:
        out: dict[tuple[str, ...], int] = {}
        for p in runs[build]:
            for s, c in p.stacks.items():
                out[s] = out.get(s, 0) + c
        return out

    def shares(build: str) -> dict[str, float]:
        counts = copy_parts(merged(build))
        total = sum(counts.values()) or 1
        return {k: v / total for k, v in counts.items()}

    def total(build: str, key: str) -> int:
        return int(sum(p.summary.get(key, 0) for p in runs[build]))

    return CopyShare(
        variant, shares("copycall"), shares("default"),
        samples={b: sum(p.samples for p in runs[b]) for b in BUILDS},
        ops={b: total(b, "ops") for b in BUILDS}, records={b: total(b, "records") for b in BUILDS},
        ops_per_s={b: statistics.median(p.summary.get("ops_per_s", 0.0) for p in runs[b])
                   for b in BUILDS}, interleaved=call_cost(blocks=blocks),
        options={"duration": duration, "rounds": rounds, "frequency": int(frequency),
                 "call_graph": call_graph, "baseline_given": baseline is not None},
        profiles={b: runs[b][0] for b in BUILDS})
