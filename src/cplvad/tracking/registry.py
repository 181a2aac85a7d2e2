"""Model registry: register the evaluated final model as ``candidate``, promote it to ``champion`` only when
it beats the current champion by a margin on the same data, and resolve ``models:/...`` URIs to a model
directory."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cplvad.config import Config
from cplvad.errors import CplvadError
from cplvad.feedback.metrics import promotion_check
from cplvad.modeling.factory import read_model_config
from cplvad.tracking.runs import mlflow_module, setup_mlflow

CANDIDATE, CHAMPION = "candidate", "champion"
MODEL_ARTIFACT = "model"
PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
PACKAGE_DIR = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "scikit-learn",
    "pydantic",
    "pyyaml",
    "click",
    "rich",
    "tqdm",
    "matplotlib",
    "open_clip_torch",
    "mlflow",
)
VALIDATION_KEY = "validation"
"""``meta.json`` ``extra.validation`` of a model trained with a validation split:
``{"video_auc": <percent>, "videos": <int>, "fraction": <float>}``."""
VALIDATION_TAG = "validation.video_auc"


def _requirements() -> list[str]:
    reqs = []
    for name in RUNTIME_PACKAGES:
        try:
            reqs.append(f"{name}=={importlib.metadata.version(name).split('+')[0]}")
        except importlib.metadata.PackageNotFoundError:
            reqs.append(name)
    return reqs


def register_model(
    model_dir: str | Path,
    run_id: str,
    config: Config,
    *,
    dataset: str,
    metrics: dict[str, float | None],
    data_checksum: str | None = None,
) -> str:
    """Log the model directory as a pyfunc model in ``run_id`` (with its signature and an input example),
    register it and alias it ``candidate``; returns the new version.

    Version tags, read by ``promote``: ``dataset``, ``data_checksum``, ``metric.<name>`` for every metric,
    and ``validation.video_auc`` when the model was trained with a validation split.
    """
    mlflow = mlflow_module()
    from cplvad.tracking.serving import input_example, signature

    setup_mlflow(config)
    name = config.tracking.registered_model
    _, meta = read_model_config(model_dir)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(PYFUNC_FILE),
            artifacts={"model_dir": str(model_dir)},
            code_paths=[str(PACKAGE_DIR)],
            pip_requirements=_requirements(),
            signature=signature(),
            input_example=input_example(meta.feature_dim),
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, CANDIDATE, version)
    tags = {"dataset": dataset, **({"data_checksum": data_checksum} if data_checksum else {})}
    tags.update({f"metric.{k}": str(v) for k, v in metrics.items() if v is not None})
    validation = meta.extra.get(VALIDATION_KEY) or {}
    tags.update({f"validation.{k}": str(v) for k, v in validation.items() if v is not None})
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return version


@dataclass
class Promotion:
    promoted: bool
    reason: str
    candidate: str | None
    champion: str | None


def promote(config: Config, metric: str = "frame_auc_binary") -> Promotion:
    """Give the ``candidate`` the ``champion`` alias when it was evaluated on the same data (equal data
    checksums) and beats the champion by at least ``tracking.promote_min_delta`` points: on the validation
    video AUC when both were trained with a validation split, else on ``metric``."""
    mlflow = mlflow_module()
    setup_mlflow(config)
    name = config.tracking.registered_model
    client = mlflow.MlflowClient()

    def by_alias(alias: str):
        try:
            return client.get_model_version_by_alias(name, alias)
        except mlflow.exceptions.MlflowException:
            return None

    cand = by_alias(CANDIDATE)
    if cand is None:
        raise CplvadError(
            f"registered model {name!r} has no '{CANDIDATE}' version; run the pipeline (or `cplvad track`) first"
        )
    champ = by_alias(CHAMPION)
    key = _decisive_tag(cand, champ, metric)
    if key not in cand.tags:
        raise CplvadError(
            f"{name} version {cand.version} has no {metric!r}; recorded: "
            f"{sorted(k[7:] for k in cand.tags if k.startswith('metric.'))}"
        )
    value = float(cand.tags[key])
    label = key.removeprefix("metric.")

    def result(promoted: bool, reason: str) -> Promotion:
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, cand.version)
        return Promotion(
            promoted, reason, cand.version, cand.version if promoted else champ and champ.version
        )

    if champ is None:
        return result(True, f"no champion yet: version {cand.version} ({label} {value:.2f}) becomes champion")
    if champ.version == cand.version:
        return result(False, f"version {cand.version} is already the champion")
    if refusal := _other_data(cand, champ):
        return result(False, refusal)
    if refusal := promotion_check(config, name, cand.version, champ.version):  # data.feedback's verdicts
        return result(False, refusal)
    best = float(champ.tags.get(key, "-inf"))
    margin = config.tracking.promote_min_delta
    gain = value - best
    if gain > 0 and gain >= margin:
        return result(
            True,
            f"version {cand.version} beats champion version {champ.version} on {label}: "
            f"{value:.2f} vs {best:.2f} (+{gain:.2f}, margin {margin:g}); promoted",
        )
    return result(
        False,
        f"version {cand.version} does not beat champion version {champ.version} on {label} by the "
        f"margin tracking.promote_min_delta = {margin:g}: {value:.2f} vs {best:.2f} ({gain:+.2f}); "
        "champion kept",
    )


def _decisive_tag(cand: Any, champ: Any | None, metric: str) -> str:
    """The validation video AUC when both versions have one (the test metric is then a report), else ``metric``."""
    if champ is not None and VALIDATION_TAG in cand.tags and VALIDATION_TAG in champ.tags:
        return VALIDATION_TAG
    return f"metric.{metric}"


def _other_data(cand: Any, champ: Any) -> str | None:
    """Why the two versions cannot be compared (other or unknown data), or None when they can."""
    ours, theirs = cand.tags.get("data_checksum"), champ.tags.get("data_checksum")
    if not ours or not theirs:
        unknown = ", ".join(str(v.version) for v, checksum in ((cand, ours), (champ, theirs)) if not checksum)
        return (
            f"not comparable: version(s) {unknown} carry no data checksum (registered without `cplvad track`, "
            "or before checksums were recorded), so the data they were evaluated on is unknown; champion kept"
        )
    if ours != theirs:
        return (
            f"not comparable: the candidate (version {cand.version}, dataset {cand.tags.get('dataset')!r}, data "
            f"checksum {ours[:12]}) and the champion (version {champ.version}, dataset "
            f"{champ.tags.get('dataset')!r}, data checksum {theirs[:12]}) were evaluated on different data; "
            "champion kept"
        )
    return None


def registration_markdown(record: dict[str, str | None]) -> str:
    """A short Markdown note of a tracked execution (``track_pipeline``'s record), e.g. for the Kubeflow UI."""
    return (
        "# CPL-VAD training run\n\n"
        f"- MLflow tracking URI: `{record['tracking_uri']}`\n"
        f"- MLflow run: `{record['run_id']}` (experiment `{record['experiment']}`)\n"
        f"- Registered model: `{record['registered_model']}` version {record['model_version'] or 'none'} "
        f"(alias `{CANDIDATE}`)\n\n"
        f"Promote it with `cplvad promote` (it becomes `{CHAMPION}` if it beats the current one by the margin).\n"
    )


def resolve_model(model: str | Path, config: Config) -> Path:
    """A model directory for a path, or for an MLflow URI such as ``models:/cplvad@champion``."""
    text = str(model)
    if not text.startswith(("models:/", "runs:/")):
        return Path(model)
    mlflow = mlflow_module()
    setup_mlflow(config)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text))
    except Exception as exc:  # MLflow raises several types for unknown names/aliases
        raise CplvadError(f"cannot fetch {text} from the MLflow registry ({exc})") from None
    try:
        mlmodel = yaml.safe_load((local / "MLmodel").read_text())
        model_dir = local / mlmodel["flavors"]["python_function"]["artifacts"]["model_dir"]["path"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        raise CplvadError(
            f"{text} is not a cplvad model (its MLmodel names no 'model_dir' artifact)"
        ) from None
    return model_dir
