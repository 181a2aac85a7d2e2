"""Built-in benchmarks: ground truth from the package's metadata (checked against tests/reference_gt.py, an
independent reading, and the published files where they are at hand), miniature feature releases,
`cplvad datasets`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from reference_gt import DIGESTS, GroundTruth, from_metadata, from_published

from cplvad.cli import cli
from cplvad.config import DataConfig, load_config
from cplvad.data import load_dataset
from cplvad.data.benchmarks import load_benchmark, release_folders, scan_training_features
from cplvad.data.check import check_dataset
from cplvad.data.selection import resolve_dataset
from cplvad.errors import ConfigError, DataError

BUILT_IN = ("ucf-crime", "xd-violence")
PUBLISHED = {
    "ucf-crime": ("ucf_CLIP_rgb.csv", "ucf_CLIP_rgbtest.csv", "Temporal_Anomaly_Annotation.txt", "ucf"),
    "xd-violence": ("xd_CLIP_rgb.csv", "xd_CLIP_rgbtest.csv", "annotations.txt", "xd"),
}
"""Training list, test list, frame annotations and their format, as published."""
TINY = [
    "clip.model=cplvad-tiny",
    "model.max_len=32",
    "model.width=32",
    "model.heads=2",
    "model.levels=3",
    "model.stem_blocks=1",
    "model.window=4",
    "train.epochs=2",
    "train.batch_size=8",
    "train.lr=0.001",
]


def metadata_only(name: str, tmp_path: Path):
    """The built-in dataset without features, its test lengths from the package's frame counts."""
    dataset = load_dataset(resolve_dataset(DataConfig(dataset=name), tmp_path / name))
    lengths = np.array([v.frames // 16 for v in load_benchmark(name).test])
    return dataset, lengths


def assert_package_gives(name: str, reference: GroundTruth, tmp_path: Path) -> None:
    """The package's test videos, frame ground truth and segment ground truth equal ``reference``."""
    dataset, lengths = metadata_only(name, tmp_path)
    assert [(v.name, v.label, 16 * t) for v, t in zip(dataset.test, lengths)] == reference.videos
    np.testing.assert_array_equal(dataset.frame_ground_truth(lengths), reference.frames)
    segments = dataset.segment_ground_truth(lengths)
    assert [[(g.start, g.end, g.label) for g in video] for video in segments] == reference.segments


@pytest.mark.parametrize("name", BUILT_IN)
def test_ground_truth_from_the_package_equals_an_independent_reading_of_its_metadata(name, tmp_path):
    reference = from_metadata(name)
    # the metadata carries the published ground truth: the digests were made from the published files
    assert reference.digests() == json.loads(DIGESTS.read_text())[name]
    assert len(reference.videos) == {"ucf-crime": 290, "xd-violence": 800}[name]
    assert_package_gives(name, reference, tmp_path)


@pytest.mark.parametrize("name", BUILT_IN)
def test_ground_truth_from_the_package_equals_the_published_files(name, benchmarks, tmp_path):
    published = from_published(benchmarks / name)
    assert published.digests() == json.loads(DIGESTS.read_text())[name]
    assert_package_gives(name, published, tmp_path)
    # the package's manifest loader reads the published annotation format to the same frame ground truth
    dataset, lengths = metadata_only(name, tmp_path)
    train, test, annotations, fmt = PUBLISHED[name]
    manifest = tmp_path / "published.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "classes": list(dataset.classes.names),
                "label_codes": dict(dataset.classes.codes),
                "train_list": str(benchmarks / name / train),
                "test_list": str(benchmarks / name / test),
                "annotations": str(benchmarks / name / annotations),
                "annotations_format": fmt,
            }
        )
    )
    np.testing.assert_array_equal(load_dataset(manifest).frame_ground_truth(lengths), published.frames)


def test_scanning_a_release_finds_training_videos_and_leaves_test_videos_out(mini_releases):
    ucf = load_benchmark("ucf-crime")
    folders = release_folders(ucf, str(mini_releases["ucf-crime"]))
    rows = scan_training_features(ucf, folders.train)
    assert len(rows) == 12 and {label for _, label in rows} == {"Normal", "Abuse", "Fighting", "Stealing"}
    assert ("Training_Normal_Videos_Anomaly/Normal_Videos900_x264__1.npy", "Normal") in rows
    assert not {Path(p).stem.rsplit("__", 1)[0] for p, _ in rows} & {v.name for v in ucf.test}
    xd = load_benchmark("xd-violence")
    rows = scan_training_features(xd, release_folders(xd, str(mini_releases["xd-violence"])).train)
    assert len(rows) == 12 and {label for _, label in rows} == {"A", "B1-0-0", "B2-G-0", "B4-0-0"}


