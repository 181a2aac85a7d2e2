"""CLIP weights by open_clip pretrained tag (``clip.pretrained: openai``): found in, or downloaded into,
the standard Hugging Face cache, verified, and offline after the first download.

open_clip publishes every tag on the Hugging Face Hub (``open_clip.get_pretrained_cfg(model, tag)["hf_hub"]``,
``org/repo/`` or ``org/repo/file``). The cache is Hugging Face's own (``$HF_HUB_CACHE``, default
``~/.cache/huggingface/hub``), so a cache filled by ``hf download`` or by open_clip works too. The cache is
looked at first, without any network; a download goes through ``huggingface_hub``: a progress bar, a
temporary file renamed into the cache only when complete (a dropped connection is resumed within the
download; a download that fails leaves nothing behind and the next attempt starts afresh), and the file
is then checked against the sha256 the Hub names it by. Without network and with an empty cache the error
says which file to fetch and where to put it (``HF_HUB_OFFLINE=1`` makes that immediate; otherwise
huggingface_hub retries for about 20 s). ``HF_ENDPOINT`` selects a mirror.

A weights file given by path (``check_clip_weights``) must be readable and, when it is a zip archive
(PyTorch's format since 1.6, and OpenAI's TorchScript release), its table of contents must read: a truncated
download fails in milliseconds, before minutes of work. Safetensors files must hold their whole header.
Preflight and the predictor's encoder both check it.
"""

from __future__ import annotations

import json
import os
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cplvad.errors import ConfigError, DataError

HF_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
"""The file names open_clip looks for in a repository given without a file (safetensors first)."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class TaggedWeights:
    path: Path
    """The cached file (a link into the cache's ``blobs/``, or a file placed in ``snapshots/main/``)."""
    expected_sha256: str | None
    """The checksum the Hub stores it under, when the cache says it (``blobs/<sha256>``)."""
    preprocess: dict
    """The tag's image normalisation (mean, std, interpolation, resize mode)."""
    quick_gelu: bool


def is_tag(model: str, value: str) -> bool:
    import open_clip

    return bool(open_clip.get_pretrained_cfg(model, value))


def known_tags(model: str) -> list[str]:
    import open_clip

    return open_clip.list_pretrained_tags_by_model(model)


def _hub_location(model: str, tag: str) -> tuple[str, tuple[str, ...], dict]:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg.get("hf_hub"):
        raise ConfigError(
            f"clip.pretrained {tag!r}: open_clip has no Hugging Face location for {model} {tag}; "
            "download its weights yourself and set clip.pretrained to the file"
        )
    parts = cfg["hf_hub"].split("/")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    if not filename:
        names: tuple[str, ...] = HF_WEIGHTS
    elif filename.endswith((".bin", ".pth")):
        names = (filename.rsplit(".", 1)[0] + ".safetensors", filename)
    else:
        names = (filename,)
    return repo, names, cfg


def _cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _cached(repo: str, names: tuple[str, ...]) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for name in names:
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str):
            return Path(found)
    return None


def _endpoint() -> str:
    """The hub to download from: ``$HF_ENDPOINT`` (a mirror), read when downloading, else huggingface.co."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _download(repo: str, names: tuple[str, ...]) -> tuple[Path | None, Exception | None]:
    """The first of ``names`` the repository has, downloaded into the cache; or the error that stopped it."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    error: Exception | None = None
    for name in names:
        try:
            return Path(hf_hub_download(repo, name, endpoint=_endpoint())), None
        except LocalEntryNotFoundError as exc:  # no connection (or offline mode) and not cached
            return None, exc
        except EntryNotFoundError as exc:  # the repository has no such file: try the next name
            error = exc
        except Exception as exc:  # noqa: BLE001  (any transfer error: reported with what to do)
            return None, exc
    return None, error


