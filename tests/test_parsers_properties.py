"""Property-based tests (Hypothesis) of every parser of user input: whatever the input, it parses to something
valid or raises our own error (a ``CplvadError``), never another exception.

Inputs mix near-valid structure (the right headers, class names, codes, numbers, paths with ``..``) with
arbitrary text and bytes. The budget is bounded by the Hypothesis profile of ``conftest.py`` (``ci``: a fixed,
small number of examples per test; ``HYPOTHESIS_PROFILE=fuzz`` searches much longer).
"""

from __future__ import annotations

import io
import json
import string
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cplvad.config import Config, apply_overrides, load_config, parse_override, read_params_file
from cplvad.data.annotations import Segment, read_annotations
from cplvad.data.dataset import Dataset, load_dataset, read_feature_list, row_candidates
from cplvad.data.labels import ClassList
from cplvad.errors import CplvadError
from cplvad.eval.predictions import Predictions
from cplvad.extract.manifest import Manifest
from cplvad.extract.sources import list_videos
from cplvad.storage.location import open_location

CLASSES = ClassList(("Normal", "Fighting", "Shooting"), {"A": "Normal", "B1": "Fighting", "B2": "Shooting"})

words = st.sampled_from(
    [
        "Normal",
        "Fighting",
        "Shooting",
        "A",
        "B1",
        "B2-0-0",
        "B1-B2",
        "x",
        "-1",
        "0",
        "16",
        "..",
        ".",
        "/",
        "\\",
        "#",
        ",",
        '"',
        "path",
        "label",
        "__0",
        "v.mp4",
        "a__3.npy",
    ]
)
text_token = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=6)
token = st.one_of(words, text_token, st.integers(-2, 10**6).map(str))
line = st.lists(token, max_size=7).map(" ".join)
structured = st.lists(line, max_size=6).map("\n".join)
content = st.one_of(
    structured.map(str.encode),
    st.binary(max_size=120),
    st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


def _parses_or_our_error(call):
    """``call()``'s result, or None when it raised a CplvadError; any other exception fails the test."""
    try:
        return call()
    except CplvadError:
        return None


# ------------------------------------------------------------------------------------------- annotations


@given(data=content, fmt=st.sampled_from(["auto", "ucf", "xd", "xd-multiclass"]))
@example(data=b".AVI", fmt="auto")  # a name that is only an extension
@example(data=b"caf\xe9.mp4 Fighting 1 2", fmt="ucf")  # not UTF-8
def test_text_annotations(workdir, data, fmt):
    path = workdir / "annotations.txt"
    path.write_bytes(data)
    result = _parses_or_our_error(lambda: read_annotations(path, fmt))
    if result is not None:
        for name, segments in result.items():
            assert isinstance(name, str) and name
            assert all(
                isinstance(s, Segment)
                and isinstance(s.start, int)
                and isinstance(s.end, int)
                and (s.label is None or isinstance(s.label, str))
                for s in segments
            )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**20) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["start", "end", "label", "v1", "x"]) | st.text(max_size=4), children, max_size=4
        )
    ),
    max_leaves=12,
)


@given(value=json_values)
@example(value={"v": True})
@example(value={"v": [{"start": float("inf"), "end": 2}]})
def test_json_annotations(workdir, value):
    path = workdir / "annotations.json"
    path.write_text(json.dumps(value))
    result = _parses_or_our_error(lambda: read_annotations(path, "json"))
    if result is not None:
        assert all(isinstance(n, str) for n in result)
        assert all(
            isinstance(s.start, int)
            and isinstance(s.end, int)
            and (s.label is None or isinstance(s.label, str))
            for segments in result.values()
            for s in segments
        )


# ------------------------------------------------------------------------------------------ feature lists

list_path = st.lists(
    st.sampled_from(["", ".", "..", "x", "Fighting", "v__0.npy", "v__1.npy", "w.npy", "a b"]) | text_token,
    min_size=1,
    max_size=4,
).map(lambda parts: ("/" if parts[0] == "" else "") + "/".join(parts))
csv_rows = st.lists(st.tuples(list_path, words | text_token), max_size=6).map(
    lambda rows: "path,label\n" + "".join(f"{p},{lab}\n" for p, lab in rows)
)


