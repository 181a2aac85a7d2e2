import numpy as np
import pytest

from cplvad.data import chunk, load_features, open_features, resample
from cplvad.data.features import feature_header, feature_length
from cplvad.errors import DataError


def test_resample_mean_pools_long_videos_into_uniform_bins():
    feats = np.arange(10, dtype=np.float32)[:, None].repeat(3, axis=1)
    out, valid = resample(feats, 4)
    # bins of np.linspace(0, 10, 5) -> [0, 2, 5, 7, 10]
    np.testing.assert_allclose(out[:, 0], [0.5, 3.0, 5.5, 8.0])
    assert valid == 4 and out.dtype == np.float32


def test_resample_pads_short_videos():
    feats = np.ones((3, 2), dtype=np.float32)
    out, valid = resample(feats, 5)
    assert valid == 3 and out.shape == (5, 2)
    np.testing.assert_array_equal(out[3:], 0)


def test_chunk_covers_every_snippet_once():
    feats = np.arange(11, dtype=np.float32)[:, None]
    chunks, lengths = chunk(feats, 4)
    assert chunks.shape == (3, 4, 1)
    np.testing.assert_array_equal(lengths, [4, 4, 3])
    np.testing.assert_array_equal(np.concatenate([c[:n, 0] for c, n in zip(chunks, lengths)]), np.arange(11))
    np.testing.assert_array_equal(chunk(feats[:8], 4)[1], [4, 4])


def test_feature_file_checks(tmp_path):
    good = tmp_path / "v__0.npy"
    np.save(good, np.ones((4, 8), dtype=np.float32))
    assert isinstance(open_features(good), np.memmap)
    with pytest.raises(DataError, match="8-d features but 16"):
        open_features(good, expected_dim=16)
    nan = tmp_path / "nan.npy"
    arr = np.ones((4, 8), dtype=np.float32)
    arr[2, 1] = np.nan
    np.save(nan, arr)
    with pytest.raises(DataError, match="NaN/inf.*snippet 2"):
        load_features(nan)
    (tmp_path / "junk.npy").write_bytes(
        b"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    )  # any file a list may name
    for read in (open_features, feature_header):
        with pytest.raises(DataError, match="junk.npy is not a NumPy file") as err:
            read(tmp_path / "junk.npy")
        assert "daemon" not in str(err.value) and "pickle" not in str(err.value)  # never its content
    (tmp_path / "header.npy").write_bytes(b"\x93NUMPY\x01\x00\x20\x00{'secret': 'in a header'}  \n")
    with pytest.raises(DataError, match="header is cut short or damaged") as err:
        feature_header(tmp_path / "header.npy")
    assert "secret" not in str(err.value)
    with pytest.raises(DataError, match="does not exist"):
        open_features(tmp_path / "missing.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError):
        open_features(tmp_path / "obj.npy")


def test_feature_header_checks_like_open_features_without_mapping_the_file(tmp_path):
    good = tmp_path / "v__0.npy"
    np.save(good, np.ones((4, 8), dtype=np.float32))
    assert feature_header(good) == (4, 8) and feature_length(good) == 4
    with pytest.raises(DataError, match="8-d features but 16"):
        feature_header(good, expected_dim=16)
    short = tmp_path / "short.npy"
    short.write_bytes(good.read_bytes()[:-4])  # a whole header, one value missing
    with pytest.raises(
        DataError, match=r"truncated: its header announces \(4, 8\) float32 but it holds 124 bytes"
    ):
        feature_header(short)
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY\x01\x00")
    with pytest.raises(DataError, match="not a readable"):
        feature_header(tmp_path / "junk.npy")
    np.save(tmp_path / "obj.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="expected a non-empty float"):
        feature_header(tmp_path / "obj.npy")
    with pytest.raises(DataError, match="does not exist"):
        feature_header(tmp_path / "missing.npy")
