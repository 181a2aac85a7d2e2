"""The extraction manifest (JSON beside the feature list): settings, per-video results, resume, shard merge.

``DST/<list stem>.extraction.json`` records the CLIP model, its weights checksum, sampling, crops and
frames per snippet (the *settings*, hashed into ``settings_id``), and per video its source, label,
frames, fps, T, seconds taken and output files, or the reason it failed. A video is done when its entry
says ``ok`` under the current ``settings_id`` and each of its files exists with exactly the size of a
(T, D) float32 ``.npy``; everything else is (re)extracted. The list CSV is a projection of the manifest
(its ``ok`` videos in source order), so merging shards only needs their manifests.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from cplvad import __version__
from cplvad.containment import Escapes, inside
from cplvad.data.dataset import feature_list_csv
from cplvad.errors import DataError
from cplvad.io import NAME_ERRORS
from cplvad.storage.location import Location

FORMAT = "cplvad-extraction/1"


@dataclass(frozen=True)
class OutputNames:
    list: str
    manifest: str


def output_names(list_name: str, shard: tuple[int, int] | None = None) -> OutputNames:
    """``train.csv`` -> train.csv + train.extraction.json; shard 0 of 2 -> ``train.shard0-of-2.csv`` + ..."""
    path = PurePosixPath(list_name)
    if path.name != list_name or path.suffix.lower() != ".csv":
        raise DataError(
            f"--list-name {list_name!r}: give a plain file name ending in .csv (written in --out)"
        )
    stem = path.stem if shard is None else f"{path.stem}.shard{shard[0]}-of-{shard[1]}"
    return OutputNames(list=f"{stem}.csv", manifest=f"{stem}.extraction.json")


def settings_id(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def npy_size(rows: int, dim: int) -> int:
    """Exact size of the ``.npy`` file of a (rows, dim) float32 array (header + data)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
    return buf.tell() + rows * dim * 4


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


@dataclass
class Manifest:
    settings: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    """Run facts that do not invalidate outputs: source, list, shard, device, precision."""
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def settings_id(self) -> str:
        return settings_id(self.settings)

    @classmethod
    def load(cls, sink: Location, rel: str) -> Manifest | None:
        data = sink.read_bytes(rel)
        if data is None:
            return None
        try:
            obj = json.loads(data, parse_constant=_no_constant)
            if obj.get("format") != FORMAT:
                raise ValueError(f"format {obj.get('format')!r} is not {FORMAT!r}")
            manifest = cls(settings=obj["settings"], info=obj.get("info", {}), videos=obj["videos"])
            manifest.check_entries()
            return manifest
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(
                f"extraction manifest {sink.uri(rel)} is not readable ({exc}); run the extraction again: it sets "
                "a damaged manifest aside and extracts every video again"
            ) from None

    def check_entries(self) -> None:
        """Every video entry has a status, an index and, when ``ok``, files inside the output folder
        (ValueError otherwise: the manifest was damaged or edited)."""
        for name, entry in self.videos.items():
            ok = entry["status"] == "ok"
            valid = (
                isinstance(entry["index"], int)
                and isinstance(entry["label"], str)
                and (
                    isinstance(entry["snippets"], int) and isinstance(entry["files"], list)
                    if ok
                    else entry["status"] == "failed" and isinstance(entry["reason"], str)
                )
            )
            if not valid:
                raise ValueError(f"video {name!r} has an incomplete entry")
            for f in entry["files"] if ok else []:
                try:
                    inside(str(f).split("/"), f"file {f!r}")
                except Escapes as exc:
                    raise ValueError(f"video {name!r}: {exc}, outside the output folder") from None

    def to_json(self) -> bytes:
        counts = {s: sum(v["status"] == s for v in self.videos.values()) for s in ("ok", "failed")}
        obj = {
            "format": FORMAT,
            "cplvad_version": __version__,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "settings_id": self.settings_id,
            "settings": self.settings,
            "info": self.info,
            "summary": {"videos": len(self.videos), **counts},
            "videos": dict(sorted(self.videos.items(), key=lambda kv: kv[1]["index"])),
        }
        return (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode()

    def is_done(self, name: str, sizes: dict[str, int]) -> bool:
        """Whether ``name`` has a successful entry under these settings with all its files intact."""
        entry = self.videos.get(name)
        if not entry or entry.get("status") != "ok" or entry.get("settings_id") != self.settings_id:
            return False
        expected = npy_size(int(entry["snippets"]), int(self.settings["embed_dim"]))
        files = entry.get("files", [])
        return len(files) == self.settings["crops"] and all(sizes.get(f) == expected for f in files)

    def failures(self) -> dict[str, str]:
        return {n: v["reason"] for n, v in self.videos.items() if v["status"] == "failed"}

    def list_csv(self) -> str:
        """The VadCLIP-format list (``path,label``, paths relative to the list's folder), source order."""
        ok = [v for v in sorted(self.videos.values(), key=lambda v: v["index"]) if v["status"] == "ok"]
        return feature_list_csv((f, entry["label"]) for entry in ok for f in entry["files"])

    def save(self, sink: Location, names: OutputNames) -> None:
        """Write the manifest, then the list derived from it (each atomically)."""
        sink.write_bytes(names.manifest, self.to_json())
        sink.write_bytes(names.list, self.list_csv().encode("utf-8", NAME_ERRORS))


def list_problem(files: list[str], label: str, sink: Location) -> str | None:
    """Why a video's files could not be listed and read back from the list, or None. Checked before its
    files are written, so the manifest never says ``ok`` for a video the list cannot hold."""
    if any("\\" in f for f in files):
        return (
            "its name holds a backslash, which lists read as a folder separator (Windows paths); "
            "rename the file"
        )
    if label != label.strip():
        return f"its label {label!r} starts or ends with spaces, which lists strip; rename its folder"
    try:
        "".join(files + [label]).encode("utf-8", NAME_ERRORS)
    except UnicodeEncodeError as exc:
        return f"its name cannot be written to the list ({exc.reason}); rename the file"
    return sink.name_problem(files[0])


def merge_shards(sink: Location, list_name: str, shards: int) -> Manifest:
    """Merge the manifests of shards 0..shards-1 into the final list and manifest; return the merged one."""
    if shards < 1:
        raise DataError(f"--shards {shards}: expected the number of shards N >= 1 used with --shard K/N")
    parts = []
    for k in range(shards):
        names = output_names(list_name, (k, shards))
        part = Manifest.load(sink, names.manifest)
        if part is None:
            raise DataError(
                f"shard {k}/{shards} has no manifest {sink.uri(names.manifest)}; run "
                f"'cplvad extract ... --shard {k}/{shards}' first (every shard must finish before the merge)"
            )
        parts.append((names.manifest, part))
    first_name, merged = parts[0]
    merged = Manifest(settings=merged.settings, info={**merged.info, "shard": None}, videos={})
    for name, part in parts:
        if part.settings_id != merged.settings_id:
            raise DataError(
                f"{sink.uri(name)} was extracted with other settings than {sink.uri(first_name)} "
                f"({part.settings} vs {merged.settings}); re-run that shard with the same settings"
            )
        clash = merged.videos.keys() & part.videos.keys()
        if clash:
            raise DataError(f"{sink.uri(name)} repeats videos of another shard, e.g. {sorted(clash)[:3]}")
        merged.videos.update(part.videos)
    merged.info["merged_from"] = [name for name, _ in parts]
    merged.save(sink, output_names(list_name))
    return merged
