"""Extraction from and to S3, against a real S3 server (SeaweedFS, started by the ``s3_env`` fixture)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import empty_bucket
from test_extract import TINY, make_video

from cplvad.cli import cli


@pytest.fixture
def s3(s3_env: str):
    return empty_bucket("vids")


def _upload(client, root: Path, prefix: str) -> None:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            client.upload_file(str(p), "vids", f"{prefix}/{p.relative_to(root).as_posix()}")


def _get(client, key: str) -> bytes:
    return client.get_object(Bucket="vids", Key=key)["Body"].read()


def test_s3_round_trip_resume_and_failures(s3, tmp_path):
    src = tmp_path / "src"
    make_video(src / "Normal" / "a.mp4", 40, seed=1)
    make_video(src / "Fighting" / "b.mp4", 33, seed=2)
    (src / "Fighting" / "fake.mp4").write_text("not a video\n")
    _upload(s3, src, "raw")
    runner = CliRunner()

    # S3 -> S3, decoding in a worker process (which makes its own client from the same environment)
    res = runner.invoke(
        cli, ["extract", "--videos", "s3://vids/raw", "--out", "s3://vids/features", "--workers", "1", *TINY]
    )
    assert res.exit_code == 1, res.output  # fake.mp4 failed
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="vids", Prefix="features/")["Contents"]}
    assert keys == {
        "features/.cplvad/owner.json",  # the prefix is cplvad's (its lock object is gone with the command)
        "features/Fighting/b__0.npy",
        "features/Normal/a__0.npy",
        "features/features.csv",
        "features/features.extraction.json",
    }
    b = np.load(io.BytesIO(_get(s3, "features/Fighting/b__0.npy")), allow_pickle=False)
    assert b.shape == (2, 64) and b.dtype == np.float32
    manifest = json.loads(_get(s3, "features/features.extraction.json"))
    assert manifest["videos"]["b"]["source"] == "s3://vids/raw/Fighting/b.mp4"
    assert "not a readable video file" in manifest["videos"]["fake"]["reason"]
    assert _get(s3, "features/features.csv").decode().splitlines() == [
        "path,label",
        "Fighting/b__0.npy,Fighting",
        "Normal/a__0.npy,Normal",
    ]

    # resume against S3: the manifest and the objects' sizes say both videos are done
    again = runner.invoke(
        cli, ["extract", "--videos", "s3://vids/raw", "--out", "s3://vids/features", "--workers", "0", *TINY]
    )
    assert again.exit_code == 1 and "extracted 0, skipped 2, failed 1" in again.output

    # S3 -> local gives the same features
    local = tmp_path / "local"
    res = runner.invoke(
        cli, ["extract", "--videos", "s3://vids/raw", "--out", str(local), "--workers", "0", *TINY]
    )
    assert res.exit_code == 1
    np.testing.assert_allclose(np.load(local / "Fighting" / "b__0.npy"), b, rtol=1e-5, atol=1e-6)


def test_unreadable_s3_object_in_a_list_is_recorded(s3, tmp_path):
    make_video(tmp_path / "Fighting" / "b.mp4", 33)
    _upload(s3, tmp_path / "Fighting", "raw/Fighting")
    s3.put_object(
        Bucket="vids",
        Key="lists/test.csv",
        Body=b"path,label\n../raw/Fighting/b.mp4,Fighting\n../raw/Normal/gone.mp4,Normal\n",
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli, ["extract", "--videos", "s3://vids/lists/test.csv", "--out", str(out), "--workers", "0", *TINY]
    )
    assert res.exit_code == 1, res.output
    manifest = json.loads((out / "features.extraction.json").read_text())
    assert manifest["videos"]["b"]["status"] == "ok"
    reason = manifest["videos"]["gone"]["reason"]
    assert "cannot read s3://vids/raw/Normal/gone.mp4" in reason and "NoSuchKey" in reason


def test_missing_bucket_is_a_usage_error(s3, tmp_path):
    res = CliRunner().invoke(
        cli, ["extract", "--videos", "s3://no-such-bucket/raw", "--out", str(tmp_path), *TINY]
    )
    assert res.exit_code == 2, res.output
    assert "cannot read s3://no-such-bucket/raw" in res.output and "NoSuchBucket" in res.output


def test_workers_read_s3_with_the_environment_of_the_call(s3, tmp_path, monkeypatch):
    """Decode workers fork from a long-lived server, yet each pool's workers use the caller's environment now.

    The videos are named by a local list, so only the workers reach S3: with a wrong endpoint the read must
    fail (and this may be what starts the fork server), with the right one it must succeed.
    """
    make_video(tmp_path / "local" / "a.mp4", 16)
    _upload(s3, tmp_path / "local", "env/raw")
    videos = tmp_path / "videos.txt"
    videos.write_text("s3://vids/env/raw/a.mp4\n")
    args = ["extract", "--videos", str(videos), "--workers", "1", *TINY]
    with monkeypatch.context() as m:
        m.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
        m.setenv("AWS_MAX_ATTEMPTS", "1")
        wrong = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "wrong")])
    assert wrong.exit_code == 1, wrong.output
    reason = json.loads((tmp_path / "wrong" / "features.extraction.json").read_text())["videos"]["a"][
        "reason"
    ]
    assert "cannot read s3://vids/env/raw/a.mp4" in reason and "127.0.0.1:9" in reason
    right = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "right")])
    assert right.exit_code == 0, right.output
    assert (tmp_path / "right" / "raw" / "a__0.npy").is_file()  # labelled by its folder
