"""Memory per operation: memray allocation counts, and /proc memory over a baseline process.

Three fresh processes of the same workload:

1. an import-only baseline (``--baseline``): what importing lootlab costs before any work;
2. the workload alone with ``--proc-stats``: RssAnon/RssFile, Pss_Anon/Pss_File, VmHWM and
   page faults, reported as deltas over the baseline (memray's own bookkeeping would
   inflate these, so they come from an untraced run);
3. the workload under ``memray run --trace-python-allocators`` (``--native`` optional):
   allocations and bytes per op, counted only for allocations whose Python stack is inside
   the workload's measured loop, and the peak heap of the whole process.

memray records each ``mmap`` call as ONE allocation of the mapping's full size, whether or
not its pages are ever touched (they are shared page cache, not heap): the index mapping is
therefore reported separately, from ``/proc/PID/smaps`` (size, Rss, Pss).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._run import ProfilerError, run, tool, workload_args
from .procmem import delta
from .stages import Stages, stage

MMAP_NOTE = ("memray counts each mmap as one allocation of its full size (shared page cache, "
             "not heap); the index mapping is reported separately from /proc smaps")
LOOP_FRAME = "_measured_ops"


@dataclass
class MemoryProfile:
    variant: str
    ops: int
    allocations_per_op: float          # memray, allocations inside the measured loop
    bytes_per_op: float                # memray, bytes requested inside the measured loop
    peak_heap: int                     # memray high-water mark of the whole process (bytes)
    total_allocations: int             # memray, whole process
    mmap_allocations: int              # memray MMAP records in the whole process
    mmap_bytes: int                    # and their total size (each mapping at full size)
    proc: dict[str, int] = field(default_factory=dict)       # workload /proc at the end
    baseline: dict[str, int] = field(default_factory=dict)   # import-only process
    index_mapping: dict[str, int] = field(default_factory=dict)
    cpu_us_per_op: float = 0.0
    minflt_per_op: float = 0.0
    majflt_per_op: float = 0.0
    flamegraph_html: str | None = field(default=None, repr=False)
    native: bool = False
    note: str = MMAP_NOTE

    @property
    def proc_delta(self) -> dict[str, int]:
        """Workload minus baseline, field by field (bytes; page faults as counts)."""
        return delta(self.proc, self.baseline)

    def summary(self) -> dict[str, Any]:
        d = self.proc_delta
        return {
            "variant": self.variant, "ops": self.ops,
            "allocs_per_op": self.allocations_per_op, "bytes_per_op": self.bytes_per_op,
            "peak_heap_MiB": self.peak_heap / 2**20,
            "RssAnon_MiB": self.proc.get("RssAnon", 0) / 2**20,
            "RssFile_MiB": self.proc.get("RssFile", 0) / 2**20,
            "dRssAnon_MiB": d.get("RssAnon", 0) / 2**20,
            "dRssFile_MiB": d.get("RssFile", 0) / 2**20,
            "dPss_Anon_MiB": d.get("Pss_Anon", 0) / 2**20,
            "dPss_File_MiB": d.get("Pss_File", 0) / 2**20,
            "VmHWM_MiB": self.proc.get("VmHWM", 0) / 2**20,
            "index_map_MiB": self.index_mapping.get("Size", 0) / 2**20,
            "index_rss_MiB": self.index_mapping.get("Rss", 0) / 2**20,
            "minflt_per_op": self.minflt_per_op, "majflt_per_op": self.majflt_per_op,
        }

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("flamegraph_html")
        return out


def count_loop_allocations(path: str | Path, frame: str = LOOP_FRAME) -> dict[str, int]:
    """Read a memray capture: allocations and bytes under ``frame``, whole-process totals,
    MMAP records, and the peak heap."""
    import memray

    free = {memray.AllocatorType.FREE, memray.AllocatorType.PYMALLOC_FREE,
            memray.AllocatorType.MUNMAP}
    inside: dict[int, bool] = {}
    out = {"loop_allocations": 0, "loop_bytes": 0, "mmap_allocations": 0, "mmap_bytes": 0}
    with memray.FileReader(str(path)) as reader:
        meta = reader.metadata
        for rec in reader.get_allocation_records():
            if rec.allocator in free:
                continue
            if rec.allocator == memray.AllocatorType.MMAP:
                out["mmap_allocations"] += rec.n_allocations
                out["mmap_bytes"] += rec.size
            hit = inside.get(rec.stack_id)
            if hit is None:
                hit = inside[rec.stack_id] = any(f[0] == frame for f in rec.stack_trace())
            if hit:
                out["loop_allocations"] += rec.n_allocations
                out["loop_bytes"] += rec.size
        out["peak_heap"] = int(meta.peak_memory)
        out["total_allocations"] = int(meta.total_allocations)
    return out


def memray_flamegraph_html(capture: str | Path, out: str | Path, *,
                           show_source: bool = False) -> str:
    """memray's flame graph as a self-contained HTML page: ``--no-web`` inlines its assets
    (no CDN), and ``--confidential-files all`` keeps source lines out unless asked."""
    import subprocess
    argv = [tool("memray"), "flamegraph", "--force", "--no-web", "--output", str(out),
            "--confidential-files", "none" if show_source else "all", str(capture)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ProfilerError(f"memray flamegraph failed: {proc.stderr.strip()[-300:]}")
    return Path(out).read_text()


def memory(variant: str = "mmap", *, queries: int = 2000, native: bool = False,
           index: str | Path | None = None, alloc_per_op: int | None = None,
           flamegraph: bool = True, show_source: bool = False,
           workdir: str | Path | None = None, network: Any = None,
           progress: Stages | None = None) -> MemoryProfile:
    """Allocations, bytes and /proc memory of ``variant``'s workload (three fresh processes;
    ``progress``, a ``Stages``, hears of each, and of memray's flame graph: four stages;
    ``network``, a ``lootlab.Network``, puts a remote variant behind the delaying proxy)."""
    extra = ["--alloc-per-op", str(alloc_per_op)] if alloc_per_op is not None else []
    label = variant if alloc_per_op is None else "alloc"
    with stage(progress, "baseline: a process that only imports lootlab"):
        base, _ = run(workload_args(variant, extra=["--baseline"]), what="the baseline process")
    with stage(progress, f"/proc memory: the {label} workload, {queries:,} queries, untraced"):
        plain, _ = run(workload_args(variant, queries=queries, index=index, network=network,
                                     extra=extra + ["--proc-stats"]),
                       what=f"the {label} workload")
    with tempfile.TemporaryDirectory(dir=workdir, prefix="lootlab-memray-") as tmp:
        capture = Path(tmp) / "capture.bin"
        argv = [tool("memray"), "run", "--quiet", "--force", "--trace-python-allocators",
                "--output", str(capture)]
        if native:
            argv.append("--native")
        wl = workload_args(variant, queries=queries, index=index, extra=extra, network=network)
        with stage(progress, f"memray: tracing the {label} workload's allocations"
                             f"{' (native)' if native else ''}"):
            traced, _ = run(argv + ["-m"] + wl[2:], what=f"memray on the {label} workload")
            counts = count_loop_allocations(capture)
        html = None
        if flamegraph:
            with stage(progress, "memray: writing its flame graph"):
                html = memray_flamegraph_html(capture, Path(tmp) / "memray.html",
                                              show_source=show_source)
    ops = max(int(traced["ops"]), 1)
    pops = max(int(plain["ops"]), 1)
    return MemoryProfile(
        variant=label, ops=int(traced["ops"]),
        allocations_per_op=counts["loop_allocations"] / ops,
        bytes_per_op=counts["loop_bytes"] / ops, peak_heap=counts["peak_heap"],
        total_allocations=counts["total_allocations"],
        mmap_allocations=counts["mmap_allocations"], mmap_bytes=counts["mmap_bytes"],
        proc=plain.get("proc") or {}, baseline=base.get("proc") or {},
        index_mapping=plain.get("index_mapping") or {},
        cpu_us_per_op=float(plain["cpu_us_per_op"]),
        minflt_per_op=plain["minflt"] / pops, majflt_per_op=plain["majflt"] / pops,
        flamegraph_html=html, native=native)
