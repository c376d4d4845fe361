"""How a lootlab command fails on a terminal: an error lootlab expects (``LootlabError``,
any ``OSError``) is one line on stderr and exit 1, Ctrl-C exit 130, never a traceback.

Shared by the ``lootlab`` CLI and every stand-alone ``python -m lootlab.<module>`` entry
point (benchmarks, ``s3local``, ``remote.wrk``, ``workload``), which is why it lives below
the CLI: a library module must never import ``lootlab.cli``.  Imported by ``lootlab --help``,
so it stays as light as click.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .errors import LootlabError


def os_error_text(exc: OSError) -> str:
    """One line for an OSError: what failed and on which path (no errno tuple)."""
    what = exc.strerror or str(exc) or type(exc).__name__
    names = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    return f"{' -> '.join(names)}: {what}" if names else what


def fail(prog: str, exc: BaseException) -> None:
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
            fail(self.prog, exc)


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
