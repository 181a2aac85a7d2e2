"""The registered model on KServe: a custom predictor speaking the V2 (Open Inference) protocol, run by
KServe's own model server (``kserve.ModelServer``: REST and gRPC endpoints, health, readiness, metrics).

    python -m cplvad.kserve_predictor --model_uri models:/cplvad@champion [--model_name cplvad]
        [--http_port 8080] [--grpc_port 8081] [--enable_grpc false] [any kserve.ModelServer option]

The InferenceService of ``python -m pipelines deploy`` runs this in the project image. The model is loaded
once at start from the MLflow registry (``MLFLOW_TRACKING_URI`` and its credentials from the environment)
or a model directory; the registry version it resolved to is returned with every response.

A request is a batch of videos of any lengths, as for the MLflow model (:mod:`cplvad.tracking.serving`),
written as V2 tensors (a ragged batch is the rows of all videos one after another plus their lengths):

- ``features`` FP32 ``[sum T, D]``: the (T, D) snippet features of every video, concatenated;
- ``lengths`` INT64 ``[N]``: T of each video, in order (sum = the rows of ``features``);
- ``name`` BYTES ``[N]`` (optional): the videos' names.

The response holds ``name`` BYTES ``[N]``, ``lengths`` INT64 ``[N]``, ``anomaly`` FP32 ``[sum T]``
(anomaly probability per snippet), ``classes`` FP32 ``[sum T, M]`` (class probabilities per snippet) and
``class_names`` BYTES ``[M]`` (index 0 normal), rows in request order; its parameters name the model
version. A malformed request is answered with HTTP 400 naming the tensor or the video.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import numpy as np

from cplvad.extras import require

kserve = require("kserve", "the KServe predictor (python -m cplvad.kserve_predictor)")
from kserve.errors import InvalidInput  # noqa: E402  (after the check that names the extra)
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse  # noqa: E402

DEFAULT_MODEL_URI = "models:/cplvad@champion"
INPUTS = ("features", "lengths", "name")


class CplvadPredictor(kserve.Model):
    """One registered cplvad model behind KServe's model server."""

    def __init__(self, name: str, model_uri: str, params: str | None = None) -> None:
        super().__init__(name)
        self.model_uri, self.params = model_uri, params
        self.predictor: Any = None

    def load(self) -> bool:
        from cplvad.config import load_config
        from cplvad.device import resolve_device
        from cplvad.predict.predictor import open_predictor

        config = load_config(self.params)
        self.predictor = open_predictor(self.model_uri, config, resolve_device("auto", "device"))
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict]:
        dim = self.predictor.meta.feature_dim if self.predictor else -1
        return [
            {"name": "features", "datatype": "FP32", "shape": [-1, dim]},
            {"name": "lengths", "datatype": "INT64", "shape": [-1]},
            {"name": "name", "datatype": "BYTES", "shape": [-1]},
        ]

    def get_output_types(self) -> list[dict]:
        classes = len(self.predictor.meta.classes) if self.predictor else -1
        return [
            {"name": "name", "datatype": "BYTES", "shape": [-1]},
            {"name": "lengths", "datatype": "INT64", "shape": [-1]},
            {"name": "anomaly", "datatype": "FP32", "shape": [-1]},
            {"name": "classes", "datatype": "FP32", "shape": [-1, classes]},
            {"name": "class_names", "datatype": "BYTES", "shape": [classes]},
        ]

    async def predict(
        self,
        payload: InferRequest | dict,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        if not isinstance(payload, InferRequest):
            raise InvalidInput(
                f"POST the V2 protocol to /v2/models/{self.name}/infer: tensors 'features' (FP32 [sum T, D]), "
                "'lengths' (INT64 [N]) and optionally 'name' (BYTES [N])"
            )
        videos = self.videos(payload)
        scored = await asyncio.to_thread(self._score, videos)
        return self.response(payload, scored)

    def videos(self, request: InferRequest) -> list[tuple[str, np.ndarray]]:
        """(name, (T, D) features) per video of a V2 request; InvalidInput (HTTP 400) says what is wrong."""
        from cplvad.tracking.serving import read_batch

        tensors = {t.name: t for t in request.inputs}
        unknown = sorted(set(tensors) - set(INPUTS))
        missing = [n for n in ("features", "lengths") if n not in tensors]
        if unknown or missing:
            raise InvalidInput(
                "expected tensors 'features' and 'lengths' (and optionally 'name'); "
                + (f"missing {missing}" if missing else f"unknown {unknown}")
            )
        features = tensors["features"].as_numpy()
        lengths = tensors["lengths"].as_numpy().astype(np.int64).reshape(-1)
        names = (  # JSON strings, or bytes from the binary extension and gRPC
            [n.decode() if isinstance(n, bytes) else str(n) for n in tensors["name"].as_numpy().reshape(-1)]
            if "name" in tensors
            else [f"video{i}" for i in range(len(lengths))]
        )
        if features.ndim != 2 or (lengths < 1).any() or int(lengths.sum()) != features.shape[0]:
            raise InvalidInput(
                f"'features' of shape {list(features.shape)} and 'lengths' {lengths.tolist()}: the features "
                "must be 2-d, the rows of every video one after another, and the lengths (each >= 1) must add "
                "up to the number of rows"
            )
        if len(names) != len(lengths):
            raise InvalidInput(f"{len(names)} names for {len(lengths)} videos")
        rows = np.split(features, np.cumsum(lengths)[:-1])
        try:
            return read_batch(
                [{"name": n, "features": f} for n, f in zip(names, rows, strict=True)],
                self.predictor.meta.feature_dim,
            )
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None

    def _score(self, videos: list[tuple[str, np.ndarray]]) -> list[dict[str, Any]]:
        from cplvad.tracking.serving import score_batch

        p = self.predictor
        return score_batch(p.model, list(p.meta.classes), videos, p.device)

    def response(self, request: InferRequest, scored: list[dict[str, Any]]) -> InferResponse:
        anomaly = np.concatenate([np.asarray(r["anomaly"], dtype=np.float32) for r in scored])
        classes = np.concatenate([np.asarray(r["classes"], dtype=np.float32) for r in scored])
        outputs = {
            "name": np.array([r["name"] for r in scored], dtype=object),
            "lengths": np.array([len(r["anomaly"]) for r in scored], dtype=np.int64),
            "anomaly": anomaly,
            "classes": classes,
            "class_names": np.array(list(self.predictor.meta.classes), dtype=object),
        }
        infer_outputs = []
        for name, array in outputs.items():
            out = InferOutput(name=name, shape=list(array.shape), datatype=_datatype(array))
            out.set_data_from_numpy(array, binary_data=False)
            infer_outputs.append(out)
        return InferResponse(
            response_id=request.id,
            model_name=self.name,
            infer_outputs=infer_outputs,
            parameters={"model_uri": self.model_uri, "model_version": self.predictor.version},
        )


def _datatype(array: np.ndarray) -> str:
    return {"O": "BYTES", "i": "INT64", "f": "FP32"}[array.dtype.kind]


def build_parser() -> argparse.ArgumentParser:
    """KServe's model-server options (``--http_port``, ``--grpc_port``, ``--model_name``, ...) plus ours."""
    parser = argparse.ArgumentParser(
        prog="python -m cplvad.kserve_predictor",
        parents=[kserve.model_server.parser],
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--model_uri",
        default=DEFAULT_MODEL_URI,
        help="registry URI (models:/NAME@ALIAS, models:/NAME/VERSION) or model directory",
    )
    parser.add_argument(
        "--params", default=None, help="params file for the tracking settings (default: built-in defaults)"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args, _ = build_parser().parse_known_args(argv)
    name = args.model_name if args.model_name != "model" else "cplvad"
    model = CplvadPredictor(name, args.model_uri, args.params)
    model.load()
    kserve.ModelServer(
        http_port=args.http_port, grpc_port=args.grpc_port, enable_grpc=args.enable_grpc
    ).start([model])


if __name__ == "__main__":
    main()
