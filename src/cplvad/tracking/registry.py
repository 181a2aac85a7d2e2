"""Model registry: register the evaluated final model as ``candidate``, promote it to ``champion`` only when
it beats the current champion on the same dataset, and resolve ``models:/...`` URIs to a model directory."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import yaml

from cplvad.config import Config
from cplvad.errors import CplvadError
from cplvad.tracking.runs import setup_mlflow

CANDIDATE, CHAMPION = "candidate", "champion"
MODEL_ARTIFACT = "model"
PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
PACKAGE_DIR = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "pydantic", "pyyaml", "click", "rich", "tqdm",
                    "matplotlib", "open_clip_torch", "mlflow")


def _requirements() -> list[str]:
    reqs = []
    for name in RUNTIME_PACKAGES:
        try:
            reqs.append(f"{name}=={importlib.metadata.version(name).split('+')[0]}")
        except importlib.metadata.PackageNotFoundError:
            reqs.append(name)
    return reqs


def register_model(
    model_dir: str | Path, run_id: str, dataset_name: str, metrics: dict[str, float | None], config: Config
) -> str:
    """Log the model directory as a pyfunc model in ``run_id``, register it, alias it ``candidate``.

    Returns the new version. The dataset and every metric are stored as version tags (for ``promote``).
    """
    import mlflow
    from mlflow import MlflowClient

    setup_mlflow(config)
    name = config.tracking.registered_model
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(PYFUNC_FILE),
            artifacts={"model_dir": str(model_dir)},
            code_paths=[str(PACKAGE_DIR)],
            pip_requirements=_requirements(),
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_registered_model_alias(name, CANDIDATE, version)
    client.set_model_version_tag(name, version, "dataset", dataset_name)
    for key, value in metrics.items():
        if value is not None:
            client.set_model_version_tag(name, version, f"metric.{key}", str(value))
    return version


@dataclass
class Promotion:
    promoted: bool
    reason: str
    candidate: str | None
    champion: str | None


def promote(config: Config, metric: str = "frame_auc_binary") -> Promotion:
    """Give the ``candidate`` the ``champion`` alias when it beats the champion on the same dataset."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    setup_mlflow(config)
    name = config.tracking.registered_model
    client = MlflowClient()

    def by_alias(alias: str):
        try:
            return client.get_model_version_by_alias(name, alias)
        except MlflowException:
            return None

    cand = by_alias(CANDIDATE)
    if cand is None:
        raise CplvadError(f"registered model {name!r} has no '{CANDIDATE}' version; run the pipeline (or `cplvad track`) first")
    champ = by_alias(CHAMPION)
    key = f"metric.{metric}"
    if key not in cand.tags:
        raise CplvadError(f"{name} version {cand.version} has no {metric!r}; recorded: "
                          f"{sorted(k[7:] for k in cand.tags if k.startswith('metric.'))}")
    value = float(cand.tags[key])
    if champ is None:
        client.set_registered_model_alias(name, CHAMPION, cand.version)
        return Promotion(True, f"no champion yet: version {cand.version} ({metric} {value:.2f}) becomes champion",
                         cand.version, cand.version)
    if champ.version == cand.version:
        return Promotion(False, f"version {cand.version} is already the champion", cand.version, champ.version)
    if champ.tags.get("dataset") != cand.tags.get("dataset"):
        return Promotion(False, f"not comparable: the champion (version {champ.version}) was evaluated on "
                         f"{champ.tags.get('dataset')!r}, the candidate on {cand.tags.get('dataset')!r}; "
                         "champion kept", cand.version, champ.version)
    best = float(champ.tags.get(key, "-inf"))
    if value > best:
        client.set_registered_model_alias(name, CHAMPION, cand.version)
        return Promotion(True, f"version {cand.version} beats champion version {champ.version} on {metric}: "
                         f"{value:.2f} > {best:.2f}; promoted", cand.version, cand.version)
    return Promotion(False, f"version {cand.version} does not beat champion version {champ.version} on {metric}: "
                     f"{value:.2f} <= {best:.2f}; champion kept", cand.version, champ.version)


def resolve_model(model: str | Path, config: Config) -> Path:
    """A model directory for a path, or for an MLflow URI such as ``models:/cplvad@champion``."""
    text = str(model)
    if not text.startswith(("models:/", "runs:/")):
        return Path(model)
    import mlflow

    setup_mlflow(config)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text))
    except Exception as exc:  # MLflow raises several types for unknown names/aliases
        raise CplvadError(f"cannot fetch {text} from the MLflow registry ({exc})") from None
    try:
        mlmodel = yaml.safe_load((local / "MLmodel").read_text())
        model_dir = local / mlmodel["flavors"]["python_function"]["artifacts"]["model_dir"]["path"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        raise CplvadError(f"{text} is not a cplvad model (its MLmodel names no 'model_dir' artifact)") from None
    return model_dir
