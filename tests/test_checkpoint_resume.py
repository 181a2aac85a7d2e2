"""Training resumes from a checkpoint kept outside its model directory (``checkpoint_uri``): what a retried
Kubeflow pod needs, since it starts with an empty output artifact."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, crash_in_third_epoch, empty_bucket, tiny_config

from cplvad.data import load_dataset
from cplvad.data.training_set import load_training_set
from cplvad.train.checkpoint_mirror import CheckpointMirror
from cplvad.train.trainer import CHECKPOINT_FILE, fingerprint
from cplvad.workflow import train_stage

CONFIG = ("train.epochs=3", "train.checkpoint_seconds=0")


@pytest.mark.slow
def test_a_fresh_directory_resumes_from_the_mirrored_checkpoint(demo_manifest, tmp_path, monkeypatch):
    config = tiny_config(*CONFIG)
    mirror_root = tmp_path / "mirror"
    with monkeypatch.context() as m:
        crash_in_third_epoch(m)
        with pytest.raises(KeyboardInterrupt):
            train_stage(
                demo_manifest,
                tmp_path / "attempt1",
                config,
                stage=1,
                progress=False,
                checkpoint_uri=str(mirror_root),
            )
    data = load_training_set(load_dataset(demo_manifest), config.model.max_len, progress=False)
    mirrored = mirror_root / fingerprint(config, data, 1, None) / CHECKPOINT_FILE
    assert torch.load(mirrored, weights_only=True)["epoch"] == 2  # the mirror holds the last checkpoint

    result = train_stage(
        demo_manifest, tmp_path / "attempt2", config, stage=1, progress=False, checkpoint_uri=str(mirror_root)
    )
    assert result.resumed_from == 2 and [h["epoch"] for h in result.history] == [1, 2, 3]
    assert not mirrored.exists()  # the finished model replaces the durable copy
    full = train_stage(demo_manifest, tmp_path / "uninterrupted", config, stage=1, progress=False)
    a, b = (
        torch.load(d / "model.pt", weights_only=True)
        for d in (tmp_path / "uninterrupted", tmp_path / "attempt2")
    )
    assert all(torch.equal(a[k], b[k]) for k in a) and full.resumed_from == 0


def test_the_mirror_only_seeds_a_fresh_directory(tmp_path):
    (tmp_path / "m" / "fp").mkdir(parents=True)
    (tmp_path / "m" / "fp" / CHECKPOINT_FILE).write_bytes(b"weights")
    mirror = CheckpointMirror(str(tmp_path / "m"), "fp")
    other = tmp_path / "other"
    other.mkdir()
    (other / "fingerprint.txt").write_text("another training\n")
    assert not mirror.restore(other) and not (other / CHECKPOINT_FILE).exists()
    assert mirror.restore(tmp_path / "fresh")
    assert (tmp_path / "fresh" / "fingerprint.txt").read_text() == "fp\n"
    assert not CheckpointMirror(str(tmp_path / "m"), "unknown").restore(tmp_path / "fresh2")


# A Kubeflow training pod, as the component runs it; the second epoch stalls so that the test can kill the
# process (SIGKILL, like an evicted pod) after the first checkpoint reached S3.
POD = """
import json, sys, time
from kfp.dsl import Dataset, Model
import components
import cplvad.train.trainer as trainer
original, calls = trainer.batches, []
def batches(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        time.sleep(600)
    return original(*args, **kwargs)
trainer.batches = batches
dataset, model, uri, params = sys.argv[1:]
components.train_stage1.python_func(dataset=Dataset(uri=dataset), params=json.loads(params), model=Model(uri=model),
                                    checkpoint_uri=uri)
"""


@pytest.mark.slow
def test_a_killed_training_pod_is_resumed_by_its_retry_through_s3(demo_manifest, s3_env, tmp_path):
    from kfp.dsl import Dataset, Model

    import components

    client = empty_bucket("ckpt-retry")
    uri = "s3://ckpt-retry/run/checkpoints"
    params = tiny_config(*CONFIG).to_dict()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    pod = subprocess.Popen(
        [
            sys.executable,
            "-c",
            POD,
            str(demo_manifest.parent),
            str(tmp_path / "pod1"),
            uri,
            json.dumps(params),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while not client.list_objects_v2(Bucket="ckpt-retry", Prefix="run/checkpoints/").get("Contents"):
            if pod.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no checkpoint reached S3: {pod.stderr.read().decode()[-3000:]}")
            time.sleep(0.2)
    finally:
        pod.send_signal(signal.SIGKILL)
        pod.wait(timeout=30)
    (key,) = [
        o["Key"] for o in client.list_objects_v2(Bucket="ckpt-retry", Prefix="run/checkpoints/")["Contents"]
    ]
    local = tmp_path / "checkpoint.pt"
    client.download_file("ckpt-retry", key, str(local))
    saved = torch.load(local, weights_only=True)
    assert saved["epoch"] == 1

    # the retry: a new pod, an empty output artifact, the same checkpoint_uri
    retry = Model(uri=str(tmp_path / "pod2"))
    components.train_stage1.python_func(
        dataset=Dataset(uri=str(demo_manifest.parent)), params=params, model=retry, checkpoint_uri=uri
    )
    assert retry.metadata["resumed_from_epoch"] == 1 and retry.metadata["epochs"] == 3
    history = json.loads((tmp_path / "pod2" / "history.json").read_text())
    assert history[0] == saved["history"][0]  # epoch 1 (its loss and duration) comes from the killed pod
    assert "Contents" not in client.list_objects_v2(Bucket="ckpt-retry", Prefix="run/checkpoints/")
