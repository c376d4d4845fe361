"""Benchmark: the rebuild worker at full size (350k records, the default world).

``python -m lootlab.benchmarks.rebuild [--records N] [--rounds R] [--phase-seconds S]``

Measured in one run and printed as one table, with targets beside the figures:

1. **Rebuild cycle** (S3 over loopback HTTP, and a local file): a changed source ->
   fetch + build + publish.  Target: <= 1 s per cycle.
2. **Unchanged cycle**: one conditional GET (``If-None-Match``) answered 304, no rebuild.
   Target: <= 20 ms, exactly one request per cycle.
3. **Readers under rebuild**: a separate reader process runs overlay ``near`` queries in a
   closed loop; phases alternate idle / rebuilding every second (an update folded in each
   cycle, so every cycle is a full 350k-record build and swap).  Target: busy p99 <=
   1.5x idle p99, zero failed reads.  Phases alternate (idle, busy, idle, busy) so a burst
   of background load on a shared machine does not land on one side only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ..console import handle_errors


def _pct(values: list[float] | np.ndarray, p: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), p)) if len(values) else float("nan")


# -- 1 and 2: cycles ---------------------------------------------------------------------------

def measure_cycles(world: pd.DataFrame, work: Path, rounds: int, unchanged: int) -> list[dict]:
    """Changed and unchanged cycle times from S3 (loopback moto) and a local file."""
    from ..rebuild import Rebuilder
    from ..s3local import LoopbackS3
    from ..tables import write_table

    rows: list[dict] = []
    rng = np.random.default_rng(0)

    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df["tick"] = rng.integers(0, 2**31, len(df))     # different bytes every round
        return df

    with LoopbackS3() as s3:
        s3.put_table(world, "lootlab", "world.parquet")
        src = s3.source("lootlab", "world.parquet")
        worker = Rebuilder(src, work / "s3.idx", interval=60)
        worker.run_once()                                   # first fetch + build (warm-up)
        for _ in range(rounds):
            s3.put_table(mutate(world), "lootlab", "world.parquet")
            r = worker.run_once()
            rows.append({"case": "changed cycle (S3)", "seconds": r.seconds,
                         "fetch_s": r.fetch_seconds, "build_publish_s": r.build_seconds,
                         "outcome": r.outcome, "requests": None})
        for _ in range(unchanged):
            before = s3.requests
            r = worker.run_once()
            rows.append({"case": "unchanged cycle (S3)", "seconds": r.seconds,
                         "fetch_s": r.fetch_seconds, "build_publish_s": 0.0, "outcome": r.outcome,
                         "requests": s3.requests - before})

    local = work / "src" / "world.parquet"
    write_table(world, local)
    worker = Rebuilder(local, work / "local.idx", interval=60)
    worker.run_once()
    for _ in range(rounds):
        write_table(mutate(world), local)
        r = worker.run_once()
        rows.append({"case": "changed cycle (local)", "seconds": r.seconds, "fetch_s": r.fetch_seconds,
                     "build_publish_s": r.build_seconds, "outcome": r.outcome, "requests": None})
    for _ in range(unchanged):
        r = worker.run_once()
        rows.append({"case": "unchanged cycle (local)", "seconds": r.seconds,
                     "fetch_s": r.fetch_seconds, "build_publish_s": 0.0, "outcome": r.outcome,
                     "requests": None})
    return rows


# -- 3: readers while rebuilding -----------------------------------------------------------------

def _reader_main(index: str, seed: int) -> None:
    """Reader process: for each ``SECONDS`` line on stdin, query that long; answer JSON."""
    from ..index import open_index
    from ..overlay import overlay_queries

    idx = open_index(index)
    work = overlay_queries(idx, 20_000, seed=seed).tolist()
    print("ready", flush=True)
    i = 0
    for line in sys.stdin:
        seconds = float(line)
        lat: list[int] = []
        errors: list[str] = []
        gens = set()
        end = time.perf_counter() + seconds
        clock = time.perf_counter_ns
        while time.perf_counter() < end:
            x, y, z, r = work[i % len(work)]
            i += 1
            t0 = clock()
            try:
                idx.near(x, y, z, r)
            except Exception as exc:  # a failed read is what this counts
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            lat.append(clock() - t0)
            gens.add(idx._snap.header.generation if idx._snap is not None else -1)
        a = np.asarray(lat, dtype=np.int64)
        print(json.dumps({"queries": len(lat), "errors": len(errors), "first_errors": errors[:3],
                          "p50_us": _pct(a, 50) / 1e3, "p99_us": _pct(a, 99) / 1e3,
                          "p999_us": _pct(a, 99.9) / 1e3, "generations": sorted(gens)}), flush=True)


def measure_readers(world: pd.DataFrame, work: Path, phase_seconds: float, pairs: int) -> list[dict]:
    """Idle vs rebuilding-every-second phases seen by a reader in another process."""
    from ..build import build_index
    from ..rebuild import Rebuilder
    from ..tables import write_table

    src = work / "readers" / "world.parquet"
    write_table(world, src)
    index = work / "readers" / "loot.idx"
    build_index(world, index)
    reader = subprocess.Popen([sys.executable, "-m", "lootlab.benchmarks.rebuild", "--reader",
                               str(index)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    worker = Rebuilder(src, index, interval=1.0)
    worker.run_once()
    rows: list[dict] = []
    rng = np.random.default_rng(1)
    stop_feed = threading.Event()

    def feed() -> None:   # one small update per second: every cycle is a full build + swap
        while not stop_feed.wait(0.5):
            pick = world.iloc[rng.integers(len(world), size=10)].copy()
            pick["value"] = rng.integers(0, 1000, len(pick))
            worker.apply(pick)

    def phase(name: str) -> None:
        builds0 = worker.status.builds
        reader.stdin.write(f"{phase_seconds}\n")
        reader.stdin.flush()
        out = json.loads(reader.stdout.readline())
        out.update(phase=name, builds=worker.status.builds - builds0)
        rows.append(out)

    try:
        assert reader.stdout.readline().strip() == "ready"
        phase("warm-up")
        for _ in range(pairs):
            phase("idle")
            stop_feed.clear()
            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            worker.start()
            phase("rebuilding every 1 s")
            worker.stop()
            stop_feed.set()
            feeder.join()
    finally:
        worker.stop()
        stop_feed.set()
        reader.stdin.close()
        reader.wait(timeout=30)
    return [r for r in rows if r["phase"] != "warm-up"]


def run(records: int = 350_000, rounds: int = 5, unchanged: int = 50, phase_seconds: float = 3.0,
        pairs: int = 3, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Run all three parts; returns the raw rows as DataFrames (no printing)."""
    from ..paths import data_dir
    from ..world import generate_world

    world = generate_world(records, seed=seed)
    base = data_dir() / "bench"
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rebuild-", dir=base) as tmp:
        work = Path(tmp)
        cycles = pd.DataFrame(measure_cycles(world, work, rounds, unchanged))
        readers = pd.DataFrame(measure_readers(world, work, phase_seconds, pairs))
    return {"cycles": cycles, "readers": readers}


