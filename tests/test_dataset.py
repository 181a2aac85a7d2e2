import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from cplvad.data import load_dataset, split_crop
from cplvad.errors import DataError
from cplvad.storage.ownership import MARKER_DIR


def _variant(demo_manifest: Path, tmp_path: Path, **changes) -> Path:
    """A copy of the demo manifest (sharing its features) with some fields or list files replaced."""
    root = demo_manifest.parent
    data = yaml.safe_load(demo_manifest.read_text())
    for key in ("train_list", "test_list", "annotations", "features_root"):
        data[key] = str(root / data[key])
    for key, value in changes.items():
        if isinstance(value, str) and "\n" in value:
            path = tmp_path / f"{key}.txt"
            path.write_text(value)
            value = str(path)
        data[key] = value
    out = tmp_path / "dataset.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def test_demo_layout_matches_the_real_releases(demo_dataset):
    ds = demo_dataset
    assert ds.classes.normal == "Normal"
    assert len(ds.train) == 12 and all(len(v.rows) == 2 for v in ds.train)
    assert {r.crop for v in ds.train for r in v.rows} == {0, 1}
    assert len(ds.test) == 8 and all(len(v.rows) == 1 for v in ds.test)
    # the lists carry the publisher's absolute paths; features_root rebases them
    row = ds.train.videos[0].rows[0]
    assert row.listed_path.startswith("/home/publisher/")
    path = ds.train.locate(row)
    assert path.is_file() and path.parent.name == Path(row.listed_path).parent.name
    assert sum(v.abnormal for v in ds.test) == 4
    assert ds.describe()["train_samples"] == 24


def _output_files(root: Path) -> list[Path]:
    """The dataset's files, without cplvad's bookkeeping (``.cplvad/`` records who wrote it and when)."""
    return sorted(
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and MARKER_DIR not in p.relative_to(root).parts
    )


def test_demo_data_is_deterministic(tmp_path):
    from cplvad.config import DemoConfig
    from cplvad.data.demo import write_demo_dataset

    cfg = DemoConfig(seed=3, train_normal=2, train_abnormal=2, test_normal=1, test_abnormal=2)
    a, b = write_demo_dataset(tmp_path / "a", cfg), write_demo_dataset(tmp_path / "b", cfg)
    fa, fb = _output_files(a.parent), _output_files(b.parent)
    assert fa == fb
    for rel in fa:
        assert (a.parent / rel).read_bytes() == (b.parent / rel).read_bytes(), rel
    c = write_demo_dataset(tmp_path / "c", cfg.model_copy(update={"seed": 4}))
    assert (c.parent / "lists/demo_test.csv").read_text() != (
        a.parent / "lists/demo_test.csv"
    ).read_text() or (c.parent / "annotations/Temporal_Anomaly_Annotation.txt").read_text() != (
        a.parent / "annotations/Temporal_Anomaly_Annotation.txt"
    ).read_text()


def test_demo_has_multi_segment_anomalies_and_several_classes(demo_dataset):
    ann = demo_dataset.annotations
    assert any(len(segs) >= 2 for segs in ann.values())
    assert len({v.classes[0] for v in demo_dataset.test if v.abnormal}) >= 3


def test_ground_truth_follows_lengths(demo_dataset):
    lengths = demo_dataset.test_lengths_from_features()
    gt = demo_dataset.frame_ground_truth(lengths)
    assert gt.shape == (int(lengths.sum()) * 16,)
    segs = demo_dataset.segment_ground_truth(lengths)
    for video, video_segs, t in zip(demo_dataset.test, segs, lengths):
        if video.abnormal:
            assert all(s.label == video.classes[0] for s in video_segs)
        else:
            assert [(s.start, s.end, s.label) for s in video_segs] == [(0, int(t) * 16, "A")]


def test_frame_labels_cut_at_the_end_and_ignore_minus_one():
    from cplvad.data import Segment, frame_labels

    gt = frame_labels([Segment(10, 100), Segment(-1, -1)], n_snippets=4)
    assert gt.shape == (64,) and gt[:10].sum() == 0 and gt[10:].all()


