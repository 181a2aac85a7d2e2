"""Kubeflow Pipelines (v2) components of CPL-VAD: one per stage, thin wrappers over ``src/cplvad``.

Every component is a lightweight Python component whose body imports ``cplvad``; on a cluster it runs in
the project image (``Dockerfile``; see :mod:`components.image`), locally in this environment with KFP's
``SubprocessRunner``. The configuration travels as ``params`` (the params.yaml mapping, validated by
``cplvad.config``) plus optional ``overrides`` (``section.key=value``).

=================  =====================================================  ==========================
component          library call                                           artifacts out
=================  =====================================================  ==========================
prepare_data       ``write_demo_videos`` / copy of a source's manifest    Dataset (metadata, demo videos)
plan_shards        ``extract.runner.select_videos``                       shard indices
extract_features   ``extract.runner.extract(shard=(k, n))``               Dataset (one shard)
merge_features     ``extract.manifest.merge_shards`` + ``load_dataset``   Dataset (manifest + features)
train_stage1       ``workflow.train_stage(stage=1)``                      Model
pseudo_labels      ``workflow.make_pseudo_labels``                        Dataset (pseudo.npz)
train_stage2       ``workflow.train_stage(stage=2)``                      Model
evaluate           ``workflow.evaluate``                                  Metrics, Artifact, HTML
register           ``workflow.track_pipeline``                            Markdown (+ run id, version)
ablation_table     ``ablation.write_reports`` / ``track_ablation``        Markdown, Dataset, HTML
plan_scoring       ``predict.scoring_job.plan``                           shard indices
score_shard        ``predict.scoring_job.score_shard``                    Dataset (shard summary)
collect_scores     ``predict.scoring_job.collect``                        Dataset, HTML, Markdown
=================  =====================================================  ==========================
"""

from components.data import extract_features, merge_features, plan_shards, prepare_data
from components.evaluate import ablation_table, evaluate
from components.image import DEFAULT_IMAGE, IMAGE, current_image, set_image
from components.register import register
from components.scoring import collect_scores, plan_scoring, score_shard
from components.train import pseudo_labels, train_stage1, train_stage2

__all__ = [
    "DEFAULT_IMAGE", "IMAGE", "ablation_table", "collect_scores", "current_image", "evaluate", "extract_features",
    "merge_features", "plan_scoring", "plan_shards", "prepare_data", "pseudo_labels", "register", "score_shard",
    "set_image", "train_stage1", "train_stage2",
]
