"""MLflow pyfunc entry point of a registered cplvad model ("models from code": nothing is pickled).

``mlflow.pyfunc.load_model("models:/cplvad@champion").predict(features)`` scores one video's (T, D)
snippet features and returns ``{"anomaly": (T,), "classes": (T, M), "class_names": [...]}``.
"""

from __future__ import annotations

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class CplvadPyfunc(PythonModel):
    def load_context(self, context):  # noqa: ANN001 (MLflow inspects these signatures)
        import torch

        from cplvad.modeling.factory import load_model

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model, _, self.meta = load_model(context.artifacts["model_dir"], self.device)

    def predict(self, context, model_input, params=None):  # noqa: ANN001
        from cplvad.eval.scoring import score_videos

        feats = np.asarray(model_input, dtype=np.float32)
        [(_, anomaly, classes)] = list(score_videos(self.model, [("input", feats)], self.device))
        return {"anomaly": anomaly, "classes": classes, "class_names": self.meta.classes}


mlflow.models.set_model(CplvadPyfunc())