def test_split_crop():
    assert split_crop("Abuse001_x264__3") == ("Abuse001_x264", 3)
    assert split_crop("v=abc__#1_label_G-0-0__0") == ("v=abc__#1_label_G-0-0", 0)
    assert split_crop("plain") == ("plain", None)


def test_unrebasable_paths_name_the_list_row(demo_manifest, tmp_path):
    ds = load_dataset(_variant(demo_manifest, tmp_path, features_root=str(tmp_path / "elsewhere")))
    with pytest.raises(DataError) as err:
        ds.train.samples()
    msg = str(err.value)
    assert "demo_train.csv:2" in msg and "features_root" in msg and "tried" in msg


def test_unknown_label_names_file_line_and_video(demo_manifest, tmp_path):
    lst = tmp_path / "train.csv"
    lst.write_text("path,label\n/x/Fighting/a__0.npy,Fighting\n/x/Arson/b__0.npy,Arson\n")
    ds = load_dataset(_variant(demo_manifest, tmp_path, train_list=str(lst)))
    with pytest.raises(DataError) as err:
        ds.train
    assert "train.csv:3" in str(err.value) and "'b'" in str(err.value) and "Arson" in str(err.value)


def test_annotations_naming_unknown_videos(demo_manifest, tmp_path):
    ann = demo_manifest.parent / "annotations/Temporal_Anomaly_Annotation.txt"
    text = ann.read_text() + "Ghost_video  Fighting  1  2  -1  -1\n"
    ds = load_dataset(_variant(demo_manifest, tmp_path, annotations=text))
    with pytest.raises(DataError, match="Ghost_video"):
        ds.annotations


def test_abnormal_test_video_without_annotation(demo_manifest, tmp_path):
    ann = demo_manifest.parent / "annotations/Temporal_Anomaly_Annotation.txt"
    lines = ann.read_text().splitlines(keepends=True)
    ds = load_dataset(_variant(demo_manifest, tmp_path, annotations="".join(lines[1:])))
    with pytest.raises(DataError, match="no annotation line"):
        ds.annotations


def test_bad_manifest_and_lists(demo_manifest, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nclasses: [Normal]\ntrain_list: a.csv\ntest_list: b.csv\n")
    with pytest.raises(DataError, match="classes"):
        load_dataset(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: x\nclasses: [Normal, A]\ntrain_list: a.csv\ntest_list: b.csv\nfeature_root: f\n")
    with pytest.raises(DataError, match="feature_root"):
        load_dataset(typo)
    header = tmp_path / "h.csv"
    header.write_text("file,class\n")
    with pytest.raises(DataError, match="path,label"):
        load_dataset(_variant(demo_manifest, tmp_path, train_list=str(header))).train
    empty = tmp_path / "e.csv"
    empty.write_text("path,label\n")
    with pytest.raises(DataError, match="no videos"):
        load_dataset(_variant(demo_manifest, tmp_path, train_list=str(empty))).train


def test_test_video_with_several_crops_is_refused(demo_manifest, tmp_path):
    lst = tmp_path / "test.csv"
    lst.write_text("path,label\n/x/Fighting/a__0.npy,Fighting\n/x/Fighting/a__1.npy,Fighting\n")
    with pytest.raises(DataError, match="crops"):
        load_dataset(_variant(demo_manifest, tmp_path, test_list=str(lst))).test


def test_relative_list_paths_without_features_root(demo_manifest, tmp_path):
    feats = tmp_path / "feats"
    feats.mkdir()
    np.save(feats / "v1__0.npy", np.zeros((5, 4), dtype=np.float32))
    lst = tmp_path / "train.csv"
    lst.write_text("path,label\nfeats/v1__0.npy,Fighting\n")
    ds = load_dataset(_variant(demo_manifest, tmp_path, train_list=str(lst), features_root=None))
    [(video, row, path)] = ds.train.samples()
    assert (video, row.crop, path) == (0, 0, feats / "v1__0.npy")
    shutil.rmtree(feats)
    with pytest.raises(DataError, match="not found"):
        ds.train.samples()
