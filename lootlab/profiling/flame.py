"""CPU flame graphs with py-spy: one sampling run of the workload process, four views of it.

py-spy launches ``python -m lootlab.workload`` itself (``py-spy record -- python ...``), so it
needs no extra privileges, and writes its raw collapsed stacks (``--format raw``).  From
that one sample set lootlab derives the frame table, the bucket shares, a speedscope JSON
and an interactive SVG, so every view agrees.  (``pyspy_svg=True`` adds py-spy's own SVG
from a second, separate sampling run.)

Options, as py-spy defines them: ``native`` samples C/C++ frames too (needed to see memcpy,
OpenSSL, gRPC core); ``idle`` keeps samples of threads that are not running (waiting on the
network, sleeping) which py-spy otherwise drops; ``gil`` keeps only samples holding the GIL;
``rate`` is samples per second (py-spy's default 100).

``PerfProfile`` (perf's samples of the same loop, ``lootlab.profiling.perf``) is a
``FlameProfile`` too and is defined here, beside it, so ``load_flame`` gives back either kind
and ``perf`` builds on this module without this module importing ``perf``.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import svg as _svg
from ._run import ProfilerError, run, tool, workload_args
from .categorize import bucket_of_frames
from .perfscript import kernel_share
from .stages import Stages, stage

Stacks = dict[tuple[str, ...], int]

WORK_FRAME = "_measured_ops"     # the workload's measured loop (lootlab.workload)
STARTUP_S = 6.0                  # about what a workload's start-up takes under py-spy


def parse_collapsed(text: str) -> Stacks:
    """Collapsed stacks (``frame;frame;... count`` per line, root first) -> {stack: count}."""
    out: Counter = Counter()
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out[tuple(stack.split(";"))] += int(count)
    return dict(out)


def to_collapsed(stacks: Mapping[tuple[str, ...], int]) -> str:
    return "".join(f"{';'.join(s)} {c}\n" for s, c in stacks.items())


def work_stacks(stacks: Mapping[tuple[str, ...], int], frame: str = WORK_FRAME) -> Stacks:
    """Only the samples taken inside the workload's measured loop."""
    return {s: c for s, c in stacks.items()
            if any(frame_name(f) == frame for f in s)}


def frame_name(frame: str) -> str:
    """A frame's function name without its location (``near (x.py:3)`` -> ``near``)."""
    return frame.split(" (", 1)[0]


def loop_stacks(stacks: Mapping[tuple[str, ...], int],
                frame: str = WORK_FRAME) -> tuple[str | None, Stacks]:
    """``(loop frame, stacks below it)``: each stack that passes through the measured loop,
    cut below its deepest loop frame; ``(None, {})`` if none does."""
    out: Counter = Counter()
    names: Counter = Counter()
    for stack, count in stacks.items():
        hits = [i for i, f in enumerate(stack) if frame_name(f) == frame]
        if hits:
            names[stack[hits[-1]]] += count
            out[stack[hits[-1] + 1:]] += count
    return (names.most_common(1)[0][0] if names else None), dict(out)


def frames_table(stacks: Mapping[tuple[str, ...], int]) -> pd.DataFrame:
    """One row per frame: self and total samples and shares, and the frame's own bucket.

    ``self`` counts samples where the frame is the leaf; ``total`` counts samples where it
    appears anywhere in the stack (once per sample, so recursion is not double counted).
    """
    total = sum(stacks.values())
    self_c: Counter = Counter()
    total_c: Counter = Counter()
    for stack, count in stacks.items():
        if stack:
            self_c[stack[-1]] += count
        for frame in set(stack):
            total_c[frame] += count
    frames = list(total_c)
    buckets = bucket_of_frames(frames)
    df = pd.DataFrame({
        "frame": frames,
        "self": [self_c.get(f, 0) for f in frames],
        "total": [total_c[f] for f in frames],
    })
    denom = total or 1
    df["self_share"] = df["self"] / denom
    df["total_share"] = df["total"] / denom
    df["bucket"] = [buckets[f] for f in frames]
    return df.sort_values(["self", "total"], ascending=False, ignore_index=True)


