"""Preflight checks that commands share: CLIP weights given by file, tag or none; an s3:// output prefix."""

from __future__ import annotations

import pytest
from conftest import empty_bucket, tiny_config

from cplvad import preflight
from cplvad.clip_weights import check_clip_weights
from cplvad.config import ClipConfig
from cplvad.errors import ConfigError, CplvadError


def test_clip_weights_may_be_none_a_file_or_an_open_clip_tag(tmp_path):
    check_clip_weights(ClipConfig(pretrained="none"))
    check_clip_weights(
        ClipConfig(model="ViT-B-16", pretrained="openai")
    )  # fetched into the cache when loaded
    with pytest.raises(ConfigError, match=r"'opnai' is neither a file nor .* tag of ViT-B-16 \(.*openai"):
        check_clip_weights(ClipConfig(model="ViT-B-16", pretrained="opnai"))
    with pytest.raises(ConfigError, match="neither a file"):
        check_clip_weights(ClipConfig(pretrained=str(tmp_path / "missing.pt")))


def test_prediction_to_s3_probes_the_prefix_and_leaves_nothing(s3_env, tmp_path):
    s3 = empty_bucket("scores")
    summary = preflight.for_prediction(tmp_path / "model", "s3://scores/night-1", tiny_config())
    assert "s3://scores/night-1 writable" in summary
    assert s3.list_objects_v2(Bucket="scores").get("KeyCount") == 0  # the probe object was deleted
    with pytest.raises(CplvadError, match=r"cannot write s3://no-such-bucket/x/.*NoSuchBucket"):
        preflight.for_prediction(tmp_path / "model", "s3://no-such-bucket/x", tiny_config())
    assert not (tmp_path / "s3:").exists()  # no local folder made of the URL
