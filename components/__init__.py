"""Kubeflow Pipelines (v2) components of CPL-VAD: one per stage, thin wrappers over ``src/cplvad``.

Every component is a lightweight Python component whose body imports ``cplvad``; on a cluster it runs in
the project image (``Dockerfile``; see :mod:`components.image`), locally in this environment with KFP's
``SubprocessRunner``. The configuration travels as ``params`` (the part of the params.yaml mapping that
the step reads, see ``split_params``; validated by ``cplvad.config``) plus optional ``overrides``
(``section.key=value``). The MLflow server is never an input: every pod has it as ``MLFLOW_TRACKING_URI``.

=================  ===================================================  ==============================
component          library call                                         artifacts out
=================  ===================================================  ==============================
open_run           ``tracking.pipeline_run.find_parent``                the MLflow parent run id
split_params       ``config.select_keys`` per step                      each step's params
plan_data          ``extract.dataset_folder.needs_extraction``          ``extract`` or ``features``
resolve_data       ``workflow.data.prepare_data`` (no extraction)       Dataset (manifest + lists)
prepare_data       ``extract.dataset_folder.prepare_videos``            Dataset (metadata, demo videos)
plan_shards        ``extract.dataset_folder.plan_shards``               shard jobs
extract_features   ``extract.dataset_folder.extract_shard``             Dataset (one shard)
merge_features     ``extract.dataset_folder.merge_dataset``             Dataset (manifest + features)
train_stage1       ``workflow.train_stage(stage=1)``                    Model
pseudo_labels      ``workflow.make_pseudo_labels``                      Dataset (pseudo.npz)
train_stage2       ``workflow.train_stage(stage=2)``                    Model
evaluate           ``workflow.evaluate_into`` + ``evaluation_page``     Metrics, ClassificationMetrics,
                   + ``eval.classification.frame_classification``       Artifact, HTML
register           ``workflow.track_pipeline``                          Markdown (+ run id, version)
ablation_table     ``ablation.grid_rows`` / ``write_reports``           Markdown, Dataset, HTML
plan_scoring       ``predict.scoring_job.plan``                         shard jobs (index + params)
score_shard        ``predict.scoring_job.score_shard``                  Dataset (shard summary)
collect_scores     ``predict.scoring_job.collect``                      Dataset, HTML, Markdown
=================  ===================================================  ==============================
"""

from components.data import (
    extract_features,
    merge_features,
    plan_data,
    plan_shards,
    prepare_data,
    resolve_data,
)
from components.evaluate import ablation_table, evaluate
from components.image import DEFAULT_IMAGE, IMAGE, check_pinned, current_image, set_image
from components.params import split_params
from components.register import open_run, register
from components.scoring import collect_scores, plan_scoring, score_shard
from components.train import pseudo_labels, train_stage1, train_stage2

__all__ = [
    "DEFAULT_IMAGE",
    "IMAGE",
    "ablation_table",
    "check_pinned",
    "collect_scores",
    "current_image",
    "evaluate",
    "extract_features",
    "merge_features",
    "open_run",
    "plan_data",
    "plan_scoring",
    "plan_shards",
    "prepare_data",
    "pseudo_labels",
    "register",
    "resolve_data",
    "score_shard",
    "set_image",
    "split_params",
    "train_stage1",
    "train_stage2",
]
