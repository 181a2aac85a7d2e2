"""Operators' verdicts as training data (``cplvad.feedback``): reading and checking the review page's export,
``cplvad feedback add`` (samples, features, replacement, refusals with the line), the training set with
``data.feedback``, the feedback figures of the evaluation, and the promotion check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_config

from cplvad.cli import cli
from cplvad.data.dataset import read_feature_list
from cplvad.data.training_set import load_training_set
from cplvad.errors import DataError
from cplvad.feedback.add import add_feedback
from cplvad.feedback.folder import LIST_FILE, read_record
from cplvad.feedback.metrics import feedback_metrics, feedback_regression
from cplvad.feedback.training import training_set
from cplvad.feedback.verdicts import read_verdicts
from cplvad.modeling.factory import load_model, update_meta

FPS = 25.0


def prediction(dataset, video, events: list[tuple[int, int, str]]) -> dict:
    """A prediction document of a demo test video scored from its feature file, with the given events
    (snippets [a, b), class), as `cplvad predict --fps 25` writes it."""
    path = dataset.test.locate(video.rows[0])
    t = len(np.load(path))
    return {
        "schema": "cplvad-prediction/1",
        "input": str(path),
        "input_kind": "features",
        "input_bytes": path.stat().st_size,
        "model": {"source": "m", "path": "m", "version": "sha256:abc", "feature_dim": 512},
        "classes": list(dataset.classes.names),
        "threshold": 0.5,
        "fps": FPS,
        "frames": t * 16,
        "frames_per_snippet": 16,
        "snippets": t,
        "snippet_scores": [0.1] * t,
        "events": [
            {
                "start_frame": 16 * a,
                "end_frame": 16 * b,
                "start_s": 16 * a / FPS,
                "end_s": 16 * b / FPS,
                "class": c,
                "score": 0.9,
                "class_probability": 0.6,
                "start_snippet": a,
                "end_snippet": b,
            }
            for a, b, c in events
        ],
    }


@pytest.fixture()
def judged(demo_dataset, tmp_path) -> tuple[Path, dict]:
    """A predictions folder with a normal and an abnormal demo test video, each with events, and the
    verdicts the review page would export for them."""
    normal = next(v for v in demo_dataset.test if not v.abnormal)
    abnormal = next(v for v in demo_dataset.test if v.abnormal)
    out = tmp_path / "predictions"
    out.mkdir()
    docs = {
        normal.name: prediction(demo_dataset, normal, [(5, 8, "Fighting")]),
        abnormal.name: prediction(demo_dataset, abnormal, [(2, 4, "Stealing"), (10, 14, "Explosion")]),
    }
    for name, doc in docs.items():
        (out / f"{name}.json").write_text(json.dumps(doc))

    def event(name: str, k: int, verdict: str, cls: str | None) -> dict:
        e = docs[name]["events"][k]
        return {
            "event": k,
            "start_frame": e["start_frame"],
            "end_frame": e["end_frame"],
            "predicted_class": e["class"],
            "verdict": verdict,
            "class": cls,
        }

    verdicts = {
        "schema": "cplvad-verdicts/1",
        "predictions": str(out),
        "videos": [
            {
                "key": f"{normal.name}.json",
                "name": normal.name,
                "video": "reviewed",
                "missed_class": None,
                "events": [event(normal.name, 0, "false_alarm", None)],
            },
            {
                "key": f"{abnormal.name}.json",
                "name": abnormal.name,
                "video": "missed",
                "missed_class": "RoadAccidents",
                "events": [
                    event(abnormal.name, 0, "false_alarm", None),
                    event(abnormal.name, 1, "confirmed", "Fighting"),
                ],
            },
        ],
    }
    path = tmp_path / "verdicts.json"
    path.write_text(json.dumps(verdicts, indent=2))
    return path, {"normal": normal, "abnormal": abnormal, "docs": docs, "verdicts": verdicts}


def test_verdicts_become_video_level_samples_with_their_features(judged, demo_dataset, tmp_path):
    path, j = judged
    folder = tmp_path / "feedback"
    added = add_feedback(path, folder, tiny_config(), version=False)
    by_kind = {}
    for s in added.samples:
        by_kind.setdefault(s["kind"], []).append(s)
    normal, abnormal = j["normal"].name, j["abnormal"].name
    t_normal = j["docs"][normal]["snippets"]
    context = 5  # 3 s of context at 25 fps, 16 frames per snippet: ceil(75 / 16)
    fa_normal, fa_abnormal = by_kind["false_alarm"]
    assert (fa_normal["video"], fa_normal["label"], fa_normal["span"]) == (normal, "Normal", [0, 8 + context])
    assert fa_normal["event_span"] == [5, 8] and fa_normal["seconds"] == pytest.approx(13 * 16 / FPS)
    assert fa_abnormal["span"] == [0, 4 + context] and fa_abnormal["event_span"] == [2, 4]
    [confirmed] = by_kind["confirmed"]
    assert confirmed["label"] == "Fighting" and confirmed["span"] == [10 - context, 14 + context]
    [missed] = by_kind["missed"]
    assert (missed["video"], missed["label"], missed["span"]) == (
        abnormal,
        "RoadAccidents",
        [0, j["docs"][abnormal]["snippets"]],
    )
    [reviewed] = by_kind[
        "reviewed"
    ]  # reviewed, nothing missed, no confirmed event: the whole video is normal
    assert (reviewed["video"], reviewed["label"], reviewed["span"]) == (normal, "Normal", [0, t_normal])
    assert added.revision == 1 and added.replaced == 0 and added.versioned is None

    # the folder is a training list whose features are the judged spans of the scored feature files
    rows = read_feature_list(folder / LIST_FILE, demo_dataset.classes, None, "feedback")
    assert len(rows) == 5 and {v.label for v in rows} == {"Normal", "Fighting", "RoadAccidents"}
    for s in added.samples:
        [video] = [v for v in rows if v.name == s["name"]]
        source = np.load(j["docs"][s["video"]]["input"])
        np.testing.assert_array_equal(
            np.load(rows.locate(video.rows[0])), source[s["span"][0] : s["span"][1]]
        )

    # judged again: the videos' samples are replaced, not added twice
    again = add_feedback(path, folder, tiny_config(), version=False)
    record = read_record(folder)
    assert again.replaced == 5 and again.revision == 2 and len(record.samples) == 5
    assert len(list((folder / "features/samples").rglob("*.npy"))) == 5
    assert len(list((folder / "features/videos").glob("*.npy"))) == 2  # the judged videos, for the figures


def _line_of(text: str, needle: str, nth: int = 0) -> int:
    """The line of the ``nth`` occurrence of ``needle``."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    return text.count("\n", 0, at) + 1


