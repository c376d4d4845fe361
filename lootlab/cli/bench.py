from __future__ import annotations

from pathlib import Path

import click

from ._spelling import variant_option
from ._util import echo_table, readable_times, writable_dir


@click.command("bench")
@variant_option()
@click.option("--rate", "-r", type=click.FloatRange(min=0, min_open=True),
              help="Offered requests/s (open loop; default 1000).")
@click.option("--closed", "closed", type=click.IntRange(min=1), metavar="C",
              help="Closed loop with C workers instead (for comparison only).")
@click.option("--schedule", "-s", type=click.Choice(["constant", "poisson", "ramp", "spike"]),
              default="constant", show_default=True)
@click.option("--duration", "-d", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, help="Seconds measured (after the warm-up).")
@click.option("--processes", "-p", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=1, show_default=True,
              help="Sender threads per process (helps only clients that release the GIL).")
@click.option("--warmup", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds sent first and discarded.")
@click.option("--think-time", type=click.FloatRange(min=0), default=0.0,
              help="Closed loop: seconds each worker waits between requests.")
@click.option("--factor", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, help="Spike: burst rate as a multiple of --rate.")
@click.option("--spin-us", type=click.FloatRange(min=0), default=None,
              help="Spin (not sleep) this long before each send [default: learned from "
                   "the sender's own oversleeps, at most 1 ms]; 0 never spins.")
@click.option("--cpu-limit", type=float, default=None, metavar="CORES",
              help="Run the client side (generator + client, spawned) in a cgroup with this "
                   "CPU quota, like a container's limit; prints its throttling.")
@click.option("--rtt-ms", type=float, default=None,
              help="Remote variants: added round trip through a delaying proxy (ms).")
@click.option("--jitter-ms", type=float, default=None, help="Spread of that delay (ms).")
@click.option("--bandwidth-mbit", type=float, default=None,
              help="Per-direction link rate through the proxy (Mbit/s).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory, created if missing: run.json + one subdirectory for the "
                   "result (summary.json, latency.hlog); `lootlab compare` reads it "
                   "(default data/results/runs/...).")
def command(variant: str, rate: float | None, closed: int | None, schedule: str,
            duration: float, processes: int, concurrency: int, warmup: float,
            think_time: float, factor: float, spin_us: float | None,
            cpu_limit: float | None, rtt_ms: float | None, jitter_ms: float | None,
            bandwidth_mbit: float | None, seed: int, out: Path | None) -> None:
    """Load a variant with an open-loop schedule; print percentiles and the health verdict."""
    import time

    from ..experiments.bench import bench
    from ..loadgen.limits import check_limit

    if rate is not None and closed is not None:
        raise click.UsageError("give --rate (open loop) or --closed (closed loop), not both")
    if out is None:
        from ..paths import results_dir
        kind = "closed" if closed is not None else schedule
        out = results_dir() / "runs" / f"{variant}-{kind}-{time.strftime('%Y%m%dT%H%M%S')}"
    check_limit(cpu_limit)   # bad values: one line, before anything is written
    writable_dir(out)        # before the run, not after it
    done = bench(variant, out, rate=rate, closed=closed, schedule=schedule, duration=duration,
                 processes=processes, concurrency=concurrency, warmup=warmup,
                 think_time=think_time, factor=factor, seed=seed, spin_us=spin_us,
                 cpu_limit=cpu_limit, rtt_ms=rtt_ms, jitter_ms=jitter_ms,
                 bandwidth_mbit=bandwidth_mbit)
    if done.note:
        click.echo(done.note, err=True)
    result, where = done.result, done.saved
    click.echo(result.describe())
    click.echo("")
    table = result.table().reset_index(names="percentile")
    echo_table(readable_times(table))
    if table.filter(like="_us").isna().to_numpy().any():
        click.echo("– too few samples: under 10 lie above that percentile, too few to "
                   "estimate it (n is the samples measured)")
    if closed is None and schedule in ("spike", "ramp"):
        click.echo("\nper second (by intended send time):")
        echo_table(readable_times(result.timeline().drop(columns="variant")), max_rows=120)
    click.echo(f"\nsaved to {where} (compare two runs: lootlab compare RUN_A RUN_B)")
