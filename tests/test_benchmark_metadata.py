"""The real UCF-Crime / XD-Violence metadata (../shared/benchmarks): lists, ground truth, segment GT.

Segment GT built from the annotation text files must equal the published gt_segment*/gt_label* arrays
for every test video. Those arrays are object arrays, so they are loaded with allow_pickle=True: they are
trusted files of this repository's shared folder, never user input.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from cplvad.data import load_dataset

UCF_CLASSES = [
    "Normal",
    "Abuse",
    "Arrest",
    "Arson",
    "Assault",
    "Burglary",
    "Explosion",
    "Fighting",
    "RoadAccidents",
    "Robbery",
    "Shooting",
    "Shoplifting",
    "Stealing",
    "Vandalism",
]
XD_CODES = {
    "A": "Normal",
    "B1": "Fighting",
    "B2": "Shooting",
    "B4": "Riot",
    "B5": "Abuse",
    "B6": "CarAccident",
    "G": "Explosion",
}


def _manifest(tmp_path: Path, folder: Path, **fields) -> Path:
    data = {"frames_per_snippet": 16, **fields}
    for key in ("train_list", "test_list", "annotations"):
        data[key] = str(folder / data[key])
    out = tmp_path / f"{fields['name']}.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


@pytest.fixture(scope="module")
def ucf(benchmarks, tmp_path_factory):
    folder = benchmarks / "ucf-crime"
    return load_dataset(
        _manifest(
            tmp_path_factory.mktemp("ucf"),
            folder,
            name="ucf-crime",
            classes=UCF_CLASSES,
            train_list="ucf_CLIP_rgb.csv",
            test_list="ucf_CLIP_rgbtest.csv",
            annotations="Temporal_Anomaly_Annotation.txt",
            annotations_format="ucf",
            features_root="/data/UCFClipFeatures",
        )
    ), folder


@pytest.fixture(scope="module")
def xd(benchmarks, tmp_path_factory):
    folder = benchmarks / "xd-violence"
    return load_dataset(
        _manifest(
            tmp_path_factory.mktemp("xd"),
            folder,
            name="xd-violence",
            classes=list(dict.fromkeys(XD_CODES.values())),
            label_codes=XD_CODES,
            train_list="xd_CLIP_rgb.csv",
            test_list="xd_CLIP_rgbtest.csv",
            annotations="annotations.txt",
            annotations_format="xd",
            segment_annotations=str(folder / "annotations_multiclasses.txt"),
            segment_annotations_format="xd-multiclass",
        )
    ), folder


def _frames(folder: Path) -> dict[str, int]:
    with (folder / "test_video_frames.csv").open() as fh:
        return {r["video"]: int(r["frames"]) for r in csv.DictReader(fh)}


def _published_segments(folder: Path, seg_file: str, label_file: str):
    segs = np.load(folder / seg_file, allow_pickle=True)  # trusted shared metadata (object array)
    labels = np.load(folder / label_file, allow_pickle=True)
    return [[(int(s), int(e)) for s, e in v] for v in segs], [list(v) for v in labels]


def _check_segments(dataset, folder, seg_file, label_file):
    frames = _frames(folder)
    lengths = np.array([frames[v.name] // 16 for v in dataset.test])
    ours = dataset.segment_ground_truth(lengths)
    pub_segs, pub_labels = _published_segments(folder, seg_file, label_file)
    assert len(ours) == len(pub_segs) == len(dataset.test)
    for video, mine, segs, labels in zip(dataset.test, ours, pub_segs, pub_labels):
        assert [(s.start, s.end) for s in mine] == segs, video.name
        assert [s.label for s in mine] == labels, video.name


def test_ucf_lists(ucf):
    ds, _ = ucf
    assert len(ds.test) == 290 and sum(v.abnormal for v in ds.test) == 140
    assert len(ds.train) == 1610 and all(len(v.rows) == 10 for v in ds.train)
    assert sum(not v.abnormal for v in ds.train) == 800
    # published absolute paths rebase onto features_root by their trailing Class/file.npy
    row = ds.train.videos[0].rows[3]
    with pytest.raises(Exception, match=r"/data/UCFClipFeatures/Abuse/Abuse001_x264__3\.npy"):
        ds.train.locate(row)


def test_ucf_frame_ground_truth_lengths(ucf):
    ds, folder = ucf
    frames = _frames(folder)
    lengths = np.array([frames[v.name] // 16 for v in ds.test])
    gt = ds.frame_ground_truth(lengths)
    assert gt.shape == (sum(frames[v.name] for v in ds.test),)
    # Abuse028 is annotated on frames [165, 240)
    assert gt[164] == 0 and gt[165:240].all() and gt[240] == 0
    normal = [i for i, v in enumerate(ds.test) if not v.abnormal]
    offsets = np.concatenate([[0], np.cumsum(lengths * 16)])
    assert all(gt[offsets[i] : offsets[i + 1]].sum() == 0 for i in normal)


def test_ucf_segment_ground_truth_equals_published(ucf):
    ds, folder = ucf
    _check_segments(ds, folder, "gt_segment_ucf.npy", "gt_label_ucf.npy")


def test_xd_lists(xd):
    ds, _ = xd
    assert len(ds.test) == 800 and sum(v.abnormal for v in ds.test) == 500
    assert all(len(v.rows) == 10 for v in ds.train)
    multi = [v for v in ds.train if len(v.classes) > 1]
    assert multi and all("Normal" not in v.classes for v in multi)


def test_xd_segment_ground_truth_equals_published(xd):
    ds, folder = xd
    _check_segments(ds, folder, "gt_segment.npy", "gt_label.npy")


def test_xd_frame_ground_truth_lengths(xd):
    ds, folder = xd
    frames = _frames(folder)
    lengths = np.array([frames[v.name] // 16 for v in ds.test])
    gt = ds.frame_ground_truth(lengths)
    assert gt.shape == (sum(frames.values()),)
    # first test video: annotations.txt gives 157 180 185 244 250 360 582 810 (the multiclass file differs)
    first = gt[: lengths[0] * 16]
    expected = np.zeros_like(first)
    for s, e in [(157, 180), (185, 244), (250, 360), (582, 810)]:
        expected[s:e] = 1
    np.testing.assert_array_equal(first, expected)
    # names in annotations.txt that end in .mp4 are matched without the extension
    assert "v=U6MC8JJJZSY__#1_label_G-0-0" in ds.annotations
