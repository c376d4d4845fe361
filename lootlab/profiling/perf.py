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
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import svg as _svg
from ._run import ProfilerError, parse_summary, workload_args
from .flame import FlameProfile
from .perfgate import CTL_ENV
from .perfscript import kernel_share, parse_script
from .progress import Stages, stage

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
           ) -> tuple[dict[tuple[str, ...], int], str]:
    """Sample ``argv`` (and its threads and children) with ``perf record -e cpu-clock``;
    returns (folded stacks, the command's stdout).  ``gated``: events start off and the
    child switches them on through ``perfgate``'s FIFO (its argv must run perfgate)."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix="lootlab-perf-") as tmp:
        data = Path(tmp) / "perf.data"
        args = ["record", "-q", "-e", "cpu-clock", "-F", str(int(frequency)),
                f"--call-graph={call_graph}", "-o", str(data)]
        proc = run_under_perf(args, argv, what=what, timeout=timeout, gated=gated,
                              directory=Path(tmp))
        script = [require_perf(), "script", "-i", str(data), "-F", SCRIPT_FIELDS]
        if not inline:
            script.append("--no-inline")
        out = subprocess.run(script, capture_output=True, text=True, timeout=timeout,
                             check=False)
        if out.returncode != 0:
            raise ProfilerError(f"perf script failed: {out.stderr.strip()[-300:]}")
        return parse_script(out.stdout), proc.stdout


@dataclass
class PerfProfile(FlameProfile):
    """A ``FlameProfile`` recorded by perf: every sample is inside the measured loop (perf was
    switched on only there), frames are native and kernel (``[k]``), no Python names."""

    @property
    def kernel_share(self) -> float:
        """Share of the loop's CPU samples spent in the kernel (leaf frame ``[k]``)."""
        return kernel_share(self.stacks)

    @property
    def svg(self) -> str:
        o = self.options
        note = (f"{self.samples:,} perf cpu-clock samples at {o.get('frequency')} Hz, all threads, "
                f"taken only inside the measured loop; {100 * self.kernel_share:.1f} % in the "
                f"kernel. Blue frames are the kernel ([k]; search '[k]' for their share), "
                f"[python] is CPython's call machinery (perf sees no Python names). "
                f"Click a frame to zoom, the top bar to reset.")
        return _svg.render(self.stacks, title=f"{self.variant} (perf, {o.get('call_graph')})",
                           note=note, root="measured loop",
                           legend=[(_svg.KERNEL_SWATCH, "kernel [k]"),
                                   (_svg.warm_color("user"), "user space")])


def perf_flamegraph(variant: str = "mmap", *, duration: float = 5.0, frequency: int = DEFAULT_HZ,
                    call_graph: str = "dwarf", query_rate: float | None = None,
                    index: str | Path | None = None, spin: bool = False, inline: bool = False,
                    workdir: str | Path | None = None,
                    progress: Stages | None = None) -> PerfProfile:
    """Sample ``variant``'s overlay workload with perf for ``duration`` seconds (the
    measured loop only, every thread, kernel included).  ``frequency`` is samples per second;
    ``call_graph`` ``"dwarf"`` (default; see the module doc) or ``"fp"``; ``inline=True``
    adds inlined functions (``perf script`` is then several times slower).  Raises
    ``ProfilerError`` with ``perf_unavailable()``'s line where perf cannot run."""
    if not (math.isfinite(duration) and duration > 0):
        raise ProfilerError(f"duration must be a positive number of seconds, got {duration!r}")
    if not frequency >= 1:
        raise ProfilerError(f"frequency must be at least 1 sample per second, got {frequency!r}")
    if call_graph.split(",")[0] not in ("dwarf", "fp"):
        raise ProfilerError(f"call_graph must be 'dwarf' or 'fp', got {call_graph!r}")
    require_perf()
    argv = gated_argv(variant, duration=duration, rate=query_rate, index=index,
                      extra=["--spin"] if spin else [])
    name = "spin" if spin else variant
    with stage(progress, f"perf: sampling the {name} workload for {duration:g} s (plus its "
                         f"start-up)", duration + STARTUP_S):
        stacks, stdout = record(argv, frequency=frequency, call_graph=call_graph,
                                timeout=duration * 10 + 120, inline=inline, workdir=workdir,
                                what=f"perf on the {name} workload")
    if not stacks:
        raise ProfilerError(f"perf collected no samples from the {name} workload; "
                            f"try a longer duration")
    options = {"profiler": "perf", "event": "cpu-clock", "frequency": int(frequency),
               "call_graph": call_graph, "duration": duration}
    return PerfProfile(name, stacks, options, parse_summary(stdout))
