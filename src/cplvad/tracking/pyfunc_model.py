"""MLflow pyfunc entry point of a registered cplvad model ("models from code": nothing is pickled).

``mlflow.pyfunc.load_model("models:/cplvad@champion").predict(videos)`` scores a batch of videos of any
lengths; the request and response formats are in :mod:`cplvad.tracking.serving`.
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel


class CplvadPyfunc(PythonModel):
    def load_context(self, context):  # noqa: ANN001 (MLflow inspects these signatures)
        import torch

        from cplvad.modeling.factory import load_model

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model, _, self.meta = load_model(context.artifacts["model_dir"], self.device)

    def predict(self, context, model_input, params=None):  # noqa: ANN001
        from cplvad.tracking.serving import read_batch, score_batch

        try:
            videos = read_batch(model_input, self.meta.feature_dim)
        except (
            ValueError
        ) as exc:  # the scoring server shows this type's message (HTTP 400), not a generic one
            raise mlflow.exceptions.MlflowException.invalid_parameter_value(str(exc)) from None
        return score_batch(self.model, self.meta.classes, videos, self.device)


mlflow.models.set_model(CplvadPyfunc())