@given(data=st.one_of(csv_rows.map(str.encode), content), rebased=st.booleans())
@example(data=b"path,label\n/x/../F.npy,Normal\n", rebased=True)  # would load features_root/../F.npy
@example(data=b"path,label\nv__99999999999999999999.npy,Normal\n", rebased=False)
def test_feature_lists(workdir, data, rebased):
    path = workdir / "list.csv"
    path.write_bytes(data)
    root = workdir / "features" if rebased else None
    result = _parses_or_our_error(lambda: read_feature_list(path, CLASSES, root, "train"))
    if result is not None:
        assert len(result) > 0
        for video in result:
            assert video.rows and len({r.crop for r in video.rows}) == len(video.rows)
            assert set(video.classes) <= set(CLASSES.names)
            for row in video.rows:
                for candidate in row_candidates(row.listed_path, path.parent, root):
                    if root is not None:  # containment: a rebased row never leaves features_root
                        assert root in (candidate, *candidate.parents) and ".." not in candidate.parts


# ------------------------------------------------------------------------------------- dataset manifests

manifest_values = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=5) | st.integers(),
        "classes": st.lists(words | text_token, max_size=4) | st.text(max_size=4),
        "train_list": st.sampled_from(["l.csv", "", "../x", "\x00"]) | st.integers(),
        "test_list": st.sampled_from(["l.csv", "/abs"]) | st.none(),
        "annotations": st.none() | st.sampled_from(["a.txt"]),
        "annotations_format": st.sampled_from(["auto", "ucf", "json", "bogus"]),
        "features_root": st.none() | st.sampled_from(["f", "/tmp/x", ""]),
        "frames_per_snippet": st.integers(-2, 40) | st.text(max_size=3),
        "label_codes": st.dictionaries(text_token, words | text_token, max_size=3)
        | st.lists(st.integers(), max_size=2),
        "unknown": st.integers(),
    },
)


@given(data=st.one_of(manifest_values.map(lambda d: yaml.safe_dump(d).encode()), content))
def test_dataset_manifests(workdir, data):
    path = workdir / "dataset.yaml"
    path.write_bytes(data)
    result = _parses_or_our_error(lambda: load_dataset(path))
    if result is not None:
        assert isinstance(result, Dataset) and len(result.classes) >= 2 and result.frames_per_snippet >= 1


# ----------------------------------------------------------------------------------------- predictions

any_array = hnp.arrays(
    dtype=st.one_of(
        hnp.integer_dtypes(),
        hnp.floating_dtypes(),
        hnp.boolean_dtypes(),
        hnp.unicode_string_dtypes(),
        hnp.byte_string_dtypes(),
        hnp.complex_number_dtypes(),
    ),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)


def _consistent(binary: np.ndarray, classes: np.ndarray, names=("a", "b")) -> dict[str, np.ndarray]:
    return {"names": np.array(names), "lengths": np.array([1, 2]), "binary": binary, "classes": classes}


@given(
    arrays=st.dictionaries(st.sampled_from(["names", "lengths", "binary", "classes", "other"]), any_array),
    garbage=st.none() | st.binary(max_size=60),
)
@example(arrays=_consistent(np.array(["x", "y", "z"]), np.zeros((3, 2))), garbage=None)
@example(arrays=_consistent(np.zeros(3, np.complex64), np.zeros((3, 2), np.complex64)), garbage=None)
@example(arrays=_consistent(np.zeros(3), np.zeros((3, 2)), names=(b"caf\xe9", b"b")), garbage=None)
@example(arrays=_consistent(np.zeros(3), np.zeros((3, 2)), names=(1, 2)), garbage=None)
def test_predictions_files(workdir, arrays, garbage):
    path = workdir / "P.npz"
    if garbage is not None:
        path.write_bytes(garbage)
    else:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        path.write_bytes(buf.getvalue())
    result = _parses_or_our_error(lambda: Predictions.load(path))
    if result is not None:
        total = int(result.lengths.sum())
        assert len(result.names) == len(result.lengths) and result.binary.shape == (total,)
        assert result.classes.ndim == 2 and result.classes.shape[0] == total
        assert result.binary.dtype == np.float32 and result.classes.dtype == np.float32


