"""The ``lootlab`` command.  Each subcommand lives in its own module in this package,
exposes a ``click`` command named ``command``, and calls one library function.

Errors lootlab raises on purpose (``LootlabError``), any ``OSError`` (a missing file, a
read-only or full disk) and bad arguments print one line to stderr and exit 1 (2 for
usage errors), never a traceback.  Every output option creates missing parent
directories, and commands that run for long check their output is writable first.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from ..errors import LootlabError
from ._util import os_error_text


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except LootlabError as exc:
            click.echo(f"lootlab: error: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:
            click.echo(f"lootlab: error: {os_error_text(exc)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("lootlab: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lootlab")
def main() -> None:
    """lootlab: remote gRPC service or local memory-mapped index? Measure it.

    Every output (--out, an index or table path) gets its missing parent directories
    created; long runs check their output can be written before they start."""


def _register() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            main.add_command(command)


_register()