def test_a_published_training_list_is_rebased_onto_the_release(mini_releases, tmp_path):
    root = mini_releases["ucf-crime"]
    listed = tmp_path / "ucf_CLIP_rgb.csv"
    listed.write_text(
        "path,label\n"
        + "".join(
            f"/home/xbgydx/Desktop/UCFClipFeatures/{sub}__{k},{label}\n"
            for sub, label in (
                ("Abuse/Abuse900_x264", "Abuse"),
                ("Training_Normal_Videos_Anomaly/Normal_Videos901_x264", "Normal"),
            )
            for k in (0, 1)
        ).replace(",", ".npy,")
    )
    cfg = DataConfig(dataset="ucf-crime", features_root=str(root), train_list=str(listed))
    dataset = load_dataset(resolve_dataset(cfg, tmp_path / "resolved"))
    assert [v.name for v in dataset.train] == ["Abuse900_x264", "Normal_Videos901_x264"]
    assert dataset.train.samples()[0][2] == root / "Abuse" / "Abuse900_x264__0.npy"


def test_xd_separate_folders_can_be_given_one_by_one(mini_releases, tmp_path):
    root = mini_releases["xd-violence"]
    cfg = DataConfig(
        dataset="xd-violence",
        train_features_root=str(root / "XDTrainClipFeatures"),
        test_features_root=str(root / "XDTestClipFeatures"),
    )
    dataset = load_dataset(resolve_dataset(cfg, tmp_path / "xd"))
    assert len(dataset.train) == 6 and len(dataset.test) == 800
    assert dataset.test.locate(dataset.test.videos[0].rows[0]).parent == root / "XDTestClipFeatures"
    with pytest.raises(DataError, match="data.train_features_root and data.test_features_root"):
        resolve_dataset(
            DataConfig(dataset="xd-violence", features_root=str(root / "XDTrainClipFeatures")), tmp_path / "x"
        )


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_datasets_lists_the_builtins():
    res = invoke("datasets")
    assert res.exit_code == 0
    for fragment in (
        "demo",
        "ucf-crime",
        "UCF-Crime: 14 classes, 1610 training and 290 test",
        "xd-violence",
        "XD-Violence: 7 classes, 3954 training and 800 test",
        "data.features_root",
    ):
        assert fragment in res.output


def test_every_builtin_names_a_metric_as_its_headline():
    from cplvad.data.benchmark_specs import BENCHMARKS
    from cplvad.eval.metrics import METRIC_KEYS

    headline = {name: BENCHMARKS[name].headline_metric for name in BENCHMARKS}
    assert {name: headline[name] for name in BUILT_IN} == {
        "ucf-crime": "frame_auc_binary",  # the literature: frame AUC on UCF-Crime, frame AP on XD-Violence
        "xd-violence": "frame_ap_binary",
    }
    assert set(headline.values()) <= set(METRIC_KEYS)


def test_check_reports_what_is_there_and_fails_when_training_could_not_run(mini_release_writer, tmp_path):
    root = mini_release_writer(tmp_path / "UCFClipFeatures", "ucf-crime", published_lengths=True, crops=10)
    res = invoke("datasets", "check", "ucf-crime", "--features-root", str(root))
    assert res.exit_code == 0, res.output
    assert "train: 6 of 6 videos found, 10 crops per video, 16-d" in res.output
    assert "test: 290 of 290 videos found, 1 crop per video" in res.output
    assert "match the annotated frame counts for 290 of 290 videos" in res.output and "OK" in res.output
    # a test video 16 frames shorter than annotated (as in the published UCF release): a note, not a failure
    first = root / "Abuse" / "Abuse028_x264__5.npy"
    np.save(first, np.load(first)[:-1])
    res = invoke("datasets", "check", "ucf-crime", "--features-root", str(root))
    assert (
        res.exit_code == 0 and "1 differ by up to 16 frames (e.g. Abuse028_x264 1392 vs 1408)" in res.output
    )
    # a missing test video and features of another width: training or evaluation would fail
    (root / "Arrest" / "Arrest001_x264__5.npy").unlink()
    np.save(root / "Abuse" / "Abuse900_x264__0.npy", np.zeros((5, 32), np.float32))
    res = invoke("datasets", "check", "ucf-crime", "--features-root", str(root))
    assert res.exit_code == 1
    assert "test: 289 of 290 videos found" in res.output and "Arrest001_x264__5" in res.output
    assert "feature widths differ" in res.output and "NOT OK" in res.output


