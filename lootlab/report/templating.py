"""One jinja2 environment for the report's own pages, loaded from package data.

Autoescaping is on for every template: a value from a notebook, the machine or a summary is
text.  Only fragments lootlab built itself (a summary table, an embedded figure) are passed
through ``Markup``, at the call site, so each trusted fragment is visible where it is made.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jinja2 is imported on first render: notebooks import this package early
    import jinja2

PACKAGE = "lootlab.report"
TEMPLATES = "templates"


def template_text(name: str) -> str:
    """The source of one template in ``lootlab/report/templates`` (for foreign loaders)."""
    return files(PACKAGE).joinpath(TEMPLATES, name).read_text(encoding="utf-8")


@cache
def environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader(PACKAGE, TEMPLATES),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def render(name: str, **context: Any) -> str:
    """``name`` rendered with ``context``; a missing variable raises instead of printing ''."""
    return environment().get_template(name).render(**context)
