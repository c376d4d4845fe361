"""The ``lootlab`` command.  Each subcommand lives in its own module in this package,
exposes a ``click`` command named ``command``, and calls one library function.

Subcommands are listed in ``COMMANDS`` and imported only when they run or when ``--help``
lists them, so every command module stays light at import time (heavy imports such as
pandas, nbformat or grpc go inside the command function): ``lootlab --help`` starts about
as fast as click itself (``python -m lootlab.benchmarks.startup`` measures it).

Errors lootlab raises on purpose (``LootlabError``), any ``OSError`` (a missing file, a
read-only or full disk) and bad arguments print one line to stderr and exit 1 (2 for
usage errors), never a traceback (``lootlab.console``, shared with the ``python -m``
entry points).  A command takes a variant one way: ``--variant/-v NAME``, repeated where
it takes several; older positional spellings still work and say once on stderr what to
type instead.  Every output option creates missing parent
directories, and commands that run for long check their output is writable first.
"""

from __future__ import annotations

import click

from ._util import LazyGroup

# (name, "module:attribute"), in the order ``lootlab --help`` lists them
COMMANDS: tuple[tuple[str, str], ...] = (
    ("bench", "lootlab.cli.bench:command"),
    ("build", "lootlab.cli.build:command"),
    ("compare", "lootlab.cli.compare:command"),
    ("lab", "lootlab.cli.lab:command"),
    ("profile", "lootlab.cli.profile:command"),
    ("query", "lootlab.cli.query:command"),
    ("rebuild", "lootlab.cli.rebuild:command"),
    ("report", "lootlab.cli.report:command"),
    ("serve", "lootlab.cli.serve:command"),
    ("world", "lootlab.cli.world:command"),
)


@click.group(cls=LazyGroup, commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lootlab")
def main() -> None:
    """lootlab: remote gRPC service or local memory-mapped index? Measure it.

    Every output (--out, an index or table path) gets its missing parent directories
    created; long runs check their output can be written before they start."""


__all__ = ["COMMANDS", "main"]
