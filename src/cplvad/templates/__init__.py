"""HTML pages from the Jinja2 templates kept in this folder, autoescaped: a value is text, never markup.

Every ``{{ }}`` value that is text goes through ``cplvad.io.printable`` first, so a file name that is not
UTF-8 (held as surrogate escapes) shows as ``\\xNN`` instead of making the page unencodable.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from cplvad.io import printable


def _finalize(value: Any) -> Any:
    return printable(value) if isinstance(value, str) and not isinstance(value, Markup) else value


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("cplvad", "templates"),
        autoescape=True,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    """The template file ``template`` of this folder filled with ``context``."""
    return _environment().get_template(template).render(**context)


def asset(name: str) -> Markup:
    """A static file of this folder (our own CSS or JavaScript), to inline into a page as it is."""
    return Markup(resources.files(__name__).joinpath(name).read_text(encoding="utf-8"))
