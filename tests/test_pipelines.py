"""Kubeflow pipelines: both compile (``python -m pipelines compile``) and the YAML holds what a cluster needs
(components, a pinned image and the source commit, GPU requests as parameters, CPU/memory limits, retries,
ParallelFor with a parallelism cap on every fan-out, Collected, each step's own params and never the whole
mapping, no tracking URI in any step's inputs (it reaches the pods through their environment), the evaluate
step's ClassificationMetrics, parameters, credentials, the data choice as a branch, the data volume);
``submit`` drives kfp.Client; the library stays free of kfp and dvc."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

IMAGE = "registry.example.com/team/cplvad@sha256:" + "ab" * 32
GPU_EXECUTORS = {"exec-extract-features", "exec-train-stage1", "exec-train-stage2"}
TRAINING_COMPONENTS = {
    "open-run",
    "split-params",
    "plan-data",
    "resolve-data",
    "prepare-data",
    "plan-shards",
    "extract-features",
    "merge-features",
    "train-stage1",
    "pseudo-labels",
    "train-stage2",
    "evaluate",
    "register",
}
PARAMETERS = {
    "params",
    "source_uri",
    "features_uri",
    "num_shards",
    "accelerator_type",
    "accelerator_count",
    "secret_name",
    "checkpoint_uri",
}
TRACKING_URI = "http://mlflow.mlflow.svc:5000"
DATA_VOLUME = "ucf-features:/data"
HEAD = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()


def _env() -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.pop("CPLVAD_IMAGE", None)
    return env


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("kfp-yaml")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "compile",
            "--out",
            str(out),
            "--image",
            IMAGE,
            "--set",
            "train.epochs=3",
            "--max-parallel-shards",
            "3",
            "--data-volume",
            DATA_VOLUME,
            "--tracking-uri",
            TRACKING_URI,
            "--max-parallel-rows",
            "2",
        ],
        cwd=out,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"image: {IMAGE}" in res.stdout and f"source commit: {HEAD}" in res.stdout
    specs = {}
    for name in ("training", "ablation", "scoring"):
        spec, platform = yaml.safe_load_all(
            (out / f"{name}.yaml").read_text()
        )  # pipeline spec, then platform spec
        specs[name] = {**spec, "platforms": platform["platforms"]}
    return specs


def _tasks(spec: dict) -> dict:
    """Every task of the pipeline (root and inside loops), by task name."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for comp in spec["components"].values():
        tasks.update(comp.get("dag", {}).get("tasks", {}))
    return tasks


def _dag_holding(spec: dict, task: str) -> dict:
    """The DAG (the root's or a component's: a branch, a loop) that holds task ``task``."""
    dags = [spec["root"]["dag"], *(comp["dag"] for comp in spec["components"].values() if "dag" in comp)]
    return next(dag for dag in dags if task in dag["tasks"])


def _executor(spec: dict, task: dict) -> dict:
    comp = spec["components"][task["componentRef"]["name"]]
    return spec["deploymentSpec"]["executors"][comp["executorLabel"]]


@pytest.mark.parametrize("name", ["training", "ablation"])
def test_components_run_the_project_image_without_installing_anything(compiled, name):
    executors = compiled[name]["deploymentSpec"]["executors"]
    for label, ex in executors.items():
        container = ex["container"]
        assert container["image"] == IMAGE, label
        assert "pip install" not in " ".join(container["command"]), (
            label
        )  # kfp and cplvad come with the image
        assert "import cplvad" in container["command"][-1] or "from cplvad" in container["command"][-1], label


def test_training_pipeline_has_every_stage_and_the_parameters(compiled):
    spec = compiled["training"]
    comps = {name.removeprefix("comp-") for name in spec["components"]}
    assert comps >= TRAINING_COMPONENTS
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == PARAMETERS
    assert params["accelerator_type"]["defaultValue"] == "nvidia.com/gpu"
    assert params["accelerator_count"]["parameterType"] == "NUMBER_INTEGER"
    default = params["params"]["defaultValue"]  # params.yaml + the --set given at compile time, no nulls
    root_params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert default["train"]["epochs"] == 3 and default["clip"]["model"] == root_params["clip"]["model"]
    assert "null" not in json.dumps(default)
    outputs = spec["root"]["outputDefinitions"]["artifacts"]
    assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs.items()} == {
        "model": "system.Model",
        "metrics": "system.Metrics",
        "classification": "system.ClassificationMetrics",
        "report": "system.HTML",
    }
    assert _tasks(spec)["register"]["cachingOptions"] == {}  # disabled: registration is a side effect


