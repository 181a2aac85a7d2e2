"""Class lists and video labels: UCF class names (``Abuse``) and XD multi-label codes (``B1-B2-0``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cplvad.errors import DataError

XD_PADDING_CODE = "0"
"""XD-Violence pads its three label slots with ``0`` (``B1-0-0`` = fighting only)."""


@dataclass(frozen=True)
class ClassList:
    """The manifest's classes; index 0 is the normal class. ``codes`` maps label codes to class names."""

    names: tuple[str, ...]
    codes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.names) < 2:
            raise DataError(
                f"a dataset needs the normal class and at least one anomaly class, got {list(self.names)}"
            )
        if len(set(self.names)) != len(self.names):
            raise DataError(f"class names must be unique, got {list(self.names)}")
        unknown = sorted({v for v in self.codes.values() if v not in self.names})
        if unknown:
            raise DataError(f"label_codes map to {unknown}, which are not in classes {list(self.names)}")

    @property
    def normal(self) -> str:
        return self.names[0]

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def resolve(self, token: str) -> str | None:
        """A class name for a label token (a name or a code), or None if it is neither."""
        if token in self.names:
            return token
        return self.codes.get(token)

    def parse(self, label: str) -> tuple[str, ...]:
        """Class names of a video label, normal first, abnormal classes in label order, no repeats.

        ``"Abuse"`` -> ("Abuse",); ``"B1-B2-0"`` -> ("Fighting", "Shooting"); ``"A"`` -> ("Normal",).
        Raises DataError (with the allowed values) when a part is not a class name or code.
        """
        label = label.strip()
        whole = self.resolve(label)
        if whole is not None:
            return (whole,)
        tokens = [t for t in label.split("-") if t and t != XD_PADDING_CODE]
        names: list[str] = []
        for token in tokens:
            name = self.resolve(token)
            if name is None:
                allowed = list(self.names) + [c for c in self.codes if c not in self.names]
                raise DataError(
                    f"label {label!r}: {token!r} is not a class name or label code; allowed: {allowed}"
                )
            if name not in names:
                names.append(name)
        if not names:
            raise DataError(f"label {label!r} names no class")
        if self.normal in names and len(names) > 1:
            raise DataError(f"label {label!r} marks a video both normal and abnormal")
        return tuple(names)

    def multi_hot(self, classes: Sequence[str]) -> np.ndarray:
        vec = np.zeros(len(self.names), dtype=np.float32)
        for name in classes:
            vec[self.index(name)] = 1.0
        return vec
