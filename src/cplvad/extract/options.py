"""What ``cplvad extract`` is asked for beyond the config (``clip``, ``extract``): built once, by the command or
a caller, and taken by ``cplvad.extract.runner.extract`` as it is. Import-light: the command module loads
no extraction code until it runs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cplvad.errors import ConfigError


@dataclass(frozen=True)
class ExtractOptions:
    list_name: str = "features.csv"
    """Name of the feature list written in the output; the manifest is ``<stem>.extraction.json``."""
    default_label: str = "Normal"
    """Label of the videos that sit directly in the source folder."""
    shard: str | None = None
    """``"K/N"``: only the videos whose index modulo N is K, written as ``<stem>.shardK-of-N`` files."""
    strict: bool = False
    """Stop at the first video that fails."""

    def __post_init__(self) -> None:
        self.shard_range  # noqa: B018  (a malformed shard fails here, before any work)

    @property
    def shard_range(self) -> tuple[int, int] | None:
        """``(K, N)`` of ``shard``, or None for every video."""
        if self.shard is None:
            return None
        m = re.fullmatch(r"(\d+)/(\d+)", self.shard.strip())
        if not m or not int(m[1]) < int(m[2]):
            raise ConfigError(f"--shard {self.shard!r}: expected K/N with 0 <= K < N, e.g. --shard 0/4")
        return int(m[1]), int(m[2])