@pytest.mark.parametrize("name", ["training", "ablation"])
def test_gpu_requests_are_pipeline_parameters_on_extraction_and_training(compiled, name):
    spec = compiled[name]
    executors = spec["deploymentSpec"]["executors"]
    gpu = {label for label, ex in executors.items() if "accelerator" in ex["container"].get("resources", {})}
    assert {re.sub(r"-\d+$", "", g) for g in gpu} == GPU_EXECUTORS
    for label in gpu:
        acc = executors[label]["container"]["resources"]["accelerator"]
        assert acc["resourceType"] == "{{$.inputs.parameters['pipelinechannel--accelerator_type']}}"
        assert acc["resourceCount"] == "{{$.inputs.parameters['pipelinechannel--accelerator_count']}}"
    for label, ex in executors.items():  # every task has CPU and memory requests and limits
        res = ex["container"]["resources"]
        assert {
            "resourceCpuLimit",
            "resourceMemoryLimit",
            "resourceCpuRequest",
            "resourceMemoryRequest",
        } <= set(res), label
    assert executors["exec-extract-features"]["container"]["resources"]["resourceMemoryLimit"] == "32G"
    platform = spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for label in (
        executors
    ):  # the optional credentials Secret on every task, GPU taint tolerated where GPUs are requested
        secret = platform[label]["secretAsEnv"][0]
        assert secret["optional"] is True
        assert {k["envVar"] for k in secret["keyToEnv"]} >= {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "MLFLOW_TRACKING_TOKEN",
        }
        assert ("tolerations" in platform[label]) == (label in gpu), label


