"""Optional dependencies, imported where a command needs them; a missing one names the extra to install.

``cplvad[tracking]`` (MLflow: ``--track``, ``track``, ``promote``, ``models:/`` URIs), ``cplvad[s3]``
(s3fs: ``s3://`` sources and outputs; boto3: MLflow's S3 artifact store and the lock of an ``s3://``
prefix), ``cplvad[pipelines]`` (Kubeflow and DVC, with both of the above), ``cplvad[serving]`` (KServe: the
model server of ``python -m cplvad.kserve_predictor``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from cplvad.errors import CplvadError

EXTRA_OF = {"mlflow": "tracking", "s3fs": "s3", "boto3": "s3", "botocore": "s3", "kserve": "serving"}


def require(module: str, needed_for: str) -> ModuleType:
    """``importlib.import_module(module)``, or a CplvadError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise CplvadError(
            f"{needed_for} needs the Python package {top!r}, which is not installed here; "
            f"install it with: pip install 'cplvad[{EXTRA_OF[top]}]'"
        ) from None