def test_unknown_and_contradictory_verdicts_are_refused_with_the_line(judged, tmp_path):
    path, j = judged
    good = j["verdicts"]

    def refused(change) -> tuple[str, str]:
        doc = json.loads(json.dumps(good))
        change(doc)
        bad = tmp_path / "bad.json"
        text = json.dumps(doc, indent=2)
        bad.write_text(text)
        with pytest.raises(DataError) as err:
            add_feedback(bad, tmp_path / "fb", tiny_config(), version=False)
        return str(err.value), text

    def unknown(doc):
        doc["videos"][1]["key"] = "Nobody.json"

    msg, text = refused(unknown)
    line = _line_of(text, '"key": "Nobody.json"') - 1  # the line of the "{" that opens its object
    assert f"bad.json:{line}:" in msg and "'Nobody' is not in the predictions" in msg

    def twice(doc):
        again = json.loads(json.dumps(doc["videos"][0]))
        again["events"][0]["verdict"] = "confirmed"
        again["events"][0]["class"] = "Fighting"
        doc["videos"].append(again)

    msg, text = refused(twice)
    line = _line_of(text, '"key"', 2) - 1  # the object holding the third "key"
    assert f"bad.json:{line}:" in msg and "judged again, differently" in msg

    def event_twice(doc):
        doc["videos"][1]["events"].append(
            {**doc["videos"][1]["events"][1], "verdict": "false_alarm", "class": None}
        )

    msg, text = refused(event_twice)
    assert "event 1 of video" in msg and "judged false_alarm here but confirmed on line" in msg

    def rescored(doc):
        doc["videos"][0]["events"][0]["start_frame"] += 16

    msg, _ = refused(rescored)
    assert "is not an event of" in msg and "scored again after the review" in msg

    def normal_class(doc):
        doc["videos"][1]["events"][1]["class"] = "Normal"

    msg, _ = refused(normal_class)
    assert "confirmed class 'Normal' is not an anomaly class" in msg

    def no_missed_class(doc):
        doc["videos"][1]["missed_class"] = None

    msg, _ = refused(no_missed_class)
    assert "missed class None" in msg

    other = tmp_path / "other"
    other.mkdir()
    res = CliRunner().invoke(
        cli,
        [
            "feedback",
            "add",
            str(path),
            "--dataset",
            str(tmp_path / "fb"),
            "--predictions",
            str(other),
            "--no-dvc",
        ],
    )
    assert res.exit_code == 2 and "is not in the predictions" in " ".join(res.output.split())
    assert not (tmp_path / "fb" / "feedback.json").exists()  # nothing was written