@pytest.mark.parametrize("name", ["training", "ablation"])
def test_extraction_fans_out_over_shards_with_retries_and_is_collected(compiled, name):
    spec = compiled[name]
    branch = _dag_holding(spec, "plan-shards")["tasks"]  # inside the branch that extracts videos
    loop_name, loop = next(
        (k, t)
        for k, t in branch.items()
        if t.get("parameterIterator", {}).get("items", {}).get("inputParameter")
    )
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--plan-shards-Output"
    body = spec["components"][loop["componentRef"]["name"]]
    extract = body["dag"]["tasks"]["extract-features"]
    assert extract["retryPolicy"]["maxRetryCount"] == 3 and extract["retryPolicy"]["backoffDuration"] == "60s"
    assert (
        loop["iteratorPolicy"]["parallelismLimit"] == 3
    )  # --max-parallel-shards: at most 3 GPU pods at once
    for name in ("shard", "params", "videos"):  # fields of the shard's job
        assert extract["inputs"]["parameters"][name]["componentInputParameter"].endswith("loop-item")
        assert (
            extract["inputs"]["parameters"][name]["parameterExpressionSelector"]
            == f'parseJson(string_value)["{name}"]'
        )
    # the GPU parameters reach the loop body (KFP 2.17 leaves them out unless registered as task inputs)
    assert {"pipelinechannel--accelerator_type", "pipelinechannel--accelerator_count"} <= set(
        body["inputDefinitions"]["parameters"]
    )
    assert {"pipelinechannel--accelerator_type", "pipelinechannel--accelerator_count"} <= set(
        loop["inputs"]["parameters"]
    )
    merge = branch["merge-features"]
    assert merge["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]["producerTask"] == loop_name
    assert body["outputDefinitions"]["artifacts"]["pipelinechannel--extract-features-features"][
        "isArtifactList"
    ]


@pytest.mark.parametrize("name", ["training", "ablation"])
def test_the_data_plan_branches_between_extraction_and_published_features(compiled, name):
    """``plan-data`` answers ``extract`` or ``features``: one branch extracts videos, the other (a built-in
    benchmark's release, a manifest's own lists) only writes the dataset folder; every later step reads the
    one dataset the branch that ran produced (``dsl.OneOf``)."""
    spec = compiled[name]
    root = spec["root"]["dag"]["tasks"]
    assert root["plan-data"]["inputs"]["parameters"]["params"] == {
        "taskOutputParameter": {"outputParameterKey": "data", "producerTask": "split-params"}
    }
    (branches,) = (t for t in root if t.startswith("condition-branches"))
    conditions = spec["components"][root[branches]["componentRef"]["name"]]["dag"]["tasks"]
    by_policy = {
        t["triggerPolicy"]["condition"]: spec["components"][t["componentRef"]["name"]]["dag"]["tasks"]
        for t in conditions.values()
    }
    answer = "inputs.parameter_values['pipelinechannel--plan-data-Output'] == 'extract'"
    assert set(by_policy) == {answer, f"!({answer})"}
    assert set(by_policy[answer]) >= {"prepare-data", "plan-shards", "merge-features"}
    assert set(by_policy[f"!({answer})"]) == {"resolve-data"}  # published features: nothing extracted
    joined = spec["components"][root[branches]["componentRef"]["name"]]["dag"]["outputs"]["artifacts"]
    (selectors,) = (out["artifactSelectors"] for out in joined.values())
    assert sorted(sel["outputArtifactKey"] for sel in selectors) == [
        "pipelinechannel--merge-features-dataset",
        "pipelinechannel--resolve-data-dataset",
    ]
    reads = _tasks(spec)["train-stage1"]["inputs"]["artifacts"]["dataset"]["taskOutputArtifact"]
    assert reads["producerTask"] == branches


@pytest.mark.parametrize("name", ["training", "ablation"])
def test_the_data_volume_is_mounted_on_every_pod(compiled, name):
    claim, path = DATA_VOLUME.split(":")
    platform = compiled[name]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(platform) == set(compiled[name]["deploymentSpec"]["executors"])
    for label, executor in platform.items():
        (mount,) = executor["pvcMount"]
        assert mount["mountPath"] == path and mount["constant"] == claim, label


def test_data_paths_must_be_absolute_for_the_pods(tmp_path, capsys):
    from pipelines.cli import main

    rc = main(
        [
            "compile",
            "--out",
            str(tmp_path),
            "--pipeline",
            "training",
            "--set",
            "data.dataset=ucf-crime",
            "--set",
            "data.features_root=UCFClipFeatures",
        ]
    )
    assert (
        rc == 2
        and "data.features_root=UCFClipFeatures: the pods read this path as it is given"
        in capsys.readouterr().err
    )
    assert main(["compile", "--out", str(tmp_path), "--data-volume", "ucf-features"]) == 2
    assert "--data-volume 'ucf-features': give CLAIM:PATH" in capsys.readouterr().err
    assert (
        main(
            [
                "submit",
                "--host",
                "http://kfp",
                "--source-uri",
                "s3://b/v",
                "--set",
                "data.dataset=ucf-crime",
                "--set",
                "data.features_root=/data/UCFClipFeatures",
            ]
        )
        == 2
    )
    assert "source_uri s3://b/v and data.dataset=ucf-crime both choose the data" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_the_pods_read_a_feedback_folder_on_the_volume_and_not_the_checkouts(tmp_path, monkeypatch, capsys):
    """params.yaml's ``data.feedback: feedback`` is a folder of the checkout, which no pod has (every training
    step would fail on it): it is left out of the compiled pipeline, with a note when it holds samples. A
    folder on the data volume (an absolute path) reaches the steps."""
    from cplvad.feedback.folder import RECORD_FILE, SCHEMA
    from pipelines.cli import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "kfp"
    out.mkdir()

    def compiled_feedback(*sets: str) -> str | None:
        assert main(["compile", "--out", str(out), "--pipeline", "training", *sets]) == 0
        spec = next(yaml.safe_load_all((out / "training.yaml").read_text()))
        return spec["root"]["inputDefinitions"]["parameters"]["params"]["defaultValue"]["data"].get(
            "feedback"
        )

    (tmp_path / "feedback").mkdir()
    assert compiled_feedback() is None and "note: data.feedback" not in capsys.readouterr().err  # empty
    (tmp_path / "feedback" / RECORD_FILE).write_text(
        json.dumps({"schema": SCHEMA, "classes": ["Normal", "Fighting"], "samples": [{"video": "a"}] * 2})
    )
    assert compiled_feedback() is None
    assert "note: data.feedback=feedback (2 samples) is a folder of this checkout" in capsys.readouterr().err
    assert compiled_feedback("--set", "data.feedback=/data/feedback") == "/data/feedback"
    assert "note: data.feedback" not in capsys.readouterr().err


def test_ablation_shares_stage1_and_pseudo_labels_and_collects_the_grid(compiled):
    from cplvad.workflow.ablation import GRID

    spec = compiled["ablation"]
    tasks = _tasks(spec)
    assert "track" in spec["root"]["inputDefinitions"]["parameters"]
    assert sorted(t for t in tasks if t.startswith("train-stage1")) == ["train-stage1"]
    pseudo = {
        t: tasks[t]["inputs"]["parameters"]["overrides"]["runtimeValue"]["constant"]
        for t in tasks
        if t.startswith("pseudo-labels")
    }
    assert sorted(pseudo.values()) == [["car.enabled=false"], ["car.enabled=true"]]
    loops = [
        t
        for t in spec["root"]["dag"]["tasks"].values()
        if "raw" in t.get("parameterIterator", {}).get("items", {})
    ]
    rows = [row for loop in loops for row in json.loads(loop["parameterIterator"]["items"]["raw"])]
    assert sorted(r["label"] for r in rows) == sorted(r.label for r in GRID if r.supervision is not None)
    assert {r["supervision"] for r in rows} == {"b_to_c", "c_to_b", "self", "cross"}
    table = spec["root"]["dag"]["tasks"]["ablation-table"]
    arts = table["inputs"]["artifacts"]
    assert {
        arts["car_rows"]["taskOutputArtifact"]["producerTask"],
        arts["nocar_rows"]["taskOutputArtifact"]["producerTask"],
    } == {
        name
        for name, t in spec["root"]["dag"]["tasks"].items()
        if "raw" in t.get("parameterIterator", {}).get("items", {})
    }
    assert arts["stage1"]["taskOutputArtifact"]["producerTask"] == "evaluate"
    outputs = spec["root"]["outputDefinitions"]["artifacts"]
    assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs.items()} == {
        "table": "system.Markdown",
        "results": "system.Dataset",
        "report": "system.HTML",
    }


