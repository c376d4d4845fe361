"""Small helpers shared by the CLI commands: error handling, lazy command loading, tables,
human-readable sizes, output checks.  Imported by ``lootlab --help``, so it stays light.

The rule for every output option: missing parent directories are created; an output that
cannot be written is refused before any work starts.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import click

from ..errors import LootlabError

if TYPE_CHECKING:
    import pandas as pd


def _fail(prog: str, exc: BaseException) -> None:
    """One line on stderr and the exit status, for the errors lootlab expects."""
    if isinstance(exc, KeyboardInterrupt):
        click.echo(f"{prog}: interrupted", err=True)
        sys.exit(130)
    text = os_error_text(exc) if isinstance(exc, OSError) else str(exc)
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])   # str(KeyError) quotes its message
    click.echo(f"{prog}: error: {text}", err=True)
    sys.exit(1)


class ErrorHandling:
    """Mixin for a click command or group: a ``LootlabError`` or ``OSError`` is a one-line
    message and exit 1, Ctrl-C exit 130, never a traceback (for ``lootlab`` and every
    stand-alone ``python -m`` entry point alike)."""

    prog = "lootlab"   # the name the message starts with (``python -m`` says ``__main__``)
    errors: tuple[type[BaseException], ...] = (LootlabError, OSError)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = kwargs.setdefault("context_settings", {})
        settings.setdefault("help_option_names", ["-h", "--help"])   # as argparse had
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except (*self.errors, KeyboardInterrupt) as exc:
            _fail(self.prog, exc)


class Command(ErrorHandling, click.Command):
    """A command with lootlab's error handling."""


class Group(ErrorHandling, click.Group):
    """A group with lootlab's error handling."""


def handle_errors(prog: str, *also: type[Exception], group: bool = False) -> type[click.Command]:
    """``@click.command(cls=handle_errors("lootlab.s3local"))``: a stand-alone ``python -m``
    entry point that reports errors as ``lootlab`` does, under its own name (``also``: more
    exception types it reports the same way)."""
    return type("Command", (Group if group else Command,),
                {"prog": prog, "errors": (*ErrorHandling.errors, *also)})


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
