"""CLIP weights by open_clip tag: a planted Hugging Face cache works offline, downloads come from a local
mirror on 127.0.0.1 (no test touches the network), broken transfers never leave a usable truncated file."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import open_clip
import pytest
import torch
from huggingface_hub import constants

from cplvad.clip import BUILTIN_CONFIGS, create_clip, file_sha256, register_config_dir
from cplvad.clip_weights import tagged_weights
from cplvad.config import ClipConfig
from cplvad.errors import ConfigError, DataError

REPO_ID = "cplvad-test/tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def plant(cache: Path, repo: str, filename: str, payload: bytes) -> Path:
    """Lay out one file the way huggingface_hub caches it: blobs/<sha256>, a snapshot link, refs/main."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    sha = hashlib.sha256(payload).hexdigest()
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    (folder / "blobs" / sha).write_bytes(payload)
    snapshot = folder / "snapshots" / COMMIT / filename
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.symlink_to(Path("../../blobs") / sha)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    return snapshot


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache for this test, and a hub endpoint on 127.0.0.1 where nothing listens."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_PROGRESS_BARS", True)
    return cache


@pytest.fixture
def tiny_tag(monkeypatch) -> str:
    """A pretrained tag for the tiny test CLIP, published (as open_clip's tags are) in a hub repository."""
    from open_clip import pretrained

    tag = pretrained._pcfg(hf_hub=f"{REPO_ID}/", quick_gelu=True)
    monkeypatch.setitem(pretrained._PRETRAINED, "cplvad-tiny", {"testtag": tag})
    return "testtag"


@pytest.fixture(scope="module")
def tiny_weights() -> bytes:
    from safetensors.torch import save

    register_config_dir(str(BUILTIN_CONFIGS))
    torch.manual_seed(5)
    model = open_clip.create_model("cplvad-tiny", pretrained=None)
    return save({k: v.contiguous() for k, v in model.state_dict().items()})


def test_a_tag_loads_from_the_cache_without_network(hub, tiny_tag, tiny_weights):
    plant(hub, REPO_ID, "open_clip_model.safetensors", tiny_weights)
    bundle = create_clip(ClipConfig(model="cplvad-tiny", pretrained=tiny_tag))
    assert bundle.weights_sha256 == hashlib.sha256(tiny_weights).hexdigest()
    assert bundle.weights_id == f"sha256:{bundle.weights_sha256}"  # the same identity as the same local file


@pytest.mark.parametrize("offline_mode", [True, False])
def test_empty_cache_without_network_says_which_file_and_where(hub, tiny_tag, offline_mode, monkeypatch):
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline_mode)  # HF_HUB_OFFLINE=1: no attempt at all
    monkeypatch.setattr(hf_http.time, "sleep", lambda s: None)  # else: the hub's retries, without their waits
    with pytest.raises(DataError) as err:
        create_clip(ClipConfig(model="cplvad-tiny", pretrained=tiny_tag))
    msg = str(err.value)
    assert f"{os.environ['HF_ENDPOINT']}/{REPO_ID}/resolve/main/open_clip_model.safetensors" in msg
    assert (
        str(hub / "models--cplvad-test--tiny" / "snapshots" / "main" / "open_clip_model.safetensors") in msg
    )
    assert "clip.pretrained" in msg


def test_a_file_placed_where_the_error_says_is_used(hub, tiny_tag, tiny_weights):
    place = hub / "models--cplvad-test--tiny" / "snapshots" / "main" / "open_clip_model.safetensors"
    place.parent.mkdir(parents=True)
    place.write_bytes(tiny_weights)
    bundle = create_clip(ClipConfig(model="cplvad-tiny", pretrained=tiny_tag))
    assert bundle.weights_sha256 == hashlib.sha256(tiny_weights).hexdigest()


