"""The workload the profilers attach to: overlay queries against one variant, in a fresh process.

``python -m lootlab.workload --variant mmap --queries 2000`` runs the overlay query workload
(``lootlab.overlay.overlay_queries``) through ``lootlab.connect(variant)`` and prints one
JSON line: ops, seconds, CPU user/sys per op, page faults per op.  Nothing else runs in the
process, so py-spy and memray see only the client path.  The measured loop is the function
``_measured_ops``: profilers and parsers key on that name to separate setup from work.

Test workloads with a known answer: ``--spin`` burns CPU in ``lootlab_spin_target``;
``--alloc-per-op K`` allocates exactly K Python objects per op (plus the loop's own).
``--hold`` keeps the process alive after printing, until its stdin closes, so a parent can
read its ``/proc`` memory while several replicas are up at once.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from .console import handle_errors

DEFAULT_QUERIES = 2000
WARMUP_OPS = 20
_QUERY_BLOCK = 10_000


@dataclass
class WorkloadSummary:
    """What one workload process did; per-op figures are over the measured loop only."""

    variant: str
    kind: str                 # "overlay", "spin", "alloc" or "baseline"
    pid: int
    ops: int
    seconds: float
    cpu_user_s: float
    cpu_sys_s: float
    minflt: int
    majflt: int
    records: int              # total records returned by the queries
    rate: float | None        # offered rate (ops/s), None when unpaced
    warmup_ops: int
    proc: dict[str, int] | None = None      # /proc memory at the end (--proc-stats)
    index_mapping: dict[str, int] | None = None   # the index file's mapping(s), if any
    index_path: str | None = None

    @property
    def cpu_us_per_op(self) -> float:
        return (self.cpu_user_s + self.cpu_sys_s) * 1e6 / max(self.ops, 1)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        per = max(self.ops, 1)
        out.update(cpu_user_us_per_op=self.cpu_user_s * 1e6 / per,
                   cpu_sys_us_per_op=self.cpu_sys_s * 1e6 / per,
                   cpu_us_per_op=self.cpu_us_per_op,
                   minflt_per_op=self.minflt / per, majflt_per_op=self.majflt / per,
                   ops_per_s=self.ops / self.seconds if self.seconds > 0 else 0.0)
        return out


# -- the test workloads ---------------------------------------------------------------------

def lootlab_spin_target(n: int) -> int:
    """CPU-bound and nothing else: a flamegraph of ``--spin`` must show this on top."""
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


def _spin_op() -> Callable[[np.ndarray], int]:
    def op(_q: np.ndarray) -> int:
        return lootlab_spin_target(20_000) & 0
    return op


def _alloc_op(k: int) -> Callable[[np.ndarray], int]:
    """Each call allocates exactly ``k`` objects (``object()``), each freed by the next."""
    slots: list[Any] = [None] * k
    idx = list(range(k))            # pre-made ints: the loop itself allocates nothing per item

    def op(_q: np.ndarray) -> int:
        for i in idx:
            slots[i] = object()
        return 0
    return op


# -- the real workload ---------------------------------------------------------------------

def connect_variant(variant: str, index: Path, *, target: str | None = None,
                    ca: str | None = None) -> Any:
    """The workload's client (``lootlab.targets``): a local variant opens ``index``; a
    remote one reaches ``target`` (with ``ca``), else the embedded default."""
    from .remote.endpoint import Endpoint
    from .targets import connect
    from .variants import get
    v = get(variant)
    if not v.remote:
        return connect(v, index=str(index))
    return connect(v, Endpoint(target, tls=v.tls, ca=ca) if target else None)


def _own_server(variant: str, index: Path, stack: ExitStack) -> tuple[str, str | None]:
    """A loopback server for ``index`` (the embedded one serves the default index only)."""
    from .remote.loopback import LoopbackServer
    from .variants import get
    srv = stack.enter_context(LoopbackServer(index, tls=get(variant).tls))
    return srv.target, srv.ca


def _overlay_op(client: Any) -> Callable[[np.ndarray], int]:
    near = client.near

    def op(q: np.ndarray) -> int:
        return len(near(int(q[0]), int(q[1]), int(q[2]), int(q[3])))
    return op


def _query_stream(index: Path, seed: int) -> Iterator[np.ndarray]:
    from .index import open_index
    from .overlay import overlay_queries
    with open_index(index) as idx:
        blocks = [overlay_queries(idx, _QUERY_BLOCK, seed=seed)]
    return itertools.cycle(blocks[0])


# -- the measured loop ----------------------------------------------------------------------

def _measured_ops(op: Callable[[np.ndarray], int], queries: Iterator[np.ndarray], n: int | None,
                  duration: float | None, rate: float | None) -> tuple[int, int]:
    """Run ops until ``n`` are done or ``duration`` has passed; paced at ``rate`` if given.

    Profilers key on this function's name: allocations and samples under it are the work.
    """
    ops = records = 0
    start = time.perf_counter()
    deadline = start + duration if duration else None
    interval = 1.0 / rate if rate else 0.0
    while (n is None or ops < n):
        now = time.perf_counter()
        if deadline is not None and now >= deadline:
            break
        if interval:
            due = start + ops * interval
            if due > now:
                time.sleep(due - now)
        records += op(next(queries))
        ops += 1
    return ops, records


def run(variant: str = "mmap", queries: int | None = DEFAULT_QUERIES, *, duration: float | None = None,
        rate: float | None = None, spin: bool = False, alloc_per_op: int | None = None,
        index: str | Path | None = None, seed: int = 0, warmup: int = WARMUP_OPS,
        gc_log: str | Path | None = None, proc_stats: bool = False,
        target: str | None = None, ca: str | None = None,
        on_done: Callable[[WorkloadSummary], None] | None = None) -> WorkloadSummary:
    """Run one workload in this process and summarise it (the CLI's body).

    ``on_done(summary)`` runs before the client is closed, while the index is still mapped.
    """
    from .paths import ensure_default_index
    from .profiling.gcpause import GcRecorder
    from .profiling.procmem import mapping_of, page_faults, read_proc

    index_path = Path(index) if index else None
    client = None
    servers = ExitStack()
    if spin:
        kind, op, stream = "spin", _spin_op(), itertools.repeat(np.zeros(4, np.int64))
    elif alloc_per_op is not None:
        kind, op = "alloc", _alloc_op(alloc_per_op)
        stream = itertools.repeat(np.zeros(4, np.int64))
    else:
        kind = "overlay"
        from .variants import get
        if index_path is not None and get(variant).remote and target is None:
            target, ca = _own_server(variant, index_path, servers)
        index_path = index_path or ensure_default_index()
        client = connect_variant(variant, index_path, target=target, ca=ca)
        op, stream = _overlay_op(client), _query_stream(index_path, seed)
    try:
        for _ in range(warmup):
            op(next(stream))
        recorder = GcRecorder() if gc_log else None
        r0, f0, t0 = resource.getrusage(resource.RUSAGE_SELF), page_faults(), time.perf_counter()
        if recorder:
            recorder.start()
        ops, records = _measured_ops(op, stream, queries if not duration else None, duration, rate)
        if recorder:
            recorder.stop()
        t1, f1, r1 = time.perf_counter(), page_faults(), resource.getrusage(resource.RUSAGE_SELF)
        if recorder:
            recorder.save(gc_log)
        summary = WorkloadSummary(
            variant=variant if kind == "overlay" else kind, kind=kind, pid=os.getpid(), ops=ops,
            seconds=t1 - t0, cpu_user_s=r1.ru_utime - r0.ru_utime,
            cpu_sys_s=r1.ru_stime - r0.ru_stime, minflt=f1[0] - f0[0], majflt=f1[1] - f0[1],
            records=records, rate=rate, warmup_ops=warmup,
            index_path=str(index_path) if index_path else None)
        if proc_stats:
            summary.proc = read_proc()
            if index_path:
                summary.index_mapping = mapping_of(index_path)
        if on_done is not None:
            on_done(summary)
        return summary
    finally:
        if client is not None:
            client.close()
        servers.close()


def baseline(variant: str = "mmap") -> WorkloadSummary:
    """An import-only process: the same modules as a workload, no connection, no queries."""
    from . import clients, index, overlay  # noqa: F401 - what a workload imports
    from .profiling.procmem import page_faults, read_proc
    minflt, majflt = page_faults()
    return WorkloadSummary(variant=variant, kind="baseline", pid=os.getpid(), ops=0, seconds=0.0,
                           cpu_user_s=0.0, cpu_sys_s=0.0, minflt=minflt, majflt=majflt,
                           records=0, rate=None, warmup_ops=0, proc=read_proc())


@click.command(cls=handle_errors("lootlab.workload", ValueError, KeyError),
               help=__doc__.split("\n")[0])
@click.option("--variant", default="mmap", help="client variant (lootlab.VARIANTS)")
@click.option("--queries", type=int, default=DEFAULT_QUERIES, help="measured operations")
@click.option("--duration", type=float, help="run for this many seconds instead of --queries")
@click.option("--rate", type=float, help="pace operations at this many per second")
@click.option("--index", help="index file (default: the embedded default index)")
@click.option("--seed", type=int, default=0)
@click.option("--target", help="remote variants: server address (default: embedded server)")
@click.option("--ca", help="remote variants: CA certificate PEM for --target")
@click.option("--warmup", type=int, default=WARMUP_OPS, help="unmeasured operations first")
@click.option("--gc-log", help="write every GC pause in the measured loop to this JSON file")
@click.option("--proc-stats", is_flag=True, help="add /proc memory at the end")
@click.option("--baseline", "baseline_only", is_flag=True,
              help="import only; report /proc memory")
@click.option("--spin", is_flag=True, help="test workload: CPU-bound spin")
@click.option("--alloc-per-op", type=int, metavar="K",
              help="test workload: allocate K objects per op")
@click.option("--json-out", help="also write the summary JSON to this file")
@click.option("--hold", is_flag=True,
              help="after printing, stay alive until stdin closes (replica measurements)")
def main(variant: str, queries: int, duration: float | None, rate: float | None,
         index: str | None, seed: int, target: str | None, ca: str | None, warmup: int,
         gc_log: str | None, proc_stats: bool, baseline_only: bool, spin: bool,
         alloc_per_op: int | None, json_out: str | None, hold: bool) -> None:
    def report(summary: WorkloadSummary) -> None:
        text = json.dumps(summary.to_dict())
        if json_out:
            Path(json_out).write_text(text)
        print(text, flush=True)
        if hold:
            sys.stdin.read()

    if baseline_only:
        report(baseline(variant))
    else:
        run(variant, queries, duration=duration, rate=rate, spin=spin,
            alloc_per_op=alloc_per_op, index=index, seed=seed, warmup=warmup, gc_log=gc_log,
            proc_stats=proc_stats or hold, target=target, ca=ca, on_done=report)


if __name__ == "__main__":
    main(prog_name="python -m lootlab.workload")
