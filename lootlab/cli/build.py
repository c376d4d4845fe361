from __future__ import annotations

from pathlib import Path

import click

from ._util import human_bytes


@click.command("build")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--generation", type=click.IntRange(min=0), default=None,
              help="Generation to stamp [default: the existing index's + 1].")
def command(source: Path, out: Path, generation: int | None) -> None:
    """Build an index file OUT from a loot table SOURCE (.parquet or .csv)."""
    from ..build import build_index  # numpy and pandas: only when building

    rep = build_index(source, out, generation=generation)
    click.echo(f"built {rep.path}: {rep.records:,} records from {rep.input_rows:,} rows "
               f"({rep.duplicates_replaced:,} duplicates replaced), {human_bytes(rep.bytes)}, "
               f"generation {rep.generation}, crc32 {rep.crc32:#010x}, {rep.seconds:.3f} s")
