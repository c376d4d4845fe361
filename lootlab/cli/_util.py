"""Small helpers shared by the CLI commands: tables, human-readable sizes, output checks.

The rule for every output option: missing parent directories are created; an output that
cannot be written is refused before any work starts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
import pandas as pd

from ..errors import LootlabError


def os_error_text(exc: OSError) -> str:
    """One line for an OSError: what failed and on which path (no errno tuple)."""
    what = exc.strerror or str(exc) or type(exc).__name__
    names = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    return f"{' -> '.join(names)}: {what}" if names else what


def writable_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) and prove a file can be written in it, so a run
    that takes minutes cannot fail at the end on a read-only or full disk."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".lootlab-write-check-", dir=path)
        try:
            os.write(fd, b"x")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise LootlabError(f"cannot write output to {path}: {os_error_text(exc)}") from None
    return path


def writable_file(path: Path) -> Path:
    """The same check for an output file: its directory (created if missing) is writable."""
    writable_dir(path.parent if str(path.parent) else Path("."))
    return path


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
