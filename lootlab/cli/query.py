from __future__ import annotations

from pathlib import Path

import click

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
    import pandas as pd  # heavy: only when querying

    from ..index import open_index
    from ..loadgen.units import plural
    from ..records import FIELDS

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
        click.echo(f"{plural(len(frame), 'record')} from {index} "
                   f"(generation {idx.generation})")
        echo_table(frame, max_rows=limit)
        if frame.empty:
            centre = args[:3] if kind != "box" else \
                tuple((a + b) // 2 for a, b in zip(args[:3], args[3:]))
            click.echo(_hint(idx, index, centre))


def _hint(idx, index: Path, at: tuple[int, ...]) -> str:
    """Where the nearest loot is, as a query that finds it (an empty answer teaches little)."""
    if len(idx) == 0:
        return "hint: this index holds no records"
    x0, y0, z0 = at
    x, y, z = (int(v) for v in idx.knn(x0, y0, z0, 1)[["x", "y", "z"]][0])
    away = ((x - x0) ** 2 + (y - y0) ** 2 + (z - z0) ** 2) ** 0.5
    return (f"hint: the nearest record is at {x} {y} {z}, {away:,.0f} blocks away; try "
            f"`lootlab query {index} near {x} {y} {z} 16`")
