"""The request and response of a registered model (Python ``predict`` and ``mlflow models serve`` alike).

A request is a batch of videos, one row each: ``features``, the video's (T, D) snippet features (T may
differ from row to row; D is the model's feature width), and an optional ``name``. From Python: a
DataFrame with those columns or a list of dicts; over HTTP, MLflow's JSON with the numbers written as
floats (``0.0``, not ``0``: MLflow does not convert integers to the signature's doubles)::

    {"dataframe_records": [{"name": "a", "features": [[0.1, ...], ...]}, {"name": "b", "features": [...]}]}

The response holds one record per video, in request order: ``name``, ``anomaly`` (T anomaly scores),
``classes`` (T x M class probabilities) and ``class_names`` (M, index 0 normal).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cplvad.eval.scoring import score_videos
from cplvad.modeling.dual_branch import CPLVAD
from cplvad.tracking.runs import mlflow_module

EXAMPLE_LENGTHS = (2, 3)
"""Snippets of the two videos of the stored input example: a batch of different lengths."""


def signature() -> Any:
    types = mlflow_module().types
    schema, col, array, dtype = types.Schema, types.ColSpec, types.schema.Array, types.DataType
    return mlflow_module().models.ModelSignature(
        inputs=schema(
            [col(array(array(dtype.double)), "features"), col(dtype.string, "name", required=False)]
        ),
        outputs=schema(
            [
                col(dtype.string, "name"),
                col(array(dtype.double), "anomaly"),
                col(array(array(dtype.double)), "classes"),
                col(array(dtype.string), "class_names"),
            ]
        ),
    )


def input_example(feature_dim: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    return [
        {"name": f"video{i}", "features": rng.normal(size=(t, feature_dim)).round(3).tolist()}
        for i, t in enumerate(EXAMPLE_LENGTHS)
    ]


def _rows(model_input: Any) -> list[Mapping[str, Any]]:
    if hasattr(model_input, "to_dict"):  # a DataFrame: what MLflow hands over after checking the signature
        return model_input.to_dict("records")
    if isinstance(model_input, Mapping):
        return [model_input]
    return list(model_input)


def read_batch(model_input: Any, feature_dim: int) -> list[tuple[str, np.ndarray]]:
    """(name, (T, D) float32 features) per video; a ValueError (HTTP 400 when served) names a bad row."""
    videos = []
    for i, row in enumerate(_rows(model_input)):
        name = row.get("name")
        name = f"video{i}" if name is None or (isinstance(name, float) and np.isnan(name)) else str(name)
        if "features" not in row:
            raise ValueError(
                f"row {i} ({name}) has no 'features'; send one row per video with its (T, D) features"
            )
        try:  # rows may arrive as lists, arrays, or an object array of 1-d arrays
            feats = np.stack([np.asarray(r, dtype=np.float32) for r in row["features"]])
        except (TypeError, ValueError):
            raise ValueError(
                f"row {i} ({name}): 'features' is not a non-empty (T, D) array of numbers"
            ) from None
        if feats.ndim != 2 or feats.shape[1] != feature_dim:
            raise ValueError(
                f"row {i} ({name}): features of shape {feats.shape}; this model scores (T, {feature_dim}) "
                "snippet features with T >= 1"
            )
        videos.append((name, feats))
    if not videos:
        raise ValueError("the request holds no videos")
    return videos


def score_batch(
    model: CPLVAD, class_names: list[str], videos: list[tuple[str, np.ndarray]], device: torch.device
) -> list[dict[str, Any]]:
    return [
        {"name": name, "anomaly": anomaly, "classes": classes, "class_names": class_names}
        for name, anomaly, classes in score_videos(model, videos, device)
    ]
