"""Small helpers shared by the CLI commands: lazy command loading, deprecated spellings, tables,
human-readable sizes, output checks.  Imported by ``lootlab --help``, so it stays light.

The rule for every output option: missing parent directories are created; an output that
cannot be written is refused before any work starts.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import click

from ..console import Group, os_error_text
from ..errors import LootlabError

if TYPE_CHECKING:
    import pandas as pd


class LazyChoice(click.Choice):
    """A ``click.Choice`` whose choices are computed on first use (the variant names need
    an entry-point scan of every installed package, too slow for ``lootlab --help``)."""

    def __init__(self, choices: Callable[[], Sequence[str]], case_sensitive: bool = True) -> None:
        self._load = choices
        self._choices: tuple[str, ...] | None = None
        self.case_sensitive = case_sensitive

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        if self._choices is None:
            self._choices = tuple(self._load())
        return self._choices

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        self._choices = tuple(value)


class LazyGroup(Group):
    """A group whose subcommands are named up front as ``(name, "module:attribute")`` and
    imported only when one runs or ``--help`` lists them: start-up stays as fast as click."""

    def __init__(self, *args: Any, commands: Sequence[tuple[str, str]] = (),
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        module, _, attr = self.lazy_commands[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy_commands[cmd_name]} is not a click command")
        self.add_command(command, cmd_name)
        return command


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


def readable_times(df: pd.DataFrame, empty: str = "–") -> pd.DataFrame:
    """``df`` with its microsecond columns (``*_us``) in the one unit that fits all of them
    (``loadgen.units.pick_unit`` over their range, so 2,407,530 us reads 2.41 s), renamed
    to say it (``latency_s``), three significant figures; NaN shows as ``empty``."""
    import math

    from ..loadgen.units import pick_unit, plain_number
    times = [c for c in df.columns if str(c).endswith("_us")]
    unit = pick_unit(*(df[c].to_numpy(dtype=float) for c in times), log=True)
    out = df.copy()
    for c in times:
        out[c] = [empty if not math.isfinite(v) else plain_number(unit.scale(v))
                  for v in df[c].to_numpy(dtype=float)]
    return out.rename(columns={c: f"{str(c)[:-3]}_{unit.name}" for c in times})


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"
