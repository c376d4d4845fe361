from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from ..index import open_index
from ..records import FIELDS
from ._util import echo_table

_USAGE = {"get": "X Y Z", "near": "X Y Z R", "box": "X0 Y0 Z0 X1 Y1 Z1", "knn": "X Y Z K"}


@click.command("query", context_settings={"ignore_unknown_options": True})
@click.argument("index", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("kind", type=click.Choice(list(_USAGE)))
@click.argument("args", nargs=-1, type=int)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Rows to print.")
def command(index: Path, kind: str, args: tuple[int, ...], limit: int) -> None:
    """Query an index: get X Y Z | near X Y Z R | box X0 Y0 Z0 X1 Y1 Z1 | knn X Y Z K."""
    want = len(_USAGE[kind].split())
    if len(args) != want:
        raise click.UsageError(f"{kind} takes {want} integers: {kind} {_USAGE[kind]}")
    with open_index(index, verify=True) as idx:
        if kind == "get":
            rec = idx.get(*args)
            frame = pd.DataFrame([rec._asdict()]) if rec else pd.DataFrame(columns=FIELDS)
        elif kind == "near":
            frame = idx.near(*args).to_pandas()
        elif kind == "box":
            frame = idx.box(tuple(args[:3]), tuple(args[3:])).to_pandas()
        else:
            frame = idx.knn(*args).to_pandas()
        click.echo(f"{len(frame):,} record(s) from {index} (generation {idx.generation})")
        echo_table(frame, max_rows=limit)
