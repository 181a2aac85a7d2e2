"""HTML pages from the Jinja2 templates kept in this folder, autoescaped: a value is text, never markup."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("cplvad", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    """The template file ``template`` of this folder filled with ``context``."""
    return _environment().get_template(template).render(**context)
