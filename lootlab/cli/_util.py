"""Small helpers shared by the CLI commands: tables and human-readable sizes."""

from __future__ import annotations

import click
import pandas as pd


def echo_table(df: pd.DataFrame, *, max_rows: int = 50) -> None:
    """Print a DataFrame as a plain aligned table, saying how many rows were left out."""
    if df.empty:
        click.echo("(no rows)")
        return
    shown = df.head(max_rows)
    click.echo(shown.to_string(index=False))
    if len(df) > max_rows:
        click.echo(f"... {len(df) - max_rows} more rows ({len(df)} in all)")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"
