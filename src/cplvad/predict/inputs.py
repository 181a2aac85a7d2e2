"""What ``cplvad predict`` is pointed at: video files, folders (searched recursively for videos and
``.npy`` feature files) and ``.npy`` feature files ((T, D) float arrays, as ``cplvad extract`` writes them).

Any file that is not ``.npy`` is treated as a video (an unreadable one fails with its reason). Outputs are
named after the input's file name without extension, so two inputs with the same stem are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cplvad.data.annotations import VIDEO_EXTENSIONS
from cplvad.errors import DataError

FEATURE_SUFFIX = ".npy"


@dataclass(frozen=True)
class Input:
    path: Path
    kind: str
    """``video`` or ``features``."""

    @property
    def name(self) -> str:
        return self.path.stem


def _kind(path: Path) -> str:
    return "features" if path.suffix.lower() == FEATURE_SUFFIX else "video"


def list_inputs(paths: Sequence[str | Path]) -> list[Input]:
    """Expand folders, check that everything exists and that output names are unique."""
    found: list[Input] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in (*VIDEO_EXTENSIONS, FEATURE_SUFFIX)
            )
            if not files:
                raise DataError(
                    f"{path} holds no video ({', '.join(VIDEO_EXTENSIONS)}) and no {FEATURE_SUFFIX} feature file"
                )
            found += [Input(p, _kind(p)) for p in files]
        elif path.exists():
            found.append(Input(path, _kind(path)))
        else:
            raise DataError(f"{path} does not exist; give video files, folders or .npy feature files")
    seen: dict[str, Path] = {}
    for item in found:
        if item.name in seen:
            raise DataError(
                f"two inputs are named {item.name!r} ({seen[item.name]} and {item.path}); outputs are named "
                "OUT/<name>.json, so names must be unique: predict them in separate runs (different --out)"
            )
        seen[item.name] = item.path
    return found
