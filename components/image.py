"""The container image every component runs in, and the decorator that builds the components.

The image is the project's (``Dockerfile``): ``cplvad`` with the ``pipelines`` extra, so kfp is already
installed and the components do not pip-install anything at start-up (``install_kfp_package=False``).
Choose it with ``CPLVAD_IMAGE`` before importing ``components``, or later with :func:`set_image`
(``python -m pipelines compile --image ...`` does that).
"""

import os
from collections.abc import Callable

from kfp import dsl

from cplvad import __version__

DEFAULT_IMAGE = f"ghcr.io/cplvad/cplvad:{__version__}"
IMAGE = os.environ.get("CPLVAD_IMAGE") or DEFAULT_IMAGE

_REGISTERED: list = []


def component(func: Callable) -> dsl.component:
    """A lightweight Python component in the project image. The function body imports what it needs:
    KFP ships only the function's source to the container, not this module."""
    comp = dsl.component(func, base_image=IMAGE, install_kfp_package=False)
    _REGISTERED.append(comp)
    return comp


def set_image(image: str) -> None:
    """Point every component at ``image`` (e.g. ``registry.example.com/team/cplvad:0.1.0``)."""
    for comp in _REGISTERED:
        comp.component_spec.implementation.container.image = image


def current_image() -> str:
    return _REGISTERED[0].component_spec.implementation.container.image if _REGISTERED else IMAGE
