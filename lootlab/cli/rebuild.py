from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..paths import default_index_path, default_world_path

if TYPE_CHECKING:
    from ..rebuild import CycleResult, RebuildStatus


def _line(result: CycleResult, status: RebuildStatus) -> str:
    stamp = time.strftime("%H:%M:%S")
    if result.outcome == "built":
        what = (f"built generation {result.generation}: {result.records:,} records "
                f"({result.updates_applied:,} updates) in {result.seconds:.3f} s "
                f"(fetch {result.fetch_seconds:.3f} s, build+publish {result.build_seconds:.3f} s)")
    elif result.outcome == "unchanged":
        what = (f"unchanged (generation {result.generation}, version {result.source_version}), "
                f"checked in {result.seconds * 1000:.1f} ms")
    else:
        if result.generation is None:
            serving = "no index published by this worker yet"
        elif status.last_success is not None:
            serving = f"serving generation {result.generation}, stale {status.staleness:.1f} s"
        else:
            serving = f"serving generation {result.generation}, never confirmed by this worker"
        what = f"FAILED ({status.consecutive_failures} in a row; {serving}): {result.error}"
    return f"{stamp} {what}"


@click.command("rebuild")
@click.option("--source", "source", default=None, metavar="PATH|s3://BUCKET/KEY",
              help="Loot table: a .parquet/.csv file, a directory of them, or an S3 object "
                   "[default: the default world, created on first use].")
@click.option("--index", "index", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Index file to keep published [default: the default index].")
@click.option("--interval", type=click.FloatRange(min=0.01), default=60.0, show_default=True,
              help="Seconds between checks of the source.")
@click.option("--once", is_flag=True, help="Run one cycle and exit (exit 1 if it failed).")
@click.option("--duration", type=click.FloatRange(min=0), default=None,
              help="Stop after this many seconds [default: run until Ctrl-C].")
@click.option("--endpoint-url", default=None,
              help="S3-protocol endpoint (e.g. a loopback server) [default: AWS_ENDPOINT_URL or AWS].")
@click.option("--read-timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="S3 read timeout, seconds.")
def command(source: str | None, index: Path | None, interval: float, once: bool,
            duration: float | None, endpoint_url: str | None, read_timeout: float) -> None:
    """Keep an index rebuilt from a local or S3 loot table (background-worker loop)."""
    from ..rebuild import serve  # numpy and pandas: only when rebuilding

    if source is None:
        from ..paths import ensure_default_index
        ensure_default_index()
        source = str(default_world_path())
    index = index or default_index_path()
    options = {}
    if source.startswith("s3://"):
        options = {"endpoint_url": endpoint_url, "read_timeout": read_timeout}
    elif endpoint_url:
        raise click.UsageError("--endpoint-url only applies to an s3:// source")
    from ..sources import open_source
    src = open_source(source, **options)
    if not once:
        click.echo(f"rebuilding {index} from {src.description} every {interval:g} s "
                   f"(Ctrl-C to stop)", err=True)
    def report(result: CycleResult, status: RebuildStatus) -> None:
        if not (once and result.outcome == "failed"):   # --once: the error line says it
            click.echo(_line(result, status))

    status = serve(src, index, interval=interval, once=once, duration=duration, report=report)
    if not once:
        serving = ("no index published" if status.generation is None
                   else f"generation {status.generation}")
        click.echo(f"stopped: {status.cycles} cycles, {status.builds} builds, "
                   f"{status.failures} failures, {serving}", err=True)