def test_the_cli_adds_to_the_configured_folder(judged, tmp_path):
    path, _ = judged
    folder = tmp_path / "fb"
    res = CliRunner().invoke(
        cli, ["feedback", "add", str(path), "--no-dvc", "--set", f"data.feedback={folder}"]
    )
    out = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert (
        f"added 5 sample(s) (1 confirmed, 2 false alarm, 1 missed, 1 reviewed) to {folder} (revision 1)"
        in out
    )
    assert read_verdicts(path).predictions == str(path.parent / "predictions")


def test_a_folder_of_someone_elses_is_never_overwritten(judged, tmp_path):
    """Without its feedback.json a folder holding a list or features is not cplvad's: refused, untouched; a
    folder with only a README (the repository's feedback/) becomes one."""
    path, _ = judged
    theirs = tmp_path / "theirs"
    (theirs / "features").mkdir(parents=True)
    (theirs / "feedback.csv").write_text("path,label\nmine.npy,Normal\n")
    (theirs / "features" / "mine.npy").write_bytes(b"my own array")
    before = {p: p.read_bytes() for p in theirs.rglob("*") if p.is_file()}
    res = CliRunner().invoke(cli, ["feedback", "add", str(path), "--no-dvc", "--dataset", str(theirs)])
    assert (
        res.exit_code == 2
        and f"{theirs} holds feedback.csv and features but no feedback.json" in " ".join(res.output.split())
    ), res.output
    assert {
        p: p.read_bytes() for p in theirs.rglob("*") if p.is_file() and ".cplvad" not in p.parts
    } == before

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "README.md").write_text("# feedback\n")
    assert add_feedback(path, fresh, tiny_config(), version=False).revision == 1
    assert (fresh / "README.md").read_text() == "# feedback\n"


def test_the_training_set_holds_the_feedback_after_the_dataset(judged, demo_dataset, tmp_path):
    path, _ = judged
    folder = tmp_path / "feedback"
    add_feedback(path, folder, tiny_config(), version=False)
    base = load_training_set(demo_dataset, 32, progress=False)
    plain = training_set(demo_dataset, tiny_config("data.feedback=null"), 32, progress=False)
    assert plain.keys == base.keys
    data = training_set(
        demo_dataset, tiny_config(f"data.feedback={folder}", "data.feedback_repeat=1"), 32, progress=False
    )
    names = [s["name"] for s in read_record(folder).samples]
    assert data.keys == base.keys + [f"{n}__0" for n in names]
    torch.testing.assert_close(data.features[: len(base)], base.features)
    extra = data.subset(torch.arange(len(base), len(data)))
    assert extra.abnormal.tolist() == [s["label"] != "Normal" for s in read_record(folder).samples]
    repeated = training_set(
        demo_dataset, tiny_config(f"data.feedback={folder}", "data.feedback_repeat=3"), 32, progress=False
    )
    assert len(repeated) == len(base) + 3 * len(names) and len(set(repeated.keys)) == len(repeated)
    assert repeated.keys[len(base) : len(base) + 3] == [f"{names[0]}__{k}" for k in range(3)]
    assert repeated.video_count == data.video_count
    with pytest.raises(DataError, match="does not exist"):
        training_set(demo_dataset, tiny_config(f"data.feedback={tmp_path / 'nothing'}"), 32, progress=False)


@pytest.fixture(scope="module")
def demo_model(demo_manifest, tmp_path_factory) -> Path:
    from cplvad.workflow import train_stage

    out = tmp_path_factory.mktemp("feedback-model") / "stage1"
    train_stage(demo_manifest, out, tiny_config(), stage=1, progress=False)
    return out


