"""Locations (``cplvad.storage.location``): one contract on the local disk, fsspec's in-memory filesystem and
a real S3 server (SeaweedFS, the ``s3_env`` fixture); S3 errors named with their URI and reason; listings
never stale; a filesystem per process and environment."""

from __future__ import annotations

import multiprocessing as mp
import uuid
from pathlib import Path

import pytest
from conftest import empty_bucket

from cplvad.errors import DataError
from cplvad.storage.location import is_url, local_copy, object_size, open_location


@pytest.fixture(params=["local", "memory", "s3"])
def root(request, tmp_path) -> str:
    """The root URI of an empty location of each kind."""
    if request.param == "local":
        return str(tmp_path / "out")
    if request.param == "memory":
        return f"memory://cplvad-tests/{uuid.uuid4().hex}"
    request.getfixturevalue("s3_env")
    empty_bucket("locations")
    return "s3://locations/run/1/"


def test_every_kind_of_location_keeps_the_same_contract(root, tmp_path):
    loc = open_location(root)
    assert loc.sizes() == {} and loc.read_bytes("a.json") is None
    loc.write_bytes("a.json", b"{}")
    loc.write_bytes("deep/er/b.npy", b"12345")
    loc.write_bytes("a.json", b'{"v": 2}')  # replaced whole
    assert loc.read_bytes("a.json") == b'{"v": 2}'
    assert loc.sizes() == {"a.json": 8, "deep/er/b.npy": 5}  # no temporary file or marker left over
    assert loc.uri("deep/er/b.npy") == f"{root.rstrip('/')}/deep/er/b.npy"

    big = tmp_path / "checkpoint.pt"
    big.write_bytes(bytes(range(256)) * 4096)
    loc.put_file("ckpt/checkpoint.pt", big)
    back = tmp_path / "restored" / "checkpoint.pt"
    assert loc.get_file("ckpt/checkpoint.pt", back) and back.read_bytes() == big.read_bytes()
    assert not loc.get_file("ckpt/missing.pt", tmp_path / "nothing" / "missing.pt")
    assert not (tmp_path / "nothing").exists()  # nothing made for an object that is not there
    assert not loc.get_file("deep", tmp_path / "deep")  # a folder or prefix is not an object

    aside = loc.set_aside("a.json")
    assert aside.startswith(loc.uri("a.json.damaged-")) and loc.read_bytes("a.json") == b'{"v": 2}'
    loc.delete("a.json")
    loc.delete("a.json")  # already gone: nothing happens
    assert loc.read_bytes("a.json") is None
    assert sorted(loc.sizes()) == sorted(["ckpt/checkpoint.pt", "deep/er/b.npy", aside.rsplit("/", 1)[1]])
    assert object_size(loc.uri("deep/er/b.npy")) == 5 and object_size(loc.uri("nope")) is None
    with local_copy(loc.uri("deep/er/b.npy")) as path:
        assert path.read_bytes() == b"12345"
    assert (loc.local is None) == is_url(root)


def test_local_names_may_be_any_bytes_object_keys_must_be_utf8(tmp_path):
    odd = b"caf\xe9.mp4".decode("utf-8", "surrogateescape")  # a Latin-1 file name on Linux
    local = open_location(tmp_path)
    local.write_bytes(odd, b"x")
    assert local.name_problem(odd) is None and local.sizes() == {odd: 1}
    assert "not valid UTF-8" in open_location("memory://cplvad-tests/names").name_problem(odd)


def test_a_relative_local_root_keeps_its_form(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loc = open_location("out")
    loc.write_bytes("x.json", b"1")
    assert loc.uri("x.json") == "out/x.json" and loc.local == Path("out")
    assert (tmp_path / "out" / "x.json").read_bytes() == b"1"
    assert open_location(f"file://{tmp_path}/out").read_bytes("x.json") == b"1"


def test_unknown_schemes_and_missing_buckets_are_refused():
    with pytest.raises(DataError, match="no filesystem is known for nosuchfs://"):
        open_location("nosuchfs://bucket/x")
    with pytest.raises(DataError, match="'s3://' names no bucket"):
        open_location("s3://")


def test_s3_listings_are_never_stale(s3_env):
    """Another writer's objects are seen at once, and deleted ones are gone (s3fs would list from cache)."""
    client = empty_bucket("listings")
    loc = open_location("s3://listings/shared")
    assert loc.sizes() == {}
    client.put_object(Bucket="listings", Key="shared/new.json", Body=b"12")
    assert loc.sizes() == {"new.json": 2} and loc.read_bytes("new.json") == b"12"
    client.delete_object(Bucket="listings", Key="shared/new.json")
    assert loc.sizes() == {} and loc.read_bytes("new.json") is None
    assert object_size("s3://listings/shared/new.json") is None


def test_s3_errors_name_the_uri_and_the_reason(s3_env, monkeypatch):
    empty_bucket("errors")
    with pytest.raises(
        DataError, match=r"cannot list s3://no-such-bucket/x/: S3 ListObjectsV2 failed: NoSuchBucket"
    ):
        open_location("s3://no-such-bucket/x").sizes()
    with pytest.raises(DataError, match=r"cannot write s3://no-such-bucket/x/a\.json: .*NoSuchBucket"):
        open_location("s3://no-such-bucket/x").write_bytes("a.json", b"{}")
    open_location("s3://errors/p").write_bytes("a.json", b"{}")

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")  # read when the next location is opened
    with pytest.raises(DataError, match=r"cannot read s3://errors/p/a\.json: S3 \w+ failed: .*credentials"):
        open_location("s3://errors/p").read_bytes("a.json")

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(
        DataError, match=r"cannot list s3://errors/p/: S3: .*127\.0\.0\.1:9.*AWS_ENDPOINT_URL"
    ):
        open_location("s3://errors/p").sizes()
    with (
        pytest.raises(OSError, match=r"cannot read s3://errors/p/a\.json: S3: .*127\.0\.0\.1:9"),
        local_copy("s3://errors/p/a.json"),
    ):
        pass


def _read_in_child(uri: str, results) -> None:
    results.put(open_location(uri).read_bytes("a.json"))


def test_a_forked_process_reads_s3_with_a_filesystem_of_its_own(s3_env):
    """The parent's S3 connections belong to its event loop thread, which a forked child does not have."""
    empty_bucket("forked")
    loc = open_location("s3://forked/p")
    loc.write_bytes("a.json", b"from the parent")  # the parent's filesystem is in use
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=("s3://forked/p", results))
    child.start()
    try:
        assert results.get(timeout=120) == b"from the parent"  # a guard against a hang, not a time bound
    finally:
        child.join(timeout=30)
    assert child.exitcode == 0 and loc.read_bytes("a.json") == b"from the parent"