# ------------------------------------------------------------------------------------------- video lists

video_rows = st.lists(
    st.tuples(list_path.map(lambda p: p + ".mp4"), st.none() | words | text_token), max_size=5
)


@given(rows=video_rows, data=st.none() | content, suffix=st.sampled_from([".csv", ".txt"]))
@example(rows=[("\x00.mp4", None)], data=None, suffix=".csv")
def test_video_lists(workdir, rows, data, suffix):
    path = workdir / f"videos{suffix}"
    if data is not None:
        path.write_bytes(data)
    elif suffix == ".csv":
        path.write_text("path,label\n" + "".join(f"{p},{lab or ''}\n" for p, lab in rows))
    else:
        path.write_text("".join(f"{p}\n" for p, _ in rows))
    result = _parses_or_our_error(lambda: list_videos(str(path), "Normal"))
    if result is not None:
        assert result and all(isinstance(v.name, str) and isinstance(v.label, str) and v.uri for v in result)


# ----------------------------------------------------------------------------------- extraction manifests


@given(
    value=json_values
    | st.fixed_dictionaries(
        {
            "format": st.just("cplvad-extraction/1"),
            "settings": json_values,
            "videos": st.dictionaries(text_token, json_values, max_size=3),
        }
    )
)
def test_extraction_manifests(workdir, value):
    (workdir / "m").mkdir(exist_ok=True)
    (workdir / "m" / "x.extraction.json").write_text(json.dumps(value))
    result = _parses_or_our_error(lambda: Manifest.load(open_location(workdir / "m"), "x.extraction.json"))
    if result is not None:
        assert isinstance(result.videos, dict)
        result.to_json()
        result.list_csv()
        for entry in result.videos.values():
            assert all(
                not PurePosixPath(f).is_absolute() and ".." not in PurePosixPath(f).parts
                for f in entry.get("files", [])
                if entry["status"] == "ok"
            )


# ------------------------------------------------------------------------------------- --set and params

keys = st.sampled_from(
    [
        "train.lr",
        "train.epochs",
        "model.max_len",
        "seed",
        "car.thresholds",
        "train",
        "x.y",
        "train.lr.x",
        ".",
        "",
        "tracking.tracking_uri",
        "extract.sampling",
        "model",
    ]
)
yaml_values = (
    st.sampled_from(
        [
            "3",
            "1e-3",
            "[0.5, 0.7]",
            "{a: 1}",
            "mean:4",
            "center",
            "null",
            "'",
            "[",
            "-1",
            "true",
            "!!python/object:os.system",
            "&a [*a]",
            "\x00",
        ]
    )
    | text_token
)


@given(
    overrides=st.lists(
        st.one_of(st.tuples(keys, yaml_values).map("=".join), st.text(max_size=12)), max_size=4
    )
)
def test_set_overrides(overrides):
    config = _parses_or_our_error(lambda: load_config(None, overrides))
    assert config is None or isinstance(config, Config)
    for item in overrides:
        parsed = _parses_or_our_error(lambda item=item: parse_override(item))
        assert parsed is None or (isinstance(parsed[0], list) and all(isinstance(k, str) for k in parsed[0]))
    data = _parses_or_our_error(lambda: apply_overrides({}, overrides))
    assert data is None or isinstance(data, dict)


@given(
    data=st.one_of(
        content,
        st.dictionaries(
            st.sampled_from(["train", "model", "seed", "x"]),
            st.dictionaries(st.sampled_from(string.ascii_lowercase), json_values, max_size=2) | json_values,
            max_size=3,
        ).map(lambda d: yaml.safe_dump(d).encode()),
    )
)
def test_params_files(workdir, data):
    path = workdir / "params.yaml"
    path.write_bytes(data)
    raw = _parses_or_our_error(lambda: read_params_file(path))
    assert raw is None or isinstance(raw, dict)
    config = _parses_or_our_error(lambda: load_config(path))
    assert config is None or isinstance(config, Config)