def test_check_of_a_manifest_and_bad_names(demo_manifest):
    res = invoke("datasets", "check", str(demo_manifest))
    assert res.exit_code == 0 and "OK: training and evaluation can run" in res.output
    res = CliRunner().invoke(cli, ["datasets", "check", "ucf_crime"])
    assert res.exit_code == 2 and "not a built-in dataset (demo, ucf-crime, xd-violence)" in res.output
    res = CliRunner().invoke(cli, ["datasets", "check", "ucf-crime"])
    assert res.exit_code == 2 and "--features-root" in res.output


@pytest.mark.parametrize(
    ("sets", "fragment"),
    [
        (["data.features_root=/x"], "data.features_root does not apply to data.dataset='demo'"),
        (
            ["data.dataset=ucf-crime", "data.train_videos=/v"],
            "data.train_videos does not apply to data.dataset='ucf-crime'",
        ),
        (["data.dataset=d/dataset.yaml", "data.train_videos=/v"], "data.test_videos is not"),
        (
            [
                "data.dataset=d/dataset.yaml",
                "data.train_videos=/v",
                "data.test_videos=/w",
                "data.features_root=/f",
            ],
            "data.features_root contradicts data.train_videos",
        ),
        (["data.dataset=d/dataset.yaml", "data.train_list=/l.csv"], "data.train_list does not apply"),
        (["data.dataset=ucfcrime"], "not a built-in dataset"),
        (["data.dataset=ucf-crime", "data.features_root=s3://b/UCFClipFeatures"], "a URL is not supported"),
    ],
)
def test_contradictory_data_settings_are_refused_by_name(sets, fragment):
    with pytest.raises(ConfigError, match="data") as err:
        load_config(None, sets)
    assert fragment in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILT_IN)
def test_run_trains_and_evaluates_on_a_miniature_release(name, mini_releases, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(
        cli,
        [
            "run",
            "--dataset",
            name,
            "--set",
            f"data.features_root={mini_releases[name]}",
            *[a for s in TINY for a in ("--set", s)],
            "--out",
            str(out),
            "--no-track",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["frame_auc_binary"] <= 100.0 and metrics["map_avg"] is not None
    meta = json.loads((out / "stage2" / "meta.json").read_text())
    assert meta["dataset"] == name and len(meta["classes"]) == len(load_benchmark(name).classes)
    predictions = np.load(out / "stage2" / "predictions.npz", allow_pickle=False)
    assert len(predictions["names"]) == len(load_benchmark(name).test)


def test_check_dataset_library_call(mini_releases, tmp_path):
    cfg = DataConfig(dataset="xd-violence", features_root=str(mini_releases["xd-violence"]))
    report = check_dataset(load_dataset(resolve_dataset(cfg, tmp_path / "xd")))
    assert report.ok and report.train.normal == 3 and report.train.abnormal == 3 and report.test.found == 800


def test_metrics_of_a_builtin_benchmark_need_no_features(tmp_path):
    from cplvad.eval import Predictions

    bench = load_benchmark("xd-violence")
    lengths = np.array([v.frames // 16 for v in bench.test])
    rng = np.random.default_rng(0)
    classes = rng.dirichlet(np.ones(len(bench.classes)), size=int(lengths.sum())).astype(np.float32)
    Predictions(
        names=[v.name for v in bench.test],
        lengths=lengths,
        binary=rng.random(int(lengths.sum())),
        classes=classes,
    ).save(tmp_path / "p.npz")
    res = invoke(
        "metrics",
        "--dataset",
        "xd-violence",
        "--predictions",
        str(tmp_path / "p.npz"),
        "--out",
        str(tmp_path / "m.json"),
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 40 < metrics["frame_auc_binary"] < 60  # random scores against the real ground truth
