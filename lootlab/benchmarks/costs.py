"""``python -m lootlab.benchmarks.costs``: what each variant costs per op, one table, one run,
every variant, the default world.

Per variant: CPU µs per op (untraced run), memray allocations and bytes per op inside the
measured loop, memray peak heap, RssAnon, GC pause p99/max, and the flame graph's top three
buckets.  Everything is measured in this one run on this machine; compare rows with each
other (ratios), not with the story's absolute numbers.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click
import pandas as pd
from tqdm.auto import tqdm

from ..console import handle_errors
from ..paths import ensure_default_index, results_dir
from ..profiling import bucket_shares, copy_share, flamegraph, gc_pauses, memory, top_buckets


def _variants() -> list[str]:
    from ..variants import VARIANTS
    return list(VARIANTS)


def measure(variants: list[str], *, duration: float = 5.0, queries: int = 500,
            gc_queries: int = 2000, rate: int = 250) -> pd.DataFrame:
    rows = []
    for v in tqdm(variants, desc="measuring variants", unit="variant"):
        flame = flamegraph(v, duration=duration, native=True, rate=rate)
        shares = bucket_shares([flame]).iloc[0]
        mem = memory(v, queries=queries, flamegraph=False)
        gcs = gc_pauses(v, queries=gc_queries).summary()
        top = top_buckets(shares, 3)
        rows.append({
            "variant": v,
            "cpu_us_per_op": mem.cpu_us_per_op,
            "allocs_per_op": mem.allocations_per_op,
            "bytes_per_op": mem.bytes_per_op,
            "peak_heap_MiB": mem.peak_heap / 2**20,
            "RssAnon_MiB": mem.proc.get("RssAnon", 0) / 2**20,
            "dRssAnon_MiB": mem.proc_delta.get("RssAnon", 0) / 2**20,
            "gc_per_kop": gcs["gen0_per_kop"] + gcs["gen1_per_kop"] + gcs["gen2_per_kop"],
            "gc_p99_ms": gcs["pause_p99_ms"], "gc_max_ms": gcs["pause_max_ms"],
            "copy_share": copy_share(flame.work_stacks),
            "top_buckets": ", ".join(f"{b} {100 * s:.0f}%" for b, s in top),
            "flame_samples": sum(flame.work_stacks.values()),
        })
    return pd.DataFrame(rows)


def environment() -> dict[str, str]:
    """What the numbers depend on: machine, versions, commit, and how busy the machine was."""
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    env = {"python": platform.python_version(), "cpus": str(os.cpu_count()),
           "machine": platform.machine(),
           "loadavg_1m": f"{os.getloadavg()[0]:.2f}"}
    for pkg in ("py-spy", "memray", "grpcio", "protobuf", "numpy"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = "-"
    try:
        env["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False,
                                       capture_output=True, text=True,
                                       cwd=Path(__file__).parent).stdout.strip() or "-"
    except OSError:
        env["commit"] = "-"
    return env


@click.command(cls=handle_errors("python -m lootlab.benchmarks.costs"), help=__doc__)
@click.option("--variants", help="comma-separated (default: every variant)")
@click.option("--duration", type=float, default=5.0, help="py-spy seconds per variant")
@click.option("--rate", type=int, default=250, help="py-spy samples per second")
@click.option("--queries", type=int, default=500, help="memray ops per variant")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="CSV/JSON output directory")
def main(variants: str | None, duration: float, rate: int, queries: int,
         out: Path | None) -> None:
    names = variants.split(",") if variants else _variants()
    ensure_default_index()
    t0 = time.time()
    env_before = environment()
    table = measure(names, duration=duration, queries=queries, rate=rate)
    out = out or results_dir() / "bench-costs"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "costs.csv", index=False)
    env = {**env_before, "loadavg_1m_after": f"{os.getloadavg()[0]:.2f}",
           "duration_s": str(duration), "pyspy_rate": str(rate),
           "memray_queries": str(queries)}
    (out / "costs.json").write_text(json.dumps({"environment": env,
                                                  "rows": table.to_dict("records")}, indent=1))
    print(" ".join(f"{k}={v}" for k, v in env.items()))
    with pd.option_context("display.width", 250, "display.max_columns", 30,
                           "display.max_colwidth", 60):
        print(table.drop(columns=["flame_samples"]).round(2).to_string(index=False))
    if "mmap" in set(table["variant"]):
        mm = table.set_index("variant").loc["mmap"]
        for v in table["variant"]:
            if v == "mmap":
                continue
            r = table.set_index("variant").loc[v]
            print(f"{v}: {r.cpu_us_per_op / mm.cpu_us_per_op:.1f}x the CPU per op of mmap, "
                  f"{r.allocs_per_op / max(mm.allocs_per_op, 1e-9):.2f}x its allocations per op")
    t = table.set_index("variant")["cpu_us_per_op"]
    if {"grpc-tls-pooled", "grpc-plain"} <= set(t.index):
        # grpcio ships stripped: BoringSSL frames are bare addresses inside cygrpc, so the TLS
        # cost is estimated as the difference between two variants that differ only in TLS
        print(f"TLS cost estimate (grpc-tls-pooled - grpc-plain): "
              f"{t['grpc-tls-pooled'] - t['grpc-plain']:.0f} us CPU per op "
              f"({100 * (1 - t['grpc-plain'] / t['grpc-tls-pooled']):.0f} % of pooled)")
    if {"grpc-tls-fresh", "grpc-tls-pooled"} <= set(t.index):
        print(f"new channel + handshake per request (fresh - pooled): "
              f"{t['grpc-tls-fresh'] - t['grpc-tls-pooled']:.0f} us CPU per op")
    print(f"({time.time() - t0:.0f} s; wrote {out / 'costs.csv'})", file=sys.stderr)


if __name__ == "__main__":
    main(prog_name="python -m lootlab.benchmarks.costs")