def tagged_weights(model: str, tag: str) -> TaggedWeights:
    """The weights file of open_clip's ``model`` / ``tag``: from the cache, else downloaded (with progress)."""
    repo, names, cfg = _hub_location(model, tag)
    path = _cached(repo, names)
    if path is None:
        path, error = _download(repo, names)
        if path is None:
            raise DataError(_missing_message(model, tag, repo, names[0], error))
    blob = path.resolve().name
    preprocess = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    return TaggedWeights(
        path, blob if _SHA256.fullmatch(blob) else None, preprocess, bool(cfg.get("quick_gelu"))
    )


def _missing_message(model: str, tag: str, repo: str, name: str, error: Exception | None) -> str:
    cache = _cache_dir()
    place = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / "main" / name
    return (
        f"clip.pretrained {tag!r} ({model}): the weights are not in the Hugging Face cache {cache} and could not "
        f"be downloaded ({type(error).__name__ if error else 'no file'}: {str(error).splitlines()[0] if error else ''}). "
        f"On a machine with internet, fetch {_endpoint()}/{repo}/resolve/main/{name} and put it at {place} "
        "(or anywhere, and set clip.pretrained to that file); or run this command there once and copy its "
        "Hugging Face cache folder here (HF_HUB_CACHE / HF_HOME say where it is)."
    )


def verify(weights: TaggedWeights, sha256: str) -> None:
    """DataError when a cached file is not the one the Hub named (a damaged or replaced cache entry)."""
    if weights.expected_sha256 and sha256 != weights.expected_sha256:
        raise DataError(
            f"the cached CLIP weights {weights.path} (-> {weights.path.resolve()}) have sha256 {sha256}, not "
            f"{weights.expected_sha256}: the file is damaged; delete it and run again to download it anew"
        )


def warn_on_activation_mismatch(model_quick_gelu: bool, weights: TaggedWeights, model: str, tag: str) -> None:
    if model_quick_gelu != weights.quick_gelu:
        warnings.warn(
            f"clip.pretrained {tag!r} was trained with quick_gelu={weights.quick_gelu} but clip.model {model!r} uses "
            f"quick_gelu={model_quick_gelu}; e.g. OpenAI's weights match the '-quickgelu' models (ViT-B-16-quickgelu)",
            stacklevel=3,
        )


class WeightsChoice(Protocol):
    """What names the CLIP weights (``cplvad.config.ClipConfig``; not imported: the config is above this
    module)."""

    model: str
    pretrained: str


def check_clip_weights(clip: WeightsChoice) -> None:
    """``clip.pretrained`` (unless ``none`` or an open_clip tag) is a complete, readable weights file."""
    if clip.pretrained.lower() == "none":
        return
    path = Path(clip.pretrained)
    if not path.is_file():
        if is_tag(clip.model, clip.pretrained):  # found in (or downloaded into) the cache when first loaded
            return
        tags = ", ".join(known_tags(clip.model)) or "none for this model"
        raise ConfigError(
            f"clip.pretrained {clip.pretrained!r} is neither a file nor an open_clip pretrained tag of "
            f"{clip.model} ({tags}); give a weights file, a tag or 'none'"
        )
    check_weights_file(path, "clip.pretrained")


def check_weights_file(path: Path, what: str) -> None:
    remedy = "download or copy it again"
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
        if head.startswith(ZIP_MAGIC):
            with zipfile.ZipFile(path) as zf:
                zf.infolist()
        elif path.suffix == ".safetensors":
            (length,) = struct.unpack("<Q", head)
            with path.open("rb") as fh:
                fh.seek(8)
                json.loads(fh.read(length))
    except OSError as exc:
        raise DataError(
            f"{what} {path} cannot be read ({exc.strerror or exc}); check its permissions"
        ) from None
    except (zipfile.BadZipFile, struct.error, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} {path} is truncated or damaged ({exc}); {remedy}") from None
    if not head:
        raise DataError(f"{what} {path} is empty; {remedy}")
