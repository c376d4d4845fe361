"""One way to spell a variant on every command: ``--variant/-v NAME``, repeated where a
command takes several.  Older spellings (``profile perf mmap``, ``profile diff A B``,
``serve --backend``, ``report --profile``) keep working for people's scripts and notes, but
each says once on stderr what to type instead, so the docs can show one grammar.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

DEFAULT_VARIANT = "mmap"
_HELP = "client variant (see lootlab.VARIANTS)"

F = TypeVar("F", bound=Callable[..., Any])


def deprecated(old: str, new: str) -> None:
    """One line on stderr: the old spelling and its replacement (the command still runs)."""
    click.echo(f"lootlab: `{old}` is deprecated; use `{new}`", err=True)


def typed(name: str) -> bool:
    """Whether the user gave parameter ``name`` (on the command line or from the
    environment) rather than leaving its default."""
    source = click.get_current_context().get_parameter_source(name)
    return source not in (None, ParameterSource.DEFAULT)


def command_words() -> str:
    """The subcommand path as typed after ``lootlab`` (``profile perf``), for messages."""
    return click.get_current_context().command_path.split(" ", 1)[-1]


class LegacyArgument(click.Argument):
    """A positional argument still accepted but left out of the usage line (it is the old
    spelling; ``--help`` shows only the new one)."""

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return []


def variant_option(*, several: bool = False) -> Callable[[F], F]:
    """``--variant/-v NAME``: one (default mmap) or, with ``several``, a repeatable list."""
    if several:
        return click.option("--variant", "-v", "variants", multiple=True, metavar="NAME",
                            help=f"{_HELP}; repeat for each variant")
    return click.option("--variant", "-v", "variant", default=DEFAULT_VARIANT,
                        show_default=True, metavar="NAME", help=_HELP)


def legacy_variants(*, several: bool = False) -> Callable[[F], F]:
    """The positional variant(s) of the old spelling, hidden from the usage line."""
    return click.argument("legacy_variants", nargs=-1 if several else 1, required=False,
                          cls=LegacyArgument)


def _old_and_new(names: tuple[str, ...]) -> tuple[str, str]:
    words = command_words()
    return (f"{words} {' '.join(names)}",
            f"{words} {' '.join(f'--variant {n}' for n in names)}")


def one_variant(variant: str, legacy: str | None) -> str:
    """The variant from ``--variant``, or from the old positional spelling (with a notice)."""
    if legacy is None:
        return variant
    if typed("variant"):
        raise click.UsageError(f"give the variant once: --variant {variant} or {legacy}, "
                               f"not both")
    deprecated(*_old_and_new((legacy,)))
    return legacy


def several_variants(variants: tuple[str, ...], legacy: tuple[str, ...], *,
                     exactly: int | None = None) -> tuple[str, ...]:
    """The variants from repeated ``--variant``, or from the old positional spelling (with
    a notice); ``exactly``: how many the command compares."""
    if legacy and variants:
        raise click.UsageError("give the variants one way: --variant NAME for each")
    given = legacy or variants
    if exactly is not None and len(given) != exactly:
        raise click.UsageError(f"{command_words()} takes exactly {exactly} --variant options "
                               f"(got {len(given)})")
    if not given:
        raise click.UsageError(f"{command_words()} needs at least one --variant NAME")
    if legacy:      # only a spelling that would run gets a notice
        deprecated(*_old_and_new(legacy))
    return given


def renamed_option(new: str, old: str, value: Any, old_value: Any) -> Any:
    """The value of option ``new``, or of its deprecated alias ``old`` (with a notice);
    ``new``/``old`` are the flags as typed (``--size``, ``--profile``)."""
    if old_value is None:
        return value
    dest = new.lstrip("-").replace("-", "_")
    if typed(dest):
        raise click.UsageError(f"{old} is the old name of {new}: give one of them")
    words = command_words()
    deprecated(f"{words} {old} {old_value}", f"{words} {new} {old_value}")
    return old_value