def test_image_comes_from_the_environment_and_defaults_to_the_commit_tag(tmp_path):
    code = "import components; print(components.current_image())"
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**_env(), "CPLVAD_IMAGE": "reg/x:1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.stdout.strip() == "reg/x:1", res.stderr
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert res.stdout.strip() == f"ghcr.io/cplvad/cplvad:sha-{HEAD}", (
        res.stderr
    )  # what CI pushes for this commit


def test_compile_refuses_an_image_that_can_move(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "compile",
            "--out",
            str(tmp_path),
            "--pipeline",
            "training",
            "--image",
            "ghcr.io/cplvad/cplvad:0.1.0",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode != 0 and "is not pinned" in res.stderr and "sha-<commit>" in res.stderr
    assert not (tmp_path / "training.yaml").exists()


def test_compiled_pipeline_pins_the_image_and_records_its_commit(compiled):
    from components.image import PINNED

    for name, spec in compiled.items():
        assert f"Compiled from git commit {HEAD}" in spec["pipelineInfo"]["description"], name
        for label, ex in spec["deploymentSpec"]["executors"].items():
            assert PINNED.fullmatch(ex["container"]["image"]), label
        for label, ex in spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items():
            assert ex["podMetadata"]["annotations"]["cplvad.io/source-commit"].startswith(HEAD), label
            assert {
                "fieldPath": "metadata.annotations['cplvad.io/source-commit']",  # for the MLflow run
                "name": "CPLVAD_SOURCE_COMMIT",
            } in ex["fieldPathAsEnv"], label


def test_each_step_gets_only_the_params_it_reads(compiled):
    """The evaluate step's params hold neither the model nor the train section, so changing eval.smoothing
    leaves the cache keys of extraction and training alone; only split-params sees the whole mapping."""
    import components as c

    spec = compiled["training"]
    tasks = _tasks(spec)
    steps = tasks["split-params"]["inputs"]["parameters"]["steps"]["runtimeValue"]["constant"]
    for task, step in (
        ("evaluate", "evaluate"),
        ("train-stage1", "train_stage1"),
        ("pseudo-labels", "pseudo_labels"),
        ("train-stage2", "train_stage2"),
        ("plan-shards", "extract"),
        ("prepare-data", "prepare_data"),
        ("plan-data", "data"),
        ("resolve-data", "data"),
        ("open-run", "open_run"),
        ("register", "register"),
    ):
        source = tasks[task]["inputs"]["parameters"][
            "params"
        ]  # (plan-shards hands them to the extraction jobs)
        # inside a branch, split-params' output comes in as the branch's input of that name
        assert source in (
            {"taskOutputParameter": {"outputParameterKey": step, "producerTask": "split-params"}},
            {"componentInputParameter": f"pipelinechannel--split-params-{step}"},
        ), task
    assert not {key.split(".")[0] for key in steps["evaluate"]} & {"model", "train", "clip", "extract"}

    params = spec["root"]["inputDefinitions"]["parameters"]["params"]["defaultValue"]
    smoothed = {**params, "eval": {**params["eval"], "smoothing": 5}}
    before = c.split_params.python_func(params=params, steps=steps)
    after = c.split_params.python_func(params=smoothed, steps=steps)
    assert set(before[5]) == {"eval"} and before[5] != after[5]  # evaluate
    assert (
        before[:5] == after[:5] and before[6] == after[6]
    )  # videos, extraction, training, pseudo labels, data
    assert before[2]["train"]["epochs"] == 3 and before[2]["predict"] == {"false_alarm_rate": 0.01}
    assert set(before[8]) == {"tracking"} and "tracking_uri" not in before[8]["tracking"]  # register


@pytest.mark.parametrize("name", ["training", "ablation", "scoring"])
def test_no_step_gets_the_whole_params_or_the_tracking_uri(compiled, name):
    """Cache keys hold only what changes a step's result: the whole ``params`` goes to split-params alone,
    the tracking URI to no step at all (it is every pod's MLFLOW_TRACKING_URI, an environment variable)."""
    spec = compiled[name]
    for task_name, task in _tasks(spec).items():
        inputs = task.get("inputs", {}).get("parameters", {})
        assert "tracking_uri" not in inputs, task_name
        whole = {"componentInputParameter": "params"}
        assert (inputs.get("params") == whole) == (task_name == "split-params"), task_name
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert "tracking_uri" not in params
    assert "tracking_uri" not in params["params"]["defaultValue"]["tracking"]
    assert "tracking.tracking_uri" not in json.dumps(spec["root"]["dag"])
    for label, ex in spec["deploymentSpec"]["executors"].items():
        assert {"name": "MLFLOW_TRACKING_URI", "value": TRACKING_URI} in ex["container"]["env"], label
    secrets = spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for label, ex in secrets.items():  # the Secret's MLFLOW_TRACKING_URI would compete with --tracking-uri
        assert "MLFLOW_TRACKING_URI" not in {k["envVar"] for k in ex["secretAsEnv"][0]["keyToEnv"]}, label


@pytest.mark.parametrize("name", ["training", "ablation", "scoring"])
def test_every_fan_out_has_a_parallelism_cap(compiled, name):
    spec = compiled[name]
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    loops = [t for dag in dags for t in dag["tasks"].values() if "parameterIterator" in t]
    assert loops
    for loop in loops:
        assert loop["iteratorPolicy"]["parallelismLimit"] >= 1, loop["componentRef"]
    if name == "ablation":  # the stage-2 grid: --max-parallel-rows 2 at once
        grid = [loop for loop in loops if "raw" in loop["parameterIterator"]["items"]]
        assert len(grid) == 2 and {loop["iteratorPolicy"]["parallelismLimit"] for loop in grid} == {2}


def test_the_evaluate_step_logs_classification_metrics(compiled):
    for name in ("training", "ablation"):
        spec = compiled[name]
        outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
        assert outputs["classification"]["artifactType"]["schemaTitle"] == "system.ClassificationMetrics"
        assert outputs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    root = compiled["training"]["root"]["outputDefinitions"]["artifacts"]
    assert root["classification"]["artifactType"]["schemaTitle"] == "system.ClassificationMetrics"


@pytest.mark.slow
def test_a_frame_classifier_reports_its_roc_and_confusion_matrix(demo_manifest, tmp_path):
    """What the evaluate step logs: the ROC of the anomaly score over the test frames and, at the model's
    calibrated threshold, the frames by true and predicted class (counted here from the predictions)."""
    import numpy as np
    from conftest import tiny_config

    from cplvad.data import load_dataset
    from cplvad.eval.classification import frame_classification
    from cplvad.modeling.factory import read_model_config
    from cplvad.workflow import evaluate, train_stage

    config = tiny_config("train.epochs=1")
    train_stage(demo_manifest, tmp_path / "m", config, stage=1, progress=False)
    pred = evaluate(demo_manifest, tmp_path / "m", config, progress=False).predictions
    frames = frame_classification(demo_manifest, pred, tmp_path / "m")
    threshold = read_model_config(tmp_path / "m")[1].extra["calibration"]["threshold"]
    gt = load_dataset(demo_manifest).frame_ground_truth(pred.lengths).astype(bool)
    flagged = np.repeat(pred.binary, 16) >= threshold
    assert frames.threshold == threshold
    assert frames.matrix == [
        [int((~gt & ~flagged).sum()), int((~gt & flagged).sum())],
        [int((gt & ~flagged).sum()), int((gt & flagged).sum())],
    ]
    assert len(frames.fpr) == len(frames.tpr) == len(frames.thresholds) <= 400
    assert frames.fpr[0] == 0.0 and frames.tpr[-1] == 1.0 and max(frames.thresholds) <= 1.0


def test_training_is_retried_and_the_tracked_steps_find_the_pipeline_run(compiled):
    spec = compiled["training"]
    tasks = _tasks(spec)
    for name in ("train-stage1", "train-stage2"):
        retry = tasks[name]["retryPolicy"]
        assert (
            retry["maxRetryCount"] == 2
            and retry["backoffDuration"] == "120s"
            and retry["backoffFactor"] == 2.0
        )
        assert (
            tasks[name]["inputs"]["parameters"]["checkpoint_uri"]["componentInputParameter"]
            == "checkpoint_uri"
        )
    platform = spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for label in (
        "exec-open-run",
        "exec-train-stage1",
        "exec-pseudo-labels",
        "exec-train-stage2",
        "exec-evaluate",
        "exec-register",
    ):
        assert {
            "fieldPath": "metadata.labels['workflows.argoproj.io/workflow']",
            "name": "CPLVAD_PIPELINE_RUN",
        } in platform[label]["fieldPathAsEnv"], label
    assert not any(
        env["name"] == "CPLVAD_PIPELINE_RUN" for env in platform["exec-extract-features"]["fieldPathAsEnv"]
    )
    assert tasks["open-run"]["cachingOptions"] == {} and tasks["open-run"]["dependentTasks"] == [
        "split-params"
    ]
    assert "open-run" in tasks["plan-data"]["dependentTasks"]  # the run is open before any stage logs


class FakeClient:
    instances: list = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.runs: list = []
        FakeClient.instances.append(self)

    def create_run_from_pipeline_func(self, func, **kwargs):
        self.runs.append((func, kwargs))
        return type("Result", (), {"run_id": "run-123"})()

    def wait_for_run_completion(self, run_id, timeout):
        self.waited = (run_id, timeout)
        return type("Run", (), {"state": self.kwargs.get("final_state", "SUCCEEDED")})()


def test_submit_authenticates_and_passes_the_parameters(monkeypatch, capsys, tmp_path):
    import kfp

    from pipelines import training_pipeline
    from pipelines.cli import main

    FakeClient.instances.clear()
    monkeypatch.setattr(kfp, "Client", FakeClient)
    rc = main(
        [
            "submit",
            "--host",
            "https://kubeflow.example.com/pipeline",
            "--namespace",
            "team-a",
            "--experiment",
            "exp",
            "--token",
            "TOKEN",
            "--source-uri",
            "s3://videos/ucf",
            "--accelerator-type",
            "nvidia.com/gpu",
            "--accelerator-count",
            "2",
            "--shards",
            "16",
            "--tracking-uri",
            "http://mlflow:5000",
            "--params",
            str(REPO / "configs" / "paper-ucf.yaml"),
            "--set",
            "train.epochs=7",
            "--set",
            "data.dataset=demo",  # the recipe's settings on videos of our own (--source-uri)
            "--features-uri",
            "s3://feats/ucf/",
            "--pipeline-root",
            "s3://kfp/root",
            "--wait",
            "--timeout",
            "60",
        ]
    )
    assert rc == 0
    client = FakeClient.instances[-1]
    assert (
        client.kwargs["host"] == "https://kubeflow.example.com/pipeline"
        and client.kwargs["existing_token"] == "TOKEN"
    )
    func, kwargs = client.runs[0]
    assert func.name == training_pipeline.name  # traced again: --tracking-uri is set on every pod
    assert kwargs["namespace"] == "team-a" and kwargs["experiment_name"] == "exp"
    assert kwargs["pipeline_root"] == "s3://kfp/root"
    args = kwargs["arguments"]
    assert (
        args["source_uri"] == "s3://videos/ucf"
        and args["accelerator_count"] == 2
        and args["num_shards"] == 16
    )
    assert "tracking_uri" not in args and "tracking_uri" not in args["params"]["tracking"]
    from kfp import compiler

    compiler.Compiler().compile(func, str(tmp_path / "submitted.yaml"))
    submitted = next(yaml.safe_load_all((tmp_path / "submitted.yaml").read_text()))
    for label, ex in submitted["deploymentSpec"]["executors"].items():
        assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"} in ex["container"]["env"], label
    assert args["checkpoint_uri"] == "s3://feats/ucf/checkpoints"  # derived from --features-uri
    assert (
        args["params"]["train"]["epochs"] == 7 and args["params"]["model"]["width"] == 512
    )  # paper-ucf.yaml + --set
    assert client.waited == ("run-123", 60)
    assert "submitted run run-123" in capsys.readouterr().out


def test_submit_fails_on_a_bad_parameter_before_contacting_the_cluster(monkeypatch, capsys):
    import kfp

    from pipelines.cli import main

    FakeClient.instances.clear()
    monkeypatch.setattr(kfp, "Client", FakeClient)
    assert main(["submit", "--host", "http://kfp", "--set", "train.epochs=-1"]) == 2
    assert "train.epochs" in capsys.readouterr().err
    assert not FakeClient.instances


def test_submit_wait_reports_a_failed_run(monkeypatch):
    import kfp

    from pipelines.cli import main

    monkeypatch.setattr(kfp, "Client", lambda **kw: FakeClient(**kw, final_state="FAILED"))
    assert main(["submit", "--host", "http://kfp", "--cookies", "authservice_session=abc", "--wait"]) == 1
    assert FakeClient.instances[-1].kwargs["cookies"] == "authservice_session=abc"


def test_library_is_free_of_orchestration_imports():
    offenders = []
    for path in (REPO / "src" / "cplvad").rglob("*.py"):
        for line in path.read_text().splitlines():
            if re.match(r"\s*(import|from)\s+(kfp|dvc)(\.|\s|$)", line):
                offenders.append(f"{path.relative_to(REPO)}: {line.strip()}")
    assert not offenders


def test_scoring_pipeline_fans_out_over_gpu_shards_and_collects_the_index(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "compile",
            "--pipeline",
            "scoring",
            "--out",
            str(tmp_path),
            "--image",
            IMAGE,
            "--max-parallel-shards",
            "2",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    spec, platform = yaml.safe_load_all((tmp_path / "scoring.yaml").read_text())
    assert "Compiled from git commit" in spec["pipelineInfo"]["description"]
    spec = {**spec, "platforms": platform["platforms"]}
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {
        "source_uri",
        "out_uri",
        "model_uri",
        "params",
        "num_shards",
        "accelerator_type",
        "accelerator_count",
        "secret_name",
    }
    assert (
        params["model_uri"]["defaultValue"] == "models:/cplvad@champion"
        and "defaultValue" not in params["source_uri"]
    )
    loop = next(t for t in spec["root"]["dag"]["tasks"].values() if "parameterIterator" in t)
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--plan-scoring-Output"
    assert loop["iteratorPolicy"]["parallelismLimit"] == 2  # at most 2 GPU pods at once
    score = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]["score-shard"]
    assert score["retryPolicy"]["maxRetryCount"] == 3 and score["cachingOptions"] == {}
    executors = spec["deploymentSpec"]["executors"]
    acc = executors["exec-score-shard"]["container"]["resources"]["accelerator"]
    assert acc["resourceCount"] == "{{$.inputs.parameters['pipelinechannel--accelerator_count']}}"
    assert "accelerator" not in executors["exec-collect-scores"]["container"]["resources"]
    assert all(ex["container"]["image"] == IMAGE for ex in executors.values())
    collect = spec["root"]["dag"]["tasks"]["collect-scores"]
    assert collect["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]["producerTask"] == next(
        k for k, t in spec["root"]["dag"]["tasks"].items() if "parameterIterator" in t
    )
    assert collect["cachingOptions"] == {}
    assert "tolerations" in spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-score-shard"]
