"""One MLflow parent run per pipeline execution, opened when the pipeline starts and closed by its last
stage; every stage process attaches its own nested run to it (:class:`cplvad.tracking.runs.StageRun`).

Stages run in one process (``cplvad run --track``) or in separate ones (DVC stages, Kubeflow steps). A
stage process finds the parent run of its pipeline by, in this order:

1. ``$CPLVAD_MLFLOW_PARENT_RUN_ID``: a run id set by a scheduler or a previous step;
2. ``$CPLVAD_PIPELINE_RUN``: the name of one execution, kept as the parent's tag ``cplvad.pipeline_run``
   (the Kubeflow training pipeline sets it to the run's Argo workflow name; its first step opens the
   parent, the others find it by the tag, in whichever experiment it is: the steps are not handed the
   experiment's name, which would enter their cache keys);
3. a record file (``--mlflow-parent FILE``, shared by the DVC stages): the run it names while that run is
   open; when the file is missing or names a closed run, a new parent is opened and written there.

The last stage (``cplvad track``, the Kubeflow ``register`` step) closes it (``workflow.track_pipeline``).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from cplvad.config import Config, TrackingConfig
from cplvad.errors import ConfigError
from cplvad.io import write_json
from cplvad.redact import redact, strip_credentials
from cplvad.tracking.runs import dvc_experiment_tags, git_commit, mlflow_module, setup_mlflow, use_store

PARENT_RUN_ENV = "CPLVAD_MLFLOW_PARENT_RUN_ID"
PIPELINE_RUN_ENV = "CPLVAD_PIPELINE_RUN"
PIPELINE_RUN_TAG = "cplvad.pipeline_run"
MAX_PARAMS_PER_CALL = 100  # MLflow's limit for one log_batch


def open_parent(config: Config, *, run_name: str = "pipeline", tags: dict[str, str] | None = None) -> str:
    """A new parent run (left open, status RUNNING) with every parameter and the git commit; its id."""
    mlflow = mlflow_module()
    experiment_id = setup_mlflow(config)
    commit = git_commit()
    client = mlflow.MlflowClient()
    dvc = dvc_experiment_tags()  # a DVC experiment's run is named after it, as `dvc exp show` lists it
    tags = {**({"mlflow.source.git.commit": commit} if commit else {}), **dvc, **(tags or {})}
    run = client.create_run(experiment_id, run_name=dvc.get("dvc.exp_name", run_name), tags=tags)
    flat = config.flat()
    if config.tracking.tracking_uri == TrackingConfig().tracking_uri:  # not set (a Kubeflow step's params
        flat["tracking.tracking_uri"] = redact(mlflow.get_tracking_uri())  # never hold it): the store in use
    params = [mlflow.entities.Param(k, str(v)) for k, v in flat.items()]
    for i in range(0, len(params), MAX_PARAMS_PER_CALL):
        client.log_batch(run.info.run_id, params=params[i : i + MAX_PARAMS_PER_CALL])
    return run.info.run_id


def find_parent(config: Config, *, record: str | Path | None = None) -> str | None:
    """The parent run of the pipeline this process belongs to (see the module docstring), opened here when
    the environment or ``record`` names a pipeline that has none yet; None when nothing names a pipeline."""
    if run_id := os.environ.get(PARENT_RUN_ENV):
        setup_mlflow(config)
        return run_id
    if key := os.environ.get(PIPELINE_RUN_ENV):
        return _parent_by_key(config, key)
    if record is not None:
        setup_mlflow(config)
        return _open_run_in(Path(record)) or _open_and_record(config, Path(record))
    return None


def _parent_by_key(config: Config, key: str) -> str:
    if not re.fullmatch(r"[\w.:-]+", key):
        raise ConfigError(f"${PIPELINE_RUN_ENV} = {key!r}: use letters, digits, '.', ':', '_' or '-'")
    use_store(config)
    client = mlflow_module().MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments(max_results=50000)]
    found = client.search_runs(
        experiments,
        f"tags.`{PIPELINE_RUN_TAG}` = '{key}'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return found[0].info.run_id if found else open_parent(config, tags={PIPELINE_RUN_TAG: key})


def _open_run_in(record: Path) -> str | None:
    """The run ``record`` names, if it is in this tracking store and still open."""
    mlflow = mlflow_module()
    try:
        saved = json.loads(record.read_text())
        if strip_credentials(saved["tracking_uri"]) != strip_credentials(mlflow.get_tracking_uri()):
            return None
        run = mlflow.MlflowClient().get_run(saved["run_id"])
    except (OSError, ValueError, KeyError, TypeError, mlflow.exceptions.MlflowException):
        return None
    return run.info.run_id if run.info.status == "RUNNING" else None


def _open_and_record(config: Config, record: Path) -> str:
    run_id = open_parent(config)
    uri = strip_credentials(mlflow_module().get_tracking_uri())
    write_json(record, {"run_id": run_id, "tracking_uri": uri})
    return run_id


def log_outcome(run_id: str, tags: dict[str, str], metrics: dict[str, float | None]) -> None:
    """The pipeline's result on its parent run: which data (``dataset_tags``) and the final metrics."""
    entities = mlflow_module().entities
    stamp = int(time.time() * 1000)
    mlflow_module().MlflowClient().log_batch(
        run_id,
        metrics=[entities.Metric(k, float(v), stamp, 0) for k, v in metrics.items() if v is not None],
        tags=[entities.RunTag(k, v) for k, v in tags.items()],
    )


def close_parent(run_id: str, status: str = "FINISHED") -> None:
    mlflow_module().MlflowClient().set_terminated(run_id, status)