def to_speedscope(stacks: Mapping[tuple[str, ...], int], name: str) -> dict[str, Any]:
    """A speedscope file (https://www.speedscope.app/file-format-schema.json): one sampled
    profile with one weighted sample per distinct stack."""
    index: dict[str, int] = {}
    frames: list[dict[str, str]] = []
    samples, weights = [], []
    for stack, count in stacks.items():
        ids = []
        for f in stack:
            if f not in index:
                index[f] = len(frames)
                fname, _, rest = f.partition(" (")
                entry = {"name": fname}
                if rest:
                    entry["file"] = rest.rstrip(")")
                frames.append(entry)
            ids.append(index[f])
        samples.append(ids)
        weights.append(count)
    total = sum(weights)
    return {"$schema": "https://www.speedscope.app/file-format-schema.json",
            "shared": {"frames": frames},
            "profiles": [{"type": "sampled", "name": name, "unit": "none", "startValue": 0,
                          "endValue": total, "samples": samples, "weights": weights}],
            "name": name, "activeProfileIndex": 0, "exporter": "lootlab"}


@dataclass
class FlameProfile:
    """One py-spy run of one variant's workload: raw stacks and the views derived from them."""

    variant: str
    stacks: Stacks = field(repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict, repr=False)  # the workload's JSON
    pyspy_svg: str | None = field(default=None, repr=False)

    @property
    def samples(self) -> int:
        return sum(self.stacks.values())

    @property
    def work_stacks(self) -> Stacks:
        """Samples under the measured loop (set-up and imports left out); all if none are."""
        return work_stacks(self.stacks) or self.stacks

    @property
    def collapsed(self) -> str:
        """The raw collapsed stacks as py-spy wrote them (``--format raw``), all samples."""
        return to_collapsed(self.stacks)

    @property
    def frames(self) -> pd.DataFrame:
        """Frame table of the measured loop's samples (self/total counts and shares)."""
        return frames_table(self.work_stacks)

    @property
    def speedscope(self) -> dict[str, Any]:
        return to_speedscope(self.stacks, f"lootlab {self.variant}")

    @property
    def svg(self) -> str:
        """Interactive SVG of the measured loop's samples, rooted at the loop (the frames
        above it are the same start-up chain in every run); safe to embed inline in HTML."""
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        loop, below = loop_stacks(self.stacks)
        if loop is None:
            return _svg.render(self.stacks, title=f"{self.variant} ({opts})")
        inside = sum(below.values())
        note = (f"{inside:,} of the run's {self.samples:,} samples are inside the measured loop "
                f"({frame_name(loop)}), drawn here; the rest is start-up and imports. "
                f"Click a frame to zoom, the top bar to reset.")
        return _svg.render(below, title=f"{self.variant} ({opts})", note=note, root=loop)

    def _repr_html_(self) -> str:
        return self.svg

    def save(self, directory: str | Path) -> dict[str, Path]:
        """Write flame.svg, speedscope.json, collapsed.txt, frames.csv, profile.json."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        paths = {"svg": d / "flame.svg", "speedscope": d / "speedscope.json",
                 "collapsed": d / "collapsed.txt", "frames": d / "frames.csv",
                 "meta": d / "profile.json"}
        paths["svg"].write_text(self.svg)
        paths["speedscope"].write_text(json.dumps(self.speedscope))
        paths["collapsed"].write_text(self.collapsed)
        self.frames.to_csv(paths["frames"], index=False)
        paths["meta"].write_text(json.dumps({"variant": self.variant, "options": self.options,
                                             "summary": self.summary}, indent=1))
        if self.pyspy_svg:
            paths["pyspy_svg"] = d / "flame-pyspy.svg"
            paths["pyspy_svg"].write_text(self.pyspy_svg)
        return paths


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


def load_flame(directory: str | Path) -> FlameProfile:
    """A ``FlameProfile`` back from ``FlameProfile.save`` (a ``PerfProfile`` if perf made it)."""
    d = Path(directory)
    meta = json.loads((d / "profile.json").read_text())
    pys = d / "flame-pyspy.svg"
    cls = FlameProfile
    if meta.get("options", {}).get("profiler") == "perf":
        cls = PerfProfile
    return cls(meta["variant"], parse_collapsed((d / "collapsed.txt").read_text()),
                        meta.get("options", {}), meta.get("summary", {}),
                        pys.read_text() if pys.exists() else None)


def _pyspy_argv(fmt: str, out: Path, *, native: bool, idle: bool, gil: bool,
                rate: int | None, nonblocking: bool) -> list[str]:
    argv = [tool("py-spy"), "record", "--format", fmt, "--output", str(out), "--function"]
    if native:
        argv.append("--native")
    if idle:
        argv.append("--idle")
    if gil:
        argv.append("--gil")
    if nonblocking:
        argv.append("--nonblocking")
    if rate:
        argv += ["--rate", str(int(rate))]
    return argv + ["--"]


def flamegraph(variant: str = "mmap", *, duration: float = 5.0, native: bool = True,
               idle: bool = False, gil: bool = False, rate: int | None = None,
               query_rate: float | None = None, index: str | Path | None = None,
               nonblocking: bool = False, pyspy_svg: bool = False, spin: bool = False,
               workdir: str | Path | None = None, network: Any = None,
               progress: Stages | None = None) -> FlameProfile:
    """Sample ``variant``'s overlay workload with py-spy for ``duration`` seconds.

    ``rate`` is py-spy's sampling rate; ``query_rate`` paces the workload's queries
    (unpaced by default: a closed loop as fast as the client goes).  ``spin=True`` profiles
    the CPU-bound test workload instead.  ``network`` (a ``lootlab.Network``) puts a remote
    variant behind the delaying proxy.  ``progress`` (a ``Stages``) hears of each run.
    """
    if not (math.isfinite(duration) and duration > 0):
        raise ProfilerError(f"duration must be a positive number of seconds, got {duration!r}")
    if rate is not None and not rate >= 1:
        raise ProfilerError(f"rate must be at least 1 sample per second, got {rate!r}")
    extra = ["--spin"] if spin else []
    wl = workload_args(variant, duration=duration, rate=query_rate, index=index, extra=extra,
                       network=network)
    options = {"native": native, "idle": idle, "gil": gil, "rate": rate or 100,
               "duration": duration}
    with tempfile.TemporaryDirectory(dir=workdir, prefix="lootlab-flame-") as tmp:
        raw = Path(tmp) / "stacks.txt"
        argv = _pyspy_argv("raw", raw, native=native, idle=idle, gil=gil, rate=rate,
                           nonblocking=nonblocking)
        with stage(progress, f"py-spy: sampling the {'spin' if spin else variant} workload "
                             f"for {duration:g} s "
                             f"(plus its start-up)", duration + STARTUP_S):
            summary, stderr = run(argv + wl, what=f"py-spy on the {variant} workload",
                                  timeout=duration * 10 + 120)
        if not raw.exists():
            raise ProfilerError(f"py-spy wrote no samples for {variant}: {stderr.strip()[-300:]}")
        stacks = parse_collapsed(raw.read_text())
        own_svg = None
        if pyspy_svg:
            out = Path(tmp) / "flame.svg"
            argv = _pyspy_argv("flamegraph", out, native=native, idle=idle, gil=gil, rate=rate,
                               nonblocking=nonblocking)
            with stage(progress, f"py-spy: a second run of {variant} for py-spy's own SVG",
                       duration + STARTUP_S):
                run(argv + wl, what=f"py-spy (svg) on the {variant} workload",
                    timeout=duration * 10 + 120)
            own_svg = out.read_text() if out.exists() else None
    if not stacks:
        raise ProfilerError(f"py-spy collected no samples from the {variant} workload; "
                            f"try a longer duration")
    return FlameProfile(variant if not spin else "spin", stacks, options, summary, own_svg)