def summarize(res: dict[str, pd.DataFrame], records: int) -> str:
    c, r = res["cycles"], res["readers"]
    lines = [f"rebuild benchmark, {records:,} records (one run)", ""]
    lines.append(f"{'case':26s} {'n':>3s} {'median':>10s} {'max':>10s} {'fetch med':>10s} "
                 f"{'build+pub med':>14s}  target")
    for case, g in c.groupby("case", sort=False):
        target = "<= 1 s" if case.startswith("changed") else "<= 20 ms"
        lines.append(f"{case:26s} {len(g):3d} {g.seconds.median() * 1e3:8.1f}ms "
                     f"{g.seconds.max() * 1e3:8.1f}ms {g.fetch_s.median() * 1e3:8.1f}ms "
                     f"{g.build_publish_s.median() * 1e3:12.1f}ms  {target}")
    s3u = c[c.case == "unchanged cycle (S3)"]
    lines.append(f"unchanged S3 cycles: requests per cycle {sorted(set(s3u.requests))}, "
                 f"outcomes {sorted(set(s3u.outcome))}; changed outcomes "
                 f"{sorted(set(c[c.case.str.startswith('changed')].outcome))}")
    lines += ["", f"{'reader phase':22s} {'queries':>8s} {'p50 us':>8s} {'p99 us':>8s} "
                  f"{'p99.9 us':>9s} {'errors':>6s} {'builds':>6s} {'generations':>11s}"]
    for row in r.itertuples():
        lines.append(f"{row.phase:22s} {row.queries:8d} {row.p50_us:8.1f} {row.p99_us:8.1f} "
                     f"{row.p999_us:9.1f} {row.errors:6d} {row.builds:6d} {len(row.generations):11d}")
    idle = r[r.phase == "idle"].p99_us.to_numpy()
    busy = r[r.phase != "idle"].p99_us.to_numpy()
    ratios = busy / idle                  # each busy phase against the idle phase just before
    lines += ["", "reader p99 rebuilding / idle, per adjacent pair: "
                  + ", ".join(f"{b:.1f}/{i:.1f} us = {x:.2f}x" for b, i, x in zip(busy, idle, ratios)),
              f"median ratio {np.median(ratios):.2f}x (target <= 1.5x); failed reads: "
              f"{int(r.errors.sum())} (target 0); load average at the end "
              f"{' '.join(f'{v:.1f}' for v in os.getloadavg())} on "
              f"{os.cpu_count()} CPUs (other load inflates the busy phases most)"]
    return "\n".join(lines)


@click.command(cls=handle_errors("python -m lootlab.benchmarks.rebuild"),
               help=__doc__.split("\n\n")[0])
@click.option("--records", type=int, default=350_000)
@click.option("--rounds", type=int, default=5, help="changed cycles per source")
@click.option("--unchanged", type=int, default=50, help="unchanged cycles per source")
@click.option("--phase-seconds", type=float, default=3.0)
@click.option("--pairs", type=int, default=3, help="idle/rebuilding phase pairs")
@click.option("--reader", metavar="INDEX", hidden=True)
def main(records: int, rounds: int, unchanged: int, phase_seconds: float, pairs: int,
         reader: str | None) -> None:
    if reader:
        _reader_main(reader, seed=0)
        return
    res = run(records, rounds, unchanged, phase_seconds, pairs)
    print(summarize(res, records))


if __name__ == "__main__":
    main(prog_name="python -m lootlab.benchmarks.rebuild")
