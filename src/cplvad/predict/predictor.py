"""The model that ``cplvad predict`` scores with: loaded once, with its version, threshold and CLIP settings.

Model version (recorded in every report): for ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` the
registered version number (``registered_model`` names the model); otherwise ``sha256:`` and the first
12 hex digits of the sha256 of ``model.pt``, stable for the same weights wherever the directory lives.
The full checksum is always recorded as ``weights_sha256``.

Threshold: ``--threshold`` when given (source ``user``); else the one calibrated after training on the
normal training videos for ``predict.false_alarm_rate`` of the training config (source ``calibrated``,
stored in ``meta.json``). The false-alarm rate of a calibrated threshold is fixed at training time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cplvad.clip import file_sha256
from cplvad.config import Config, config_from_dict
from cplvad.errors import CplvadError, DataError
from cplvad.modeling.dual_branch import CPLVAD
from cplvad.modeling.factory import CALIBRATION_KEY, WEIGHTS_FILE, ModelMeta, load_model


@dataclass
class Threshold:
    value: float
    source: str
    """``calibrated`` or ``user``."""
    false_alarm_rate: float | None
    """The target rate it was calibrated for (None for a user threshold)."""


@dataclass
class Predictor:
    model: CPLVAD
    config: Config
    """The model's training config (its ``clip`` and ``extract`` sections say how to encode videos)."""
    meta: ModelMeta
    path: Path
    source: str
    """What the user gave: a directory or an MLflow URI."""
    version: str
    registered_model: str | None
    weights_sha256: str
    device: torch.device

    @property
    def classes(self) -> list[str]:
        return self.meta.classes

    @property
    def feature_dim(self) -> int:
        return self.meta.feature_dim

    def threshold(self, user: float | None = None) -> Threshold:
        if user is not None:
            return Threshold(float(user), "user", None)
        cal = self.meta.extra.get(CALIBRATION_KEY)
        if not cal or "threshold" not in cal:
            raise DataError(
                f"model {self.source} has no calibrated threshold (meta.json has no {CALIBRATION_KEY!r} record); "
                "pass --threshold X, or retrain it with `cplvad train`, which calibrates it"
            )
        return Threshold(float(cal["threshold"]), "calibrated", cal.get("false_alarm_rate"))

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "path": str(self.path),
            "version": self.version,
            "registered_model": self.registered_model,
            "weights_sha256": self.weights_sha256,
            "stage": self.meta.stage,
            "dataset": self.meta.dataset,
            "feature_dim": self.meta.feature_dim,
            "clip_model": self.config.clip.model,
        }

    def encoding_config(
        self, runtime: Config, pretrained: str | None = None, config_dir: str | None = None
    ) -> Config:
        """How to encode videos: the model's CLIP and snippet sampling, this run's workers / batch / device.

        ``pretrained`` / ``config_dir`` say where the model's CLIP weights / configs are on this machine
        when the stored paths do not hold there; weights are checked against the model's checksum.
        """
        data = self.config.to_dict()
        for key in ("batch_size", "workers", "device"):
            data["extract"][key] = getattr(runtime.extract, key)
        if pretrained is not None:
            data["clip"]["pretrained"] = pretrained
        if config_dir is not None:
            data["clip"]["config_dir"] = config_dir
        return config_from_dict(data, f"the config stored in {self.path}")

    def check_clip(self, weights_sha256: str | None, embed_dim: int) -> None:
        """Refuse a CLIP that cannot reproduce the model's features (other weights or width)."""
        if embed_dim != self.feature_dim:
            raise DataError(
                f"model {self.source} scores {self.feature_dim}-d features but its CLIP "
                f"({self.config.clip.model}) gives {embed_dim}-d embeddings; the model config and the CLIP disagree: "
                "pass the CLIP the model was trained with"
            )
        expected = self.meta.clip_weights_sha256
        if expected and weights_sha256 and expected != weights_sha256:
            raise DataError(
                f"model {self.source} was trained with CLIP weights sha256 {expected[:12]}..., the given weights are "
                f"{weights_sha256[:12]}...; pass --pretrained with the weights file it was trained with"
            )


def _registry_version(uri: str, config: Config) -> tuple[str | None, str | None]:
    """(registered model name, version) of a ``models:/`` URI; (None, None) for anything else."""
    if not uri.startswith("models:/"):
        return None, None
    from cplvad.tracking.runs import mlflow_module, setup_mlflow

    mlflow = mlflow_module()
    setup_mlflow(config)
    ref = uri[len("models:/") :].strip("/")
    client = mlflow.MlflowClient()
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return name, str(client.get_model_version_by_alias(name, alias).version)
        name, _, version = ref.partition("/")
        if version.isdigit():
            return name, version
        if version.lower() == "latest":
            versions = client.search_model_versions(f"name = '{name}'")
            return name, str(max(int(v.version) for v in versions)) if versions else None
        return name, None  # a legacy stage name: the weights checksum identifies it
    except mlflow.exceptions.MlflowException as exc:
        raise CplvadError(f"cannot look up {uri} in the MLflow registry ({exc})") from None


def open_predictor(source: str | Path, config: Config, device: torch.device) -> Predictor:
    """Load a model directory or registry URI (``models:/cplvad@champion``, ``runs:/...``) for scoring."""
    from cplvad.tracking.registry import resolve_model

    text = str(source)
    path = resolve_model(text, config)
    model, model_config, meta = load_model(path, device)
    name, version = _registry_version(text, config)
    sha = file_sha256(Path(path) / WEIGHTS_FILE)
    return Predictor(
        model=model,
        config=model_config,
        meta=meta,
        path=Path(path),
        source=text,
        version=version or f"sha256:{sha[:12]}",
        registered_model=name,
        weights_sha256=sha,
        device=device,
    )
