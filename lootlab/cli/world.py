from __future__ import annotations

import time
from pathlib import Path

import click

from ..paths import DEFAULT_RECORDS, DEFAULT_SEED, default_world_path
from ._util import human_bytes, writable_file


@click.command("world")
@click.option("--records", "-n", type=click.IntRange(min=0), default=DEFAULT_RECORDS,
              show_default=True, help="How many loot records (distinct block positions).")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Parquet (or .csv) file to write, missing directories created "
                   "[default: data/world.parquet].")
def command(records: int, seed: int, out: Path | None) -> None:
    """Generate a deterministic synthetic loot world and write it as Parquet."""
    from ..tables import write_table  # numpy and pandas: only when writing
    from ..world import generate_world

    out = writable_file(out or default_world_path())
    started = time.perf_counter()
    write_table(generate_world(records, seed), out)
    click.echo(f"wrote {records:,} records (seed {seed}) to {out} "
               f"({human_bytes(out.stat().st_size)}, {time.perf_counter() - started:.2f} s)")