def test_a_damaged_cache_entry_is_refused(hub, tiny_tag, tiny_weights):
    snapshot = plant(hub, REPO_ID, "open_clip_model.safetensors", tiny_weights)
    blob = snapshot.resolve()
    blob.write_bytes(tiny_weights[: len(tiny_weights) // 2])  # truncated behind the cache's back
    with pytest.raises(DataError, match="damaged; delete it"):
        create_clip(ClipConfig(model="cplvad-tiny", pretrained=tiny_tag))


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(
        ConfigError, match=r"neither a file nor an open_clip pretrained tag of ViT-B-16 \(its tags: openai"
    ):
        create_clip(ClipConfig(model="ViT-B-16", pretrained="openia"))


class _Mirror(http.server.BaseHTTPRequestHandler):
    """The part of the Hub's file API that downloads use: HEAD and (ranged) GET of /<repo>/resolve/<rev>/<file>."""

    files: dict[str, bytes] = {}
    cut: list[int] = []
    """Per GET, in order: stop after this many bytes and drop the connection (then serve normally)."""
    gets: list[str] = []

    def log_message(self, *args) -> None:
        pass

    def _target(self) -> bytes | None:
        prefix = f"/{REPO_ID}/resolve/main/"
        return self.files.get(self.path[len(prefix) :]) if self.path.startswith(prefix) else None

    def _headers(self, data: bytes, start: int) -> None:
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()

    def do_HEAD(self) -> None:
        data = self._target()
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return
        self._headers(data, 0)

    def do_GET(self) -> None:
        data = self._target()
        if data is None:
            return self.do_HEAD()
        start = int(self.headers.get("Range", "bytes=0-")[6:].split("-")[0] or 0)
        self.gets.append(self.headers.get("Range", ""))
        self._headers(data, start)
        stop = start + self.cut.pop(0) if self.cut else len(data)
        self.wfile.write(data[start:stop])
        if stop < len(data):
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def mirror(hub, monkeypatch) -> Iterator[type[_Mirror]]:
    handler = type("Mirror", (_Mirror,), {"files": {}, "cut": [], "gets": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield handler
    server.shutdown()
    server.server_close()


def test_download_resumes_after_a_dropped_connection_and_is_then_offline(mirror, hub, tiny_tag, tiny_weights):
    from safetensors.torch import load

    buf = io.BytesIO()
    torch.save(load(tiny_weights), buf)
    payload = buf.getvalue()
    mirror.files["open_clip_pytorch_model.bin"] = payload  # no safetensors in this repo: the .bin is used
    mirror.cut = [len(payload) - 1000]  # past huggingface_hub's first 10 MB chunk, which it keeps
    bundle = create_clip(ClipConfig(model="cplvad-tiny", pretrained=tiny_tag))
    assert bundle.weights_sha256 == hashlib.sha256(payload).hexdigest()
    assert mirror.gets[0] == "" and mirror.gets[1] == f"bytes={10 << 20}-"  # resumed, not restarted
    mirror.files.clear()  # from now on the hub has nothing: the cache serves
    assert (
        create_clip(ClipConfig(model="cplvad-tiny", pretrained=tiny_tag)).weights_sha256
        == bundle.weights_sha256
    )


def test_a_failed_download_leaves_nothing_behind_and_the_next_attempt_restarts(
    mirror, hub, tiny_tag, tiny_weights, monkeypatch
):
    import huggingface_hub.file_download as hf_download

    monkeypatch.setattr(hf_download.time, "sleep", lambda s: None)  # the hub's pause between resume attempts
    mirror.files["open_clip_model.safetensors"] = tiny_weights
    mirror.cut = [(10 << 20) + 100] + [
        100
    ] * 20  # one 10 MB chunk arrives, then no progress: the hub gives up
    with pytest.raises(DataError, match="could not be downloaded"):
        tagged_weights("cplvad-tiny", tiny_tag)
    assert "bytes=10485760-" in mirror.gets  # within the attempt, the transfer was resumed
    repo = hub / "models--cplvad-test--tiny"
    assert not [
        p for p in (*repo.glob("blobs/*"), *repo.glob("snapshots/**/*")) if p.is_file()
    ]  # nothing partial
    mirror.cut, mirror.gets[:] = [], []
    weights = tagged_weights("cplvad-tiny", tiny_tag)
    assert mirror.gets == [""]  # a clean restart
    assert file_sha256(weights.path) == weights.expected_sha256 == hashlib.sha256(tiny_weights).hexdigest()


@pytest.fixture(scope="session")
def vit_b16_openai_cache(tmp_path_factory) -> tuple[Path, dict]:
    """A Hugging Face cache holding ``ViT-B-16`` / ``openai`` as open_clip publishes it, with random fp16
    weights (300 MB; written once per session) instead of the real 600 MB download."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = {k: v.half().contiguous() for k, v in open_clip.create_model("ViT-B-16").state_dict().items()}
    cache = tmp_path_factory.mktemp("hf-vit") / "hub"
    repo, filename = "timm/vit_base_patch16_clip_224.openai", "open_clip_model.safetensors"
    tmp = cache.parent / filename
    save_file(state, str(tmp))
    folder = cache / f"models--{repo.replace('/', '--')}"
    sha = file_sha256(tmp)
    (folder / "blobs").mkdir(parents=True)
    tmp.rename(folder / "blobs" / sha)
    (folder / "snapshots" / COMMIT).mkdir(parents=True)
    (folder / "snapshots" / COMMIT / filename).symlink_to(Path("../../blobs") / sha)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(COMMIT)
    return cache, {"visual.conv1.weight": state["visual.conv1.weight"], "sha256": sha}


@pytest.mark.slow
def test_vit_b16_openai_loads_from_a_planted_cache_offline(vit_b16_openai_cache, monkeypatch):
    cache, planted = vit_b16_openai_cache
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")  # any network use fails
    with pytest.warns(UserWarning, match="quick_gelu"):  # OpenAI's weights want ViT-B-16-quickgelu
        bundle = create_clip(ClipConfig(model="ViT-B-16", pretrained="openai"))
    assert bundle.weights_sha256 == planted["sha256"] and bundle.embed_dim == 512 and bundle.image_size == 224
    assert bundle.mean == open_clip.OPENAI_DATASET_MEAN
    assert torch.equal(bundle.model.visual.conv1.weight, planted["visual.conv1.weight"].float())
