"""The operators' loop on the demo, end to end with the real `dvc repro`: score the test videos, a verdict
(a false alarm on a normal test video), `cplvad feedback add`, `dvc repro` retrains with the feedback, and
that video's peak score falls below the calibrated threshold while the evaluation reports the false-alarm
figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_dvc_pipeline import BIN, SMALL, _copy_repo, sh

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dvc-repro")]

LOOP = {
    **SMALL,
    "demo": {**SMALL["demo"], "test_normal": 6},
    "train": {**SMALL["train"], "epochs": 40},
}
"""The tiny pipeline, trained long enough to learn something (two epochs leave every score at the prior), with
enough normal test videos that one of them carries a false alarm (seed 0: Normal502)."""


def score(repo: Path, inputs: str, out: str) -> dict[str, dict]:
    sh(
        [
            str(BIN / "cplvad"),
            "predict",
            inputs,
            "--model",
            "outputs/stage2",
            "--out",
            out,
            "--report",
            "--workers",
            "0",
        ],
        repo,
    )
    return {p.stem: json.loads(p.read_text()) for p in (repo / out).glob("*.json") if p.name != "index.json"}


def test_a_false_alarm_marked_in_review_is_trained_away(tmp_path):
    repo = _copy_repo(tmp_path / "repo", LOOP)
    dvc = str(BIN / "dvc")
    sh([dvc, "repro"], repo)
    found = score(repo, "data/demo/videos/test", "outputs/review")
    normal = {k: d for k, d in found.items() if "/Normal/" in d["input"] and d["events"]}
    assert normal, "no normal test video carries an event: nothing to mark as a false alarm"
    name, doc = max(normal.items(), key=lambda kv: max(kv[1]["snippet_scores"]))
    assert max(doc["snippet_scores"]) >= doc["threshold"] and doc["threshold_source"] == "calibrated"
    assert (repo / "outputs/review/clips" / name).is_dir()  # what the operator watched

    verdicts = {  # what the review page exports after "false alarm" on each event and "reviewed"
        "schema": "cplvad-verdicts/1",
        "predictions": str(repo / "outputs/review"),
        "videos": [
            {
                "key": f"{name}.json",
                "name": name,
                "video": "reviewed",
                "missed_class": None,
                "events": [
                    {
                        "event": k,
                        "start_frame": e["start_frame"],
                        "end_frame": e["end_frame"],
                        "predicted_class": e["class"],
                        "verdict": "false_alarm",
                        "class": None,
                    }
                    for k, e in enumerate(doc["events"])
                ],
            }
        ],
    }
    (tmp_path / "verdicts.json").write_text(json.dumps(verdicts, indent=2))
    added = sh([str(BIN / "cplvad"), "feedback", "add", str(tmp_path / "verdicts.json")], repo)
    assert f"added {len(doc['events']) + 1} sample(s)" in " ".join(added.split())
    assert (repo / "feedback/features.dvc").is_file()  # the samples' features are versioned by DVC
    sh(["git", "add", "feedback"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "feedback"], repo)
    before = tmp_path / "stage2-before"
    shutil.copytree(repo / "outputs/stage2", before)

    log = sh([dvc, "repro"], repo)
    assert "Running stage 'train_stage1'" in log and "Running stage 'prepare_data'" not in log
    metrics = json.loads((repo / "outputs/eval/metrics.json").read_text())
    assert metrics["feedback.false_alarm_clips"] == len(doc["events"])
    assert metrics["feedback.false_alarms_per_hour"] is not None and "false_alarms_per_hour" in log
    assert metrics["feedback.false_alarms"] == 0  # the retrained model no longer flags the clips

    # the model before the feedback did flag them: the same figures of the old model
    old = tmp_path / "old-metrics.json"
    sh(
        [
            str(BIN / "cplvad"),
            "evaluate",
            "--dataset",
            "data/dataset/dataset.yaml",
            "--model",
            str(before),
            "--out",
            str(old),
        ],
        repo,
    )
    assert json.loads(old.read_text())["feedback.false_alarms"] >= 1

    again = score(repo, doc["input"], "outputs/review-after")[name]
    assert again["threshold_source"] == "calibrated" and not again["events"]
    assert max(again["snippet_scores"]) < again["threshold"]