def test_feedback_figures_follow_the_threshold(judged, demo_model, tmp_path):
    path, _ = judged
    folder = tmp_path / "feedback"
    add_feedback(path, folder, tiny_config(), version=False)
    figures = {}
    for threshold in (0.0, 1.0):  # every snippet an event / none
        model_dir = tmp_path / f"model-{threshold}"
        shutil.copytree(demo_model, model_dir)
        update_meta(model_dir, calibration={"threshold": threshold, "false_alarm_rate": 0.01})
        model, _, meta = load_model(model_dir, torch.device("cpu"))
        figures[threshold] = feedback_metrics(model, meta, folder, 1, torch.device("cpu"))
    hours = (13 + 9) * 16 / FPS / 3600  # the two false-alarm clips
    assert figures[0.0] == {
        "feedback.false_alarm_clips": 2.0,
        "feedback.false_alarms": 2.0,
        "feedback.false_alarms_per_hour": pytest.approx(2 / hours),
        "feedback.confirmed_events": 1.0,
        "feedback.event_recall": 100.0,
        "feedback.class_recall": figures[0.0]["feedback.class_recall"],
    }
    assert figures[0.0]["feedback.class_recall"] in (0.0, 100.0)
    assert figures[1.0]["feedback.false_alarms"] == 0.0 and figures[1.0]["feedback.event_recall"] == 0.0
    # the candidate is worse than the champion when it raises more false alarms or finds fewer events
    assert "false_alarms 2.00 vs 0.00" in feedback_regression(figures[0.0], figures[1.0])
    assert "event_recall 0.00 vs 100.00" in feedback_regression(figures[1.0], figures[0.0])
    assert feedback_regression(figures[0.0], figures[0.0]) is None
    assert feedback_regression({"feedback.event_recall": None}, {"feedback.event_recall": 50.0}) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    model, _, meta = load_model(demo_model, torch.device("cpu"))
    assert feedback_metrics(model, meta, empty, 1, torch.device("cpu")) == {}


@pytest.mark.slow
def test_promotion_keeps_a_champion_that_does_better_on_the_verdicts(
    judged, demo_model, tmp_path, monkeypatch
):
    from cplvad.feedback.metrics import feedback_check
    from cplvad.tracking.pipeline_run import PARENT_RUN_ENV, PIPELINE_RUN_ENV, open_parent
    from cplvad.tracking.registry import CHECKS, promote, register_model

    path, _ = judged
    folder = tmp_path / "feedback"
    add_feedback(path, folder, tiny_config(), version=False)
    monkeypatch.chdir(tmp_path)  # a fresh tracking store, ./mlflow.db
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", PARENT_RUN_ENV, PIPELINE_RUN_ENV):
        monkeypatch.delenv(name, raising=False)
    config = tiny_config(f"data.feedback={folder}")
    checks = [*CHECKS, feedback_check]  # what `cplvad promote` runs

    def register(threshold: float, video_auc: float) -> str:
        copy = tmp_path / f"model-{threshold}-{video_auc}"
        shutil.copytree(demo_model, copy)
        update_meta(
            copy,
            calibration={"threshold": threshold, "false_alarm_rate": 0.01},
            validation={"video_auc": video_auc, "videos": 4, "fraction": 0.2, "split": "s1"},
        )
        return register_model(
            copy,
            open_parent(config),
            config,
            dataset="cplvad-demo",
            metrics={"frame_auc_binary": 70.0},
            data_checksum="c" * 64,
        )

    register(1.0, 70.0)  # flags nothing
    assert promote(config, checks=checks).promoted
    register(0.0, 80.0)  # better on its validation videos, but every feedback clip is an event
    result = promote(config, checks=checks)
    assert not result.promoted
    assert "worse than champion version 1 on the operators' verdicts" in result.reason
    assert "false_alarms 2.00 vs 0.00" in result.reason and "(revision 1)" in result.reason
    assert promote(tiny_config(), checks=checks).promoted  # without data.feedback validation decides


def test_the_data_step_ignores_the_feedback_and_training_follows_it():
    """Appending verdicts or changing their weight retrains; it never extracts the dataset again."""
    import yaml

    from cplvad.config import DataConfig

    stages = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())["stages"]
    feedback = {"data.feedback", "data.feedback_repeat"}
    data_keys = {f"data.{k}" for k in DataConfig.model_fields}
    assert set(stages["prepare_data"]["params"]) == data_keys - feedback | {"clip", "extract"}
    for stage in ("train_stage1", "pseudo_labels", "train_stage2"):
        assert feedback <= set(stages[stage]["params"]) and "feedback" in stages[stage]["deps"]
    assert "data.feedback" in stages["evaluate"]["params"] and "feedback" in stages["evaluate"]["deps"]
    assert "feedback" not in stages["prepare_data"]["deps"]
