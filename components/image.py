"""The container image every component runs in, and the decorator that builds the components.

The image is the project's (``Dockerfile``): ``cplvad`` with the ``pipelines`` extra, so kfp is already
installed and the components do not pip-install anything at start-up (``install_kfp_package=False``).

A component ships its function body from the checkout that compiles the pipeline and runs it against the
library inside the image, so the two must come from the same commit, and the reference must not move
(a tag that CI overwrites would also let Kubeflow's cache and ``IfNotPresent`` pulls reuse old code).
The default is therefore the tag CI pushes for the checkout's commit, ``ghcr.io/cplvad/cplvad:sha-<commit>``;
another image is given by digest (``...@sha256:<digest>``) or by such a commit tag, with ``CPLVAD_IMAGE``
before importing ``components`` or later with :func:`set_image` (``python -m pipelines compile --image``).
"""

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from kfp import dsl

from cplvad import __version__
from cplvad.errors import ConfigError

REPOSITORY = "ghcr.io/cplvad/cplvad"
CHECKOUT = Path(__file__).resolve().parents[1]
PINNED = re.compile(r"\S+@sha256:[0-9a-f]{64}|\S+:sha-[0-9a-f]{7,40}")
"""An image reference that cannot move: a digest, or the commit tag CI pushes (``:sha-<commit>``)."""


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=CHECKOUT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


SOURCE_COMMIT = _git("rev-parse", "HEAD")
"""The commit of the checkout the components come from (None outside a git checkout)."""
SOURCE_DIRTY = bool(_git("status", "--porcelain", "--untracked-files=no", "--", "components", "src"))
"""Whether the components or the library differ from that commit in this checkout."""
DEFAULT_IMAGE = f"{REPOSITORY}:sha-{SOURCE_COMMIT}" if SOURCE_COMMIT else f"{REPOSITORY}:{__version__}"
IMAGE = os.environ.get("CPLVAD_IMAGE") or DEFAULT_IMAGE

_REGISTERED: list = []


def component(func: Callable) -> dsl.component:
    """A lightweight Python component in the project image. The function body imports what it needs:
    KFP ships only the function's source to the container, not this module."""
    comp = dsl.component(func, base_image=IMAGE, install_kfp_package=False)
    _REGISTERED.append(comp)
    return comp


def set_image(image: str) -> None:
    """Point every component at ``image`` (e.g. ``registry.example.com/team/cplvad@sha256:...``)."""
    for comp in _REGISTERED:
        comp.component_spec.implementation.container.image = image


def current_image() -> str:
    return _REGISTERED[0].component_spec.implementation.container.image if _REGISTERED else IMAGE


def check_pinned(image: str) -> None:
    """Refuse an image reference that can move (a version tag such as ``:0.1.0``, ``:latest``)."""
    if not PINNED.fullmatch(image):
        raise ConfigError(
            f"image {image!r} is not pinned: give it by digest (<name>@sha256:<64 hex digits>) or by the commit tag "
            "CI pushes (<name>:sha-<commit>), so that the pods run the library of the commit the components come "
            f"from (this checkout: {SOURCE_COMMIT or 'not a git checkout'})"
        )
